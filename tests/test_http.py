"""PoliteClient against a real HTTP server on 127.0.0.1: politeness, retries, limits."""

from __future__ import annotations

import contextlib
import io
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ogasearch.crawl.http import FetchError, PoliteClient
from ogasearch.settings import Settings


@dataclass
class Reply:
    """What the loopback server answers: ``truncate_to`` sends fewer bytes than declared."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    sleep: float = 0.0
    truncate_to: int | None = None
    length: bool = True  # send Content-Length (else the body ends when the connection closes)


@dataclass
class Seen:
    """A request the server received."""

    path: str
    headers: dict[str, str]
    at: float


class LoopbackSite:
    """A threaded HTTP/1.0 server whose answers come from ``routes`` or a ``handler``."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {"/robots.txt": [Reply(404)]}
        self.handler: Callable[[str, dict[str, str]], Reply | None] | None = None
        self.seen: list[Seen] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                site.seen.append(Seen(self.path, headers, time.monotonic()))
                reply = site.reply_for(self.path, headers)
                if reply.sleep:
                    time.sleep(reply.sleep)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.length:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                body = reply.body if reply.truncate_to is None else reply.body[: reply.truncate_to]
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def reply_for(self, path: str, headers: dict[str, str]) -> Reply:
        if self.handler is not None:
            reply = self.handler(path, headers)
            if reply is not None:
                return reply
        replies = self.routes.get(path)
        if not replies:
            return Reply(404, b"not found")
        return replies.pop(0) if len(replies) > 1 else replies[0]

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    def __enter__(self) -> LoopbackSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[LoopbackSite]:
    with LoopbackSite() as server:
        yield server


def make_client(site_url: str, **kwargs: object) -> PoliteClient:
    settings = Settings(
        site=site_url,
        delay=float(kwargs.pop("delay", 0.0)),  # type: ignore[arg-type]
        retries=int(kwargs.pop("retries", 3)),  # type: ignore[call-overload]
        timeout=float(kwargs.pop("timeout", 5.0)),  # type: ignore[arg-type]
    )
    kwargs.setdefault("backoff_base", 0.01)
    return PoliteClient(settings, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Politeness


def test_user_agent_and_robots_fetched_once(site: LoopbackSite) -> None:
    site.routes["/robots.txt"] = [Reply(200, b"User-agent: *\nDisallow: /search/\n")]
    site.routes["/content/a"] = [Reply(200, b"<html>a</html>", {"ETag": '"e1"'})]
    with make_client(site.url) as client:
        first = client.get(f"{site.url}/content/a")
        client.get(f"{site.url}/content/a")
        with pytest.raises(FetchError) as refused:
            client.get(f"{site.url}/search/node/x")
    assert first.body == b"<html>a</html>"
    assert first.etag == '"e1"'
    assert refused.value.permanent
    assert refused.value.reason == "disallowed by robots.txt"
    assert site.paths() == ["/robots.txt", "/content/a", "/content/a"]
    assert all(s.headers["user-agent"].startswith("ogasearch/") for s in site.seen)
    assert client.request_count == 3
    assert [r.kind for r in client.log] == ["robots", "page", "page"]


def test_robots_for_our_agent_is_honoured(site: LoopbackSite) -> None:
    site.routes["/robots.txt"] = [
        Reply(200, b"User-agent: ogasearch\nDisallow: /content/\n\nUser-agent: *\nDisallow:\n")
    ]
    with make_client(site.url) as client, pytest.raises(FetchError, match="robots"):
        client.get(f"{site.url}/content/a")
    assert site.paths() == ["/robots.txt"]


def test_delay_between_requests(site: LoopbackSite) -> None:
    site.routes["/p"] = [Reply(200, b"x")]
    with make_client(site.url, delay=0.25) as client:
        for _ in range(3):
            client.get(f"{site.url}/p")
    times = [s.at for s in site.seen]  # robots.txt, then three pages
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 3
    assert min(gaps) >= 0.24


def test_crawl_delay_is_a_floor(site: LoopbackSite) -> None:
    site.routes["/robots.txt"] = [Reply(200, b"User-agent: *\nCrawl-delay: 0.3\n")]
    site.routes["/p"] = [Reply(200, b"x")]
    with make_client(site.url, delay=0.0) as client:
        client.get(f"{site.url}/p")
        client.get(f"{site.url}/p")
        assert client.delay == pytest.approx(0.3)
    page_times = [s.at for s in site.seen if s.path == "/p"]
    assert page_times[1] - page_times[0] >= 0.29
    with make_client(site.url, delay=0.5) as slower:
        slower.get(f"{site.url}/p")
        assert slower.delay == 0.5  # our own delay stays when it is longer


def test_download_counter_and_other_hosts_are_never_requested(site: LoopbackSite) -> None:
    with make_client(site.url) as client:
        with pytest.raises(FetchError, match="download counter") as counter:
            client.get(f"{site.url}/file/123/dlcounter")
        with pytest.raises(FetchError, match="not on the site") as elsewhere:
            client.get("http://127.0.0.2:9/x.png")
    assert counter.value.permanent and elsewhere.value.permanent
    assert not any("dlcounter" in p for p in site.paths())


def test_opengameart_urls_are_rebased_onto_the_site(site: LoopbackSite) -> None:
    site.routes["/sites/default/files/a%20b.png"] = [Reply(200, b"png")]
    with make_client(site.url) as client:
        got = client.get("https://opengameart.org/sites/default/files/a%20b.png")
    assert got.body == b"png"
    assert got.url == f"{site.url}/sites/default/files/a%20b.png"
    assert site.paths()[-1] == "/sites/default/files/a%20b.png"  # not re-encoded


# --------------------------------------------------------------------------------------------
# Retries


def test_retries_transient_statuses_then_succeeds(site: LoopbackSite) -> None:
    site.routes["/p"] = [Reply(503), Reply(502), Reply(200, b"ok")]
    with make_client(site.url, retries=4) as client:
        got = client.get(f"{site.url}/p")
    assert got.body == b"ok"
    assert [r.status for r in client.log if r.kind == "page"] == [503, 502, 200]
    waits = [r.waited for r in client.log if r.kind == "page"]
    assert waits[0] == 0 and 0.005 <= waits[1] <= 0.015 and 0.01 <= waits[2] <= 0.03


def test_gives_up_after_the_configured_attempts(site: LoopbackSite) -> None:
    site.routes["/p"] = [Reply(500)]
    with make_client(site.url, retries=3) as client, pytest.raises(FetchError) as failed:
        client.get(f"{site.url}/p")
    assert failed.value.permanent is False
    assert failed.value.status == 500
    assert "HTTP 500" in failed.value.reason
    assert site.paths().count("/p") == 3


@pytest.mark.parametrize("status", [404, 410, 403])
def test_permanent_statuses_are_not_retried(site: LoopbackSite, status: int) -> None:
    site.routes["/p"] = [Reply(status)]
    with make_client(site.url, retries=4) as client, pytest.raises(FetchError) as failed:
        client.get(f"{site.url}/p")
    assert failed.value.permanent is True
    assert failed.value.status == status
    assert site.paths().count("/p") == 1


def test_retry_after_seconds_is_honoured(site: LoopbackSite) -> None:
    site.routes["/p"] = [Reply(429, headers={"Retry-After": "1"}), Reply(200, b"ok")]
    with make_client(site.url, backoff_base=5.0) as client:
        assert client.get(f"{site.url}/p").body == b"ok"
    times = [s.at for s in site.seen if s.path == "/p"]
    assert 0.95 <= times[1] - times[0] < 3.0


def test_retry_after_http_date_is_capped(site: LoopbackSite) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(hours=2), usegmt=True)
    site.routes["/p"] = [Reply(503, headers={"Retry-After": later}), Reply(200, b"ok")]
    with make_client(site.url, retry_after_cap=0.2) as client:
        assert client.get(f"{site.url}/p").body == b"ok"
    assert [r.waited for r in client.log if r.kind == "page"] == [0.0, 0.2]


def test_timeouts_are_retried(site: LoopbackSite) -> None:
    site.routes["/slow"] = [Reply(200, b"late", sleep=1.0), Reply(200, b"fast")]
    with make_client(site.url, timeout=0.3) as client:
        assert client.get(f"{site.url}/slow").body == b"fast"
    first = next(r for r in client.log if r.kind == "page")
    assert first.status is None and first.error is not None and "timeout" in first.error


def test_connection_errors_are_retried_then_reported() -> None:
    with LoopbackSite() as gone:
        url = gone.url
    with make_client(url, retries=2) as client, pytest.raises(FetchError) as failed:
        client.get(f"{url}/p")
    assert failed.value.permanent is False
    assert "ConnectError" in failed.value.reason
    assert [r.kind for r in client.log] == ["robots", "page", "page"]


# --------------------------------------------------------------------------------------------
# Redirects


def test_redirects_within_the_site_are_followed(site: LoopbackSite) -> None:
    site.routes["/node/7"] = [Reply(301, headers={"Location": "/content/seven"})]
    site.routes["/content/seven"] = [
        Reply(302, headers={"Location": "https://lpc.opengameart.org/content/7b"})
    ]
    site.routes["/content/7b"] = [Reply(200, b"seven")]
    with make_client(site.url) as client:
        got = client.get(f"{site.url}/node/7")
    assert got.body == b"seven"
    assert got.url == f"{site.url}/content/7b"
    assert site.paths()[1:] == ["/node/7", "/content/seven", "/content/7b"]


def test_redirect_off_site_is_refused_and_named(site: LoopbackSite) -> None:
    with LoopbackSite() as other:
        other.routes["/x"] = [Reply(200, b"other")]
        site.routes["/p"] = [Reply(302, headers={"Location": f"{other.url}/x"})]
        with make_client(site.url) as client, pytest.raises(FetchError) as refused:
            client.get(f"{site.url}/p")
        assert other.seen == []
    assert refused.value.permanent
    assert f"{other.url}/x" in refused.value.reason


def test_redirect_loops_stop(site: LoopbackSite) -> None:
    site.routes["/a"] = [Reply(302, headers={"Location": "/b"})]
    site.routes["/b"] = [Reply(302, headers={"Location": "/a"})]
    with make_client(site.url) as client, pytest.raises(FetchError, match="redirects") as loop:
        client.get(f"{site.url}/a")
    assert loop.value.permanent
    assert len(site.paths()) == 1 + 6


def test_redirect_to_the_download_counter_is_refused(site: LoopbackSite) -> None:
    site.routes["/f"] = [Reply(302, headers={"Location": "/file/5/dlcounter"})]
    with make_client(site.url) as client, pytest.raises(FetchError, match="download counter"):
        client.get(f"{site.url}/f")
    assert "/file/5/dlcounter" not in site.paths()


# --------------------------------------------------------------------------------------------
# Conditional requests, bodies and downloads


def test_conditional_get_sends_validators_and_reads_304(site: LoopbackSite) -> None:
    def handler(path: str, headers: dict[str, str]) -> Reply | None:
        if path != "/p":
            return None
        if headers.get("if-none-match") == '"v1"':
            return Reply(304, headers={"ETag": '"v1"'}, length=False)
        return Reply(
            200, b"body", {"ETag": '"v1"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}
        )

    site.handler = handler
    with make_client(site.url) as client:
        first = client.get(f"{site.url}/p")
        second = client.get(f"{site.url}/p", etag=first.etag, last_modified=first.last_modified)
    assert (first.status, first.not_modified, first.body) == (200, False, b"body")
    assert (second.status, second.not_modified, second.body) == (304, True, b"")
    assert site.seen[-1].headers["if-modified-since"] == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert [r.conditional for r in client.log if r.kind == "page"] == [False, True]


def test_page_body_limit(site: LoopbackSite) -> None:
    site.routes["/big"] = [Reply(200, b"x" * 5000)]
    site.routes["/big-unsized"] = [Reply(200, b"x" * 5000, length=False)]
    with make_client(site.url) as client:
        for path in ("/big", "/big-unsized"):
            with pytest.raises(FetchError, match=r"5000|larger") as big:
                client.get(f"{site.url}{path}", max_bytes=1000)
            assert big.value.permanent
        assert len(client.get(f"{site.url}/big", max_bytes=5000).body) == 5000


def test_truncated_download_is_retried_and_rewritten(site: LoopbackSite) -> None:
    payload = bytes(range(256)) * 400
    site.routes["/f.zip"] = [
        Reply(200, payload, truncate_to=30000),
        Reply(200, payload, {"ETag": '"z"', "Content-Type": "application/zip"}),
    ]
    dest = io.BytesIO()
    with make_client(site.url) as client:
        got = client.download(f"{site.url}/f.zip", dest, max_bytes=1 << 20)
    assert dest.getvalue() == payload
    assert (got.status, got.size, got.etag, got.content_type) == (
        200,
        len(payload),
        '"z"',
        "application/zip",
    )
    assert [r.status for r in client.log if r.kind == "file"] == [200, 200]


def test_truncated_download_gives_up_with_an_empty_dest(site: LoopbackSite) -> None:
    site.routes["/f.zip"] = [Reply(200, b"a" * 10000, truncate_to=100)]
    dest = io.BytesIO()
    with make_client(site.url, retries=2) as client, pytest.raises(FetchError) as failed:
        client.download(f"{site.url}/f.zip", dest, max_bytes=1 << 20)
    assert failed.value.permanent is False
    assert "truncated" in failed.value.reason
    assert dest.getvalue() == b""


def test_download_refuses_bodies_over_the_limit(site: LoopbackSite) -> None:
    site.routes["/sized.png"] = [Reply(200, b"p" * 4096)]
    site.routes["/unsized.png"] = [Reply(200, b"p" * 4096, length=False)]
    with make_client(site.url) as client:
        for path in ("/sized.png", "/unsized.png"):
            dest = io.BytesIO()
            with pytest.raises(FetchError, match=r"4096|larger") as big:
                client.download(f"{site.url}{path}", dest, max_bytes=1000)
            assert big.value.permanent
            assert dest.getvalue() == b""
    assert site.paths().count("/unsized.png") == 1


def test_download_not_modified_leaves_dest_alone(site: LoopbackSite) -> None:
    site.routes["/f.png"] = [Reply(304, headers={"ETag": '"q"'}, length=False)]
    dest = io.BytesIO(b"kept")
    with make_client(site.url) as client:
        got = client.download(f"{site.url}/f.png", dest, etag='"q"', max_bytes=100)
    assert got.not_modified and got.status == 304 and got.size == 0
    assert dest.getvalue() == b"kept"
    assert site.seen[-1].headers["if-none-match"] == '"q"'
