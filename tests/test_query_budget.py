"""The cost of one request is bounded: query budget, pixel bound, admission, cancellation,
read timeouts, filter validation, upload replay, headers on errors.

Asserts on the budget's behaviour (what stops, what is answered), never on tight wall times:
the small versions of the adversarial images (``bench/bench_adversarial.py``) run here; the
full ones, with their timings and memory, are the benchmark's (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import functools
import io
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from ogasearch import budget as budget_module
from ogasearch.budget import (
    BudgetExceeded,
    QueryBudget,
    QueryCancelled,
    bounded_image,
    check,
    optional_stage,
)
from ogasearch.localsite.sample_site import sprite_bytes
from ogasearch.match import matching
from ogasearch.search.service import SearchService
from ogasearch.settings import Settings
from ogasearch.web.admission import QueryGate
from ogasearch.web.app import create_app
from ogasearch.web.query_images import QueryError
from ogasearch.web.server import running_server
from support.search_data import SearchData, app_client, search_data

ALIEN = "alien/alienBlue_front.png"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_adversarial import adversarial_set, tiled_palette  # noqa: E402

sys.path.pop(0)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SearchData:
    return search_data(tmp_path_factory)


@pytest.fixture(scope="module")
def api(data: SearchData) -> Iterator[httpx.Client]:
    yield from app_client(data.settings, timeout=60)


def with_serving(settings: Settings, **changes: Any) -> Settings:
    serving = settings.serving.model_copy(update=changes)
    return settings.model_copy(update={"serving": serving})


def with_limits(settings: Settings, **changes: Any) -> Settings:
    limits = settings.limits.model_copy(update=changes)
    return settings.model_copy(update={"limits": limits})


def post_image(client: httpx.Client, data: bytes, **params: Any) -> httpx.Response:
    files = {"image": ("q.png", data, "application/octet-stream")}
    return client.post("/api/search/image", files=files, params=params)


# --------------------------------------------------------------------------------------------
# The budget itself


def test_no_budget_no_checks() -> None:
    check()  # outside any query: nothing to stop


def test_deadline_and_cancel_stop_a_query() -> None:
    over = QueryBudget(0.0)
    time.sleep(0.01)
    with over.active(), pytest.raises(BudgetExceeded):
        check()
    gone = QueryBudget(60.0)
    gone.cancel()
    with gone.active(), pytest.raises(QueryCancelled):
        check()
    assert budget_module.current() is None


def test_an_optional_stage_ends_at_the_deadline_but_not_at_a_cancel() -> None:
    over = QueryBudget(0.0)
    with over.active(), optional_stage():
        check()
        raise AssertionError("not reached")
    assert over.degraded
    gone = QueryBudget(60.0)
    gone.cancel()
    with gone.active(), pytest.raises(QueryCancelled), optional_stage():
        check()


def test_the_stages_every_answer_needs_stop_only_at_the_hard_deadline() -> None:
    query = QueryBudget(60.0)
    query.deadline = time.monotonic() - 1  # past the deadline, 59 s before the hard one
    with query.active():
        check()  # the core of a query goes on
        with optional_stage():
            check()
            raise AssertionError("not reached")
        assert query.degraded
        query.deadline -= 60  # past the hard deadline as well
        with pytest.raises(BudgetExceeded):
            check()


def test_the_budget_reaches_a_worker_thread_through_a_copied_context() -> None:
    import contextvars

    seen: list[QueryBudget | None] = []
    query = QueryBudget(60.0)
    with query.active():
        context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run, args=(lambda: seen.append(budget_module.current()),)
    )
    thread.start()
    thread.join()
    assert seen == [query]


def test_large_queries_are_shrunk_by_a_whole_factor_keeping_blocks() -> None:
    small = Image.new("RGB", (100, 100))
    assert bounded_image(small, 10_000) is small
    art = Image.effect_noise((50, 40), 64).convert("RGB")
    big = art.resize((50 * 8, 40 * 8), Image.Resampling.NEAREST)  # 8x upscale, 128,000 px
    shrunk = bounded_image(big, 40_000)
    assert shrunk.size == (50 * 4, 40 * 4) and shrunk.width * shrunk.height <= 40_000
    # still an exact 4x upscale of the same art
    assert shrunk.resize(art.size, Image.Resampling.NEAREST).tobytes() == art.tobytes()


# --------------------------------------------------------------------------------------------
# The matcher under a budget (the real service on the sample data)


@pytest.fixture(scope="module")
def service(data: SearchData) -> Iterator[SearchService]:
    service = SearchService(data.settings)
    yield service
    service.close()


def test_past_the_deadline_in_the_region_path_the_answer_is_what_was_found(
    service: SearchService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scene-like query whose deadline passes as the region path starts still answers,
    with the results of the other paths."""
    scene = Image.open(io.BytesIO(tiled_palette(400)))
    real = matching.grid_views
    query = QueryBudget(60.0)

    def late_grid_views(rgb: Any) -> Any:
        query.deadline = time.monotonic()  # the deadline passes here (not the hard one)
        return real(rgb)

    monkeypatch.setattr(matching, "grid_views", late_grid_views)
    with query.active():
        response = service.by_image(scene, k=10)
    assert query.degraded
    assert response.results and {r.match for r in response.results} <= {"vector", "exact", "near"}


def test_past_the_deadline_before_any_answer_the_query_fails(service: SearchService) -> None:
    query = QueryBudget(0.0)
    with query.active(), pytest.raises(BudgetExceeded):
        service.by_image(Image.open(io.BytesIO(sprite_bytes(ALIEN))), k=5)


def test_the_matcher_analyses_at_most_its_pixel_bound(
    service: SearchService, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[tuple[int, int]] = []
    real = matching.canonicalise

    def spy(img: Image.Image, *args: Any) -> Any:
        sizes.append(img.size)
        return real(img, *args)

    monkeypatch.setattr(matching, "canonicalise", spy)
    monkeypatch.setattr(service.matcher.config, "max_pixels", 50_000)
    service.by_image(Image.open(io.BytesIO(tiled_palette(400))), k=5)
    assert sizes and all(w * h <= 50_000 for w, h in sizes)


@functools.cache
def small_set() -> dict[str, bytes]:
    return adversarial_set("small")


@pytest.mark.parametrize("name", sorted(small_set()))
def test_adversarial_images_are_answered(api: httpx.Client, name: str) -> None:
    """Each small adversarial image is answered (the full ones: bench_adversarial.py)."""
    response = post_image(api, small_set()[name], k=10)
    assert response.status_code == 200, response.text
    assert "results" in response.json()


def test_a_query_over_its_budget_is_a_clear_503(data: SearchData) -> None:
    settings = with_limits(data.settings, query_deadline_seconds=0.0)
    for client in app_client(settings, timeout=60):
        response = post_image(client, sprite_bytes(ALIEN))
        assert response.status_code == 503
        assert response.json()["error"] == "over_budget"
        assert int(response.headers["retry-after"]) > 0
        # keyword searches run under the same budget
        assert client.get("/api/search/text", params={"q": "tanks"}).status_code == 503


# --------------------------------------------------------------------------------------------
# Admission and cancellation


def test_the_gate_refuses_past_its_slots_and_queue_at_once() -> None:
    async def scenario() -> list[str]:
        gate = QueryGate(slots=1, queue=1, retry_after=3)
        release = asyncio.Event()
        outcomes: list[str] = []

        async def one(name: str) -> None:
            try:
                async with gate.admit():
                    outcomes.append(f"{name} runs")
                    await release.wait()
            except QueryError as exc:
                outcomes.append(f"{name} {exc.status} {exc.headers['Retry-After']}")

        tasks = [asyncio.create_task(one(n)) for n in ("a", "b", "c")]
        await asyncio.sleep(0.05)
        snapshot = list(outcomes)
        release.set()
        await asyncio.gather(*tasks)
        return [*snapshot, "--", *outcomes]

    assert asyncio.run(scenario()) == ["a runs", "c 503 3", "--", "a runs", "c 503 3", "b runs"]


@pytest.fixture()
def blocking(data: SearchData) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """A server with one query slot and a queue of one whose image searches wait, checking
    their budget, until released (or stopped)."""
    settings = with_serving(
        with_limits(data.settings, query_deadline_seconds=60.0), query_slots=1, query_queue=1
    )
    service = SearchService(settings)
    state: dict[str, Any] = {"release": threading.Event(), "started": threading.Event()}
    state["stopped"] = []

    def by_image(image: Any, k: int = 20, filters: Any = None, **more: Any) -> Any:
        state["started"].set()
        try:
            while not state["release"].wait(0.02):
                check()
        except Exception as exc:
            state["stopped"].append(type(exc).__name__)
            raise
        return SearchService.by_image(service, image, k=k, filters=filters, **more)

    service.by_image = by_image  # type: ignore[method-assign]
    app = create_app(settings, service=service)
    with running_server(app) as url:
        yield url, app, state
    state["release"].set()


def test_beyond_slots_and_queue_the_answer_is_503_at_once(
    blocking: tuple[str, Any, dict[str, Any]],
) -> None:
    url, app, state = blocking
    query = sprite_bytes(ALIEN)
    answers: list[int] = []

    def background() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            answers.append(post_image(client, query).status_code)

    threads = [threading.Thread(target=background) for _ in range(2)]  # one runs, one waits
    for thread in threads:
        thread.start()
    assert state["started"].wait(30)
    deadline = time.monotonic() + 30
    while app.state.query_gate.admitted < 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # the second request reaches the queue
    with httpx.Client(base_url=url, timeout=60) as client:
        started = time.monotonic()
        refused = post_image(client, query)
        assert refused.status_code == 503 and time.monotonic() - started < 10  # not queued
        assert refused.json()["error"] == "overloaded" and refused.headers["retry-after"]
        assert client.get("/api/stats").status_code == 200  # other requests go on
    state["release"].set()
    for thread in threads:
        thread.join(60)
    assert answers == [200, 200]


def test_a_query_stops_when_its_client_goes_away(
    blocking: tuple[str, Any, dict[str, Any]],
) -> None:
    url, _, state = blocking
    with httpx.Client(base_url=url, timeout=1.0) as client, pytest.raises(httpx.ReadTimeout):
        post_image(client, sprite_bytes(ALIEN))
    deadline = time.monotonic() + 30
    while not state["stopped"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state["stopped"] == ["QueryCancelled"]


# --------------------------------------------------------------------------------------------
# Read timeouts


@pytest.fixture()
def impatient(data: SearchData) -> Iterator[str]:
    settings = with_serving(data.settings, header_timeout=1.0, body_timeout=1.0)
    with running_server(create_app(settings)) as url:
        yield url


def _connect(url: str) -> socket.socket:
    host, port = httpx.URL(url).host, httpx.URL(url).port
    sock = socket.create_connection((host, port or 80), timeout=10)
    return sock


def _closed_after(sock: socket.socket, drip: list[bytes], every: float, limit: float) -> float:
    """Send ``drip`` a piece every ``every`` s; seconds until the server closed (or limit)."""
    started = time.monotonic()
    sock.settimeout(every)
    pieces = iter(drip)
    while time.monotonic() - started < limit:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        except OSError:
            return time.monotonic() - started
        piece = next(pieces, None)
        if piece is not None:
            try:
                sock.sendall(piece)
            except OSError:
                return time.monotonic() - started
    return float("inf")


def test_slow_headers_are_cut_off(impatient: str) -> None:
    """One header line every 0.3 s: the connection is closed at the header timeout (1 s),
    long before the headers would be complete."""
    lines = [b"GET /api/stats HTTP/1.1\r\n"] + [f"X-Slow-{i}: x\r\n".encode() for i in range(40)]
    with _connect(impatient) as sock:
        assert _closed_after(sock, lines, 0.3, 10.0) < 5.0


def test_a_silent_connection_is_closed(impatient: str) -> None:
    with _connect(impatient) as sock:
        assert _closed_after(sock, [], 0.3, 10.0) < 5.0


def test_a_slow_body_is_cut_off(impatient: str) -> None:
    head = (
        b"POST /api/search/image HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
    )
    with _connect(impatient) as sock:
        assert _closed_after(sock, [head] + [b"x" * 10] * 40, 0.3, 10.0) < 5.0


def test_a_normal_client_is_unaffected(impatient: str) -> None:
    with httpx.Client(base_url=impatient, timeout=30) as client:
        for _ in range(3):
            assert client.get("/api/stats").status_code == 200
            time.sleep(1.2)  # idle past the header timeout: keep-alive, not a slow request


# --------------------------------------------------------------------------------------------
# Filters on every search


def _art_type(service: SearchService) -> str:
    from ogasearch.catalog.stats import art_types

    return art_types(service.ws.engine)[0]


def test_every_filter_on_every_search(api: httpx.Client, service: SearchService) -> None:
    art_type = _art_type(service)
    image_id = post_image(api, sprite_bytes(ALIEN), k=1).json()["results"][0]["image_id"]
    good = [{"license": "CC0"}, {"tiles": "only"}, {"tiles": "exclude"}, {"art_type": art_type}]
    searches = {
        "image": lambda p: post_image(api, sprite_bytes(ALIEN), **p),
        "similar": lambda p: api.get(f"/api/similar/{image_id}", params=p),
        "text": lambda p: api.get("/api/search/text", params={"q": "sprites", **p}),
    }
    for name, search in searches.items():
        for params in good:
            response = search(params)
            assert response.status_code == 200, (name, params, response.text)
            for result in response.json()["results"]:
                if "license" in params:
                    assert params["license"] in result["licenses"]
                if params.get("tiles") == "only":
                    assert result["tile"] is not None
                if params.get("tiles") == "exclude":
                    assert result["tile"] is None
        for bad, listed in (("license", "'CC0'"), ("art_type", repr(art_type)), ("tiles", "only")):
            response = search({bad: "Nonsense"})
            assert response.status_code == 422, (name, bad)
            body = response.json()
            assert body["error"] == "invalid_parameters" and listed in str(body["detail"])


def test_the_search_page_lists_the_valid_licences(api: httpx.Client) -> None:
    page = api.get("/", params={"q": "tanks", "license": "Nonsense"})
    assert page.status_code == 422
    assert "unknown license" in page.text and "CC0" in page.text


# --------------------------------------------------------------------------------------------
# Upload replay, error headers, aborted uploads


def test_an_upload_is_replayed_only_for_its_uploader(data: SearchData) -> None:
    for owner in app_client(data.settings, timeout=60):
        submitted = owner.post("/", files={"image": ("q.png", sprite_bytes(ALIEN), "image/png")})
        assert submitted.status_code == 303
        link = submitted.headers["location"]
        assert owner.get(link).status_code == 200
        with httpx.Client(base_url=str(owner.base_url), timeout=60) as stranger:
            page = stranger.get(link)  # e.g. an <img src> on another site
            assert page.status_code == 404 and "expired" in page.text


def test_errors_carry_the_security_headers(api: httpx.Client) -> None:
    for response in (
        api.get("/api/nothing-here"),
        api.get("/api/search/text", params={"q": "x", "license": "Nonsense"}),
        post_image(api, b"not an image"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_an_aborted_upload_is_logged_in_one_line(
    data: SearchData, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    with running_server(create_app(data.settings)) as url:
        with _connect(url) as sock:
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n"
                b'Content-Disposition: form-data; name="image"; filename="q.png"\r\n\r\n'
                + b"x"
                * 1000
            )
            time.sleep(0.5)
        deadline = time.monotonic() + 10
        while "went away" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    records = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is None
    assert "Traceback" not in caplog.text
