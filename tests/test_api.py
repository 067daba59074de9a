"""The JSON API over real HTTP, on a data folder the real pipeline built from the local site.

Three servers share that folder: ``api`` (image URLs on loopback allowed, as tests need),
``strict`` (the default: private addresses refused) and ``small`` (tight query limits, so the
size refusals need only kilobytes).
"""

from __future__ import annotations

import io
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from PIL import Image

from ogasearch.localsite.kenney import sprite_bytes
from ogasearch.search.query_image import EMPTY
from ogasearch.settings import Settings
from ogasearch.web.app import create_app
from ogasearch.web.server import running_server
from support.search_data import XSS_TITLE, SearchData, app_client, search_data

ALIEN = "alien/alienBlue_front.png"
ALIEN_PAGE = "alien-blue-player-character"
BEE = "enemies/bee.png"  # in gfx_3.zip, which its page calls gfx.zip; recoloured on another page
IDLE = "animated_characters/female_adventurer/femaleAdventurer_idle.png"
RESULT_FIELDS = {
    "image_id",
    "score",
    "match",
    "image_url",
    "page_url",
    "title",
    "author",
    "author_url",
    "licenses",
    "post_date",
    "file_url",
    "file_name",
    "page_file_name",
    "archive_path",
    "width",
    "height",
    "frames",
    "tile",
    "parent_image_id",
    "parent_image_url",
    "copies",
    "label",
    "edits",
    "score_percent",
    "more",
}
COPY_FIELDS = {"page_url", "title", "author", "licenses", "post_date", "page_file_name"}
LABELS = {"exact copy", "edited copy", "found in your picture", "similar", "keyword match"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SearchData:
    return search_data(tmp_path_factory)


def _client(settings: Settings) -> Iterator[httpx.Client]:
    yield from app_client(settings, timeout=120)


@pytest.fixture(scope="module")
def api(data: SearchData) -> Iterator[httpx.Client]:
    yield from _client(data.settings)


@pytest.fixture(scope="module")
def strict(data: SearchData) -> Iterator[httpx.Client]:
    yield from _client(data.settings.model_copy(update={"allow_private_urls": False}))


SMALL_BYTES = 50_000
SMALL_PIXELS = 250_000


@pytest.fixture(scope="module")
def small(data: SearchData) -> Iterator[httpx.Client]:
    limits = data.settings.limits.model_copy(
        update={"max_query_bytes": SMALL_BYTES, "max_query_pixels": SMALL_PIXELS}
    )
    yield from _client(data.settings.model_copy(update={"limits": limits}))


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def upload(client: httpx.Client, data: bytes, **fields: object) -> httpx.Response:
    form = {k: str(v) for k, v in fields.items()}
    return client.post(
        "/api/search/image", files={"image": ("q.png", data, "image/png")}, data=form
    )


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == code
    assert body["detail"]
    return body


def check_result_shape(result: dict) -> None:
    assert set(result) >= RESULT_FIELDS
    assert result["image_url"] == f"/images/{result['image_id']}.png"
    assert isinstance(result["score"], float)
    assert isinstance(result["licenses"], list)
    assert result["page_url"].startswith("http://127.0.0.1:")
    assert "/content/" in result["page_url"]
    assert result["tile"] is None or len(result["tile"]) == 4
    assert result["label"] in LABELS
    percent = result["score_percent"]
    assert percent is None or (isinstance(percent, int) and 0 <= percent <= 100)
    for copy in result["copies"]:
        assert set(copy) >= COPY_FIELDS


# --- search by uploaded image ---


def test_upload_finds_its_source_page(api: httpx.Client, data: SearchData) -> None:
    response = upload(api, sprite_bytes(ALIEN))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"results", "took_ms"}
    assert isinstance(body["took_ms"], float) and body["took_ms"] > 0
    results = body["results"]
    assert 1 <= len(results) <= 20
    for result in results:
        check_result_shape(result)
    best = results[0]
    assert best["page_url"] == data.page_url(ALIEN_PAGE)
    assert best["title"] == "Alien Blue - player character"
    assert best["licenses"] == ["CC0"]
    assert best["match"] == "exact"
    assert best["score"] == pytest.approx(1.0)
    assert (best["label"], best["edits"], best["score_percent"]) == ("exact copy", [], None)


def _flip(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as im:
        return png(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT))


def _upscale(data: bytes, factor: int = 3) -> bytes:
    with Image.open(io.BytesIO(data)) as im:
        return png(im.resize((im.width * factor, im.height * factor), Image.Resampling.NEAREST))


@pytest.mark.parametrize(
    ("edit", "edits"),
    [
        (lambda b: b, []),
        (_upscale, ["upscaled"]),
        (_flip, ["flipped"]),
        (lambda b: _upscale(_flip(b)), ["upscaled", "flipped"]),
    ],
    ids=["as-is", "upscaled", "flipped", "upscaled-flipped"],
)
def test_edited_copies_name_their_edits(
    api: httpx.Client, data: SearchData, edit: object, edits: list[str]
) -> None:
    """The matcher says which edit it undid; a copy with none is an "exact copy"."""
    query = edit(sprite_bytes(BEE))  # type: ignore[operator]
    best = upload(api, query).json()["results"][0]
    assert best["page_url"] == data.page_url("enemy-sprites")
    assert best["match"] == "exact"
    assert best["edits"] == edits
    assert best["label"] == ("edited copy" if edits else "exact copy")


def test_a_recolouring_is_an_edited_copy_and_neighbours_are_similar(
    api: httpx.Client, data: SearchData
) -> None:
    results = upload(api, sprite_bytes(BEE), k=40).json()["results"]
    red = next(r for r in results if r["page_url"] == data.page_url("enemy-sprites-0"))
    assert (red["match"], red["label"], red["edits"]) == ("near", "edited copy", ["recoloured"])
    similar = [r for r in results if r["match"] == "vector"]
    assert similar
    for r in similar:
        assert r["label"] == "similar" and r["edits"] == []
        assert r["score_percent"] == max(0, min(100, round(r["score"] * 100)))


def test_results_show_the_file_name_the_page_shows(api: httpx.Client, data: SearchData) -> None:
    """OGA stored the upload as gfx_3.zip (gfx.zip was taken); its page says gfx.zip."""
    best = upload(api, sprite_bytes(BEE)).json()["results"][0]
    assert best["file_url"] == data.file_url("gfx_3.zip")
    assert (best["file_name"], best["page_file_name"]) == ("gfx_3.zip", "gfx.zip")
    assert best["archive_path"] == "enemies/bee.png"


def test_upscaled_query_still_finds_the_source(api: httpx.Client, data: SearchData) -> None:
    with Image.open(io.BytesIO(sprite_bytes(ALIEN))) as im:
        big = im.resize((im.width * 3, im.height * 3), Image.Resampling.NEAREST)
    results = upload(api, png(big)).json()["results"]
    assert results[0]["page_url"] == data.page_url(ALIEN_PAGE)


def test_k_as_form_field_and_as_query(api: httpx.Client) -> None:
    assert len(upload(api, sprite_bytes(ALIEN), k=3).json()["results"]) == 3
    response = api.post(
        "/api/search/image",
        params={"k": 2},
        files={"image": ("q.png", sprite_bytes(ALIEN), "image/png")},
    )
    assert len(response.json()["results"]) == 2


def test_at_most_200_results(api: httpx.Client) -> None:
    assert len(upload(api, sprite_bytes(ALIEN), k=200).json()["results"]) <= 200
    assert_error(upload(api, sprite_bytes(ALIEN), k=201), 422, "invalid_parameters")


@pytest.mark.parametrize("k", ["0", "-1", "201", "abc", "2.5"])
def test_bad_k_is_422(api: httpx.Client, k: str) -> None:
    body = assert_error(upload(api, sprite_bytes(ALIEN), k=k), 422, "invalid_parameters")
    assert any("k" in problem["loc"] for problem in body["detail"])
    assert_error(
        api.get("/api/search/text", params={"q": "tank", "k": k}), 422, "invalid_parameters"
    )


def test_copies_are_grouped_earliest_first(api: httpx.Client, data: SearchData) -> None:
    """The adventurer's idle frame was re-uploaded later as "Hero sprite": one result."""
    results = upload(api, sprite_bytes(IDLE)).json()["results"]
    best = results[0]
    pages = [best["page_url"]] + [c["page_url"] for c in best["copies"]]
    assert sorted(pages) == sorted(
        [data.page_url("female-adventurer-walk-cycle"), data.page_url("hero-sprite")]
    )
    dates = [datetime.fromisoformat(c["post_date"]) for c in best["copies"]]
    assert dates == sorted(dates)
    others = [r for r in results[1:] if r["page_url"] == data.page_url("hero-sprite")]
    assert not any(r["score"] == pytest.approx(1.0) for r in others)  # not listed twice


def test_licence_filter(api: httpx.Client) -> None:
    results = upload(api, sprite_bytes(ALIEN), license="CC-BY 3.0").json()["results"]
    assert results
    assert all("CC-BY 3.0" in r["licenses"] for r in results)
    everything = upload(api, sprite_bytes(ALIEN), k=50).json()["results"]
    assert any("CC-BY 3.0" not in r["licenses"] for r in everything)


@pytest.mark.parametrize(("name", "value"), [("license", "No Such Licence"), ("art_type", "pixel")])
def test_unknown_filter_values_are_422_with_the_valid_ones(
    api: httpx.Client, name: str, value: str
) -> None:
    """A filter that matches nothing the catalog knows is a mistake, not an empty answer."""
    query = {"image": ("q.png", sprite_bytes(ALIEN), "image/png")}
    requests = [
        lambda: api.post("/api/search/image", params={name: value}, files=query),
        lambda: api.get("/api/search/text", params={"q": "tank", name: value}),
        lambda: api.get("/api/similar/1", params={name: value}),
    ]
    for request in requests:
        body = assert_error(request(), 422, "invalid_parameters")
        (problem,) = body["detail"]
        assert problem["loc"] == ["query", name]
        assert problem["type"] == "unknown_value"
        assert f"unknown {name} {value!r}" in problem["msg"]
        assert problem["valid"] == sorted(problem["valid"]) and problem["valid"]
    licences = assert_error(
        api.get("/api/search/text", params={"q": "tank", "license": "bogus"}),
        422,
        "invalid_parameters",
    )["detail"][0]["valid"]
    assert {"CC0", "CC-BY 3.0"} <= set(licences)
    art_types = assert_error(
        api.get("/api/search/text", params={"q": "tank", "art_type": "pixel"}),
        422,
        "invalid_parameters",
    )["detail"][0]["valid"]
    assert "2D Art" in art_types
    ok = api.get("/api/search/text", params={"q": "tank", "art_type": "2D Art", "license": "CC0"})
    assert ok.status_code == 200 and ok.json()["results"]


def test_tile_filters(api: httpx.Client) -> None:
    query = sprite_bytes(ALIEN)
    tiles = api.post(
        "/api/search/image",
        params={"tiles": "only", "k": 30},
        files={"image": ("q.png", query, "image/png")},
    ).json()["results"]
    assert tiles and all(r["tile"] is not None for r in tiles)
    assert all(r["parent_image_url"] == f"/images/{r['parent_image_id']}.png" for r in tiles)
    whole = upload(api, query, tiles="exclude", k=30).json()["results"]
    assert whole and all(r["tile"] is None and r["parent_image_id"] is None for r in whole)
    assert_error(upload(api, query, tiles="some"), 422, "invalid_parameters")


def test_missing_image_field_is_422(api: httpx.Client) -> None:
    response = api.post("/api/search/image", data={"k": "5"})
    body = assert_error(response, 422, "invalid_parameters")
    assert any("image" in problem["loc"] for problem in body["detail"])


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", EMPTY),
        (b"hello, I am not an image", "unsupported format"),
        (b"II*\x00" + b"\x00" * 200, "unsupported format TIFF"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "unsupported format"),
        (sprite_bytes(ALIEN)[:300], "truncated|corrupt"),
    ],
)
def test_unreadable_upload_is_400(api: httpx.Client, payload: bytes, reason: str) -> None:
    body = assert_error(upload(api, payload), 400, "unreadable_image")
    assert any(part in body["detail"] for part in reason.split("|"))


def test_decompression_bomb_is_400(api: httpx.Client) -> None:
    bomb = png(Image.new("L", (5000, 5000)))  # 25 Mpx, over the 16 Mpx query limit
    assert len(bomb) < 100_000
    body = assert_error(upload(api, bomb), 400, "unreadable_image")
    assert "decompression bomb" in body["detail"]


def test_pixel_limit_follows_the_setting(small: httpx.Client) -> None:
    body = assert_error(upload(small, png(Image.new("L", (600, 600)))), 400, "unreadable_image")
    assert str(SMALL_PIXELS) in body["detail"]
    assert upload(small, png(Image.new("L", (400, 400)))).status_code == 200


def test_upload_over_the_limit_is_413(small: httpx.Client) -> None:
    body = assert_error(upload(small, b"\x89PNG" + b"x" * 300_000), 413, "too_large")
    assert "limit" in body["detail"]


def test_image_part_over_the_limit_is_413(small: httpx.Client) -> None:
    """A body within the multipart allowance whose image alone is over the limit."""
    assert_error(upload(small, b"\x89PNG" + b"x" * (SMALL_BYTES + 100)), 413, "too_large")


def test_chunked_upload_over_the_limit_is_413(small: httpx.Client) -> None:
    """No Content-Length: the server counts and stops reading at the limit."""
    boundary = "ogasearchboundary"
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=image; filename=q.png\r\n"
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    chunks_sent = 0

    def body() -> Iterator[bytes]:
        nonlocal chunks_sent
        yield head
        for _ in range(200):  # 200 x 16 KiB = 3.2 MB, far over the limit
            chunks_sent += 1
            yield b"x" * 16384
        yield f"\r\n--{boundary}--\r\n".encode()

    try:
        response = small.post(
            "/api/search/image",
            content=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    except httpx.WriteError:
        pytest.fail("the server should answer 413, not drop the connection")
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "too_large")


# --- search by image URL ---


def test_url_finds_its_source_page(api: httpx.Client, data: SearchData) -> None:
    response = api.get(
        "/api/search/image", params={"url": data.file_url("alienBlue_front.png"), "k": 5}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 5
    assert results[0]["page_url"] == data.page_url(ALIEN_PAGE)
    check_result_shape(results[0])


def test_url_filters(api: httpx.Client, data: SearchData) -> None:
    params = {"url": data.file_url("alienBlue_front.png"), "tiles": "exclude", "license": "CC0"}
    results = api.get("/api/search/image", params=params).json()["results"]
    assert results
    wrong = [r for r in results if r["tile"] is not None or "CC0" not in r["licenses"]]
    assert wrong == []


def test_url_missing_is_502(api: httpx.Client, data: SearchData) -> None:
    response = api.get("/api/search/image", params={"url": data.file_url("no_such_file.png")})
    body = assert_error(response, 502, "fetch_failed")
    assert "404" in body["detail"]


def test_url_unreachable_is_502(api: httpx.Client) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    response = api.get("/api/search/image", params={"url": f"http://127.0.0.1:{port}/a.png"})
    assert_error(response, 502, "fetch_failed")


def test_url_of_a_web_page_is_400(api: httpx.Client, data: SearchData) -> None:
    response = api.get("/api/search/image", params={"url": data.page_url(ALIEN_PAGE)})
    assert_error(response, 400, "unreadable_image")


def test_url_redirect_is_followed(api: httpx.Client, data: SearchData) -> None:
    """/node/NID answers 301 to the content page (an HTML page, hence 400 after the hop)."""
    node = data.site.site.page(ALIEN_PAGE).node_id
    data.site.clear_requests()
    response = api.get("/api/search/image", params={"url": data.site.url(f"/node/{node}")})
    assert_error(response, 400, "unreadable_image")
    paths = [r.path for r in data.site.requests()]
    assert f"/node/{node}" in paths and f"/content/{ALIEN_PAGE}" in paths


def test_url_too_large_is_413(small: httpx.Client, data: SearchData) -> None:
    response = small.get("/api/search/image", params={"url": data.file_url("platformer_tiles.png")})
    assert_error(response, 413, "too_large")


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.png", "file:///etc/passwd", "javascript:alert(1)", "nonsense"]
)
def test_url_scheme_refused_is_422(api: httpx.Client, url: str) -> None:
    assert_error(api.get("/api/search/image", params={"url": url}), 422, "url_refused")


def test_url_missing_parameter_is_422(api: httpx.Client) -> None:
    assert_error(api.get("/api/search/image"), 422, "invalid_parameters")


def test_private_urls_refused_by_default(strict: httpx.Client, data: SearchData) -> None:
    """The same local-site URL that ``api`` fetches is refused, and never requested."""
    port = data.site.port
    data.site.clear_requests()
    for url in [
        data.file_url("alienBlue_front.png"),
        f"http://localhost:{port}/sites/default/files/alienBlue_front.png",
        f"http://[::1]:{port}/sites/default/files/alienBlue_front.png",
        f"http://[::ffff:127.0.0.1]:{port}/sites/default/files/alienBlue_front.png",
        "http://10.0.0.1/a.png",
        "http://172.16.0.1/a.png",
        "http://192.168.1.1/a.png",
        "http://169.254.169.254/latest/meta-data/",
    ]:
        body = assert_error(
            strict.get("/api/search/image", params={"url": url}), 422, "url_refused"
        )
        assert body["detail"] == "this URL is not allowed"  # which address: the log only
    assert data.site.requests() == []


# --- similar, keywords, one image, stats, images ---


def test_similar(api: httpx.Client) -> None:
    best = upload(api, sprite_bytes(ALIEN), k=1).json()["results"][0]
    response = api.get(f"/api/similar/{best['image_id']}", params={"k": 5})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"results", "took_ms"}
    results = body["results"]
    assert 1 < len(results) <= 5
    assert results[0]["image_id"] == best["image_id"]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    for result in results:
        check_result_shape(result)


def test_similar_with_filters(api: httpx.Client) -> None:
    best = upload(api, sprite_bytes(ALIEN), k=1).json()["results"][0]
    tiles = api.get(f"/api/similar/{best['image_id']}", params={"tiles": "only"}).json()
    assert tiles["results"] and all(r["tile"] for r in tiles["results"])


def test_similar_unknown_image_is_404(api: httpx.Client) -> None:
    assert_error(api.get("/api/similar/987654321"), 404, "not_found")
    assert_error(api.get("/api/similar/abc"), 422, "invalid_parameters")
    assert_error(api.get("/api/similar/1", params={"k": 0}), 422, "invalid_parameters")


def test_keyword_search(api: httpx.Client, data: SearchData) -> None:
    response = api.get("/api/search/text", params={"q": "tanks"})
    assert response.status_code == 200
    results = response.json()["results"]
    assert results
    assert results[0]["page_url"] == data.page_url("top-down-tanks")
    for result in results:
        check_result_shape(result)
    assert response.json()["did_you_mean"] is None
    assert api.get("/api/search/text", params={"q": "zzzqqqxxx"}).json()["results"] == []


def test_keyword_search_corrects_a_typo(api: httpx.Client, data: SearchData) -> None:
    answer = api.get("/api/search/text", params={"q": "top-down tnaks"}).json()
    assert answer["did_you_mean"] == "top down tanks"
    assert answer["results"][0]["page_url"] == data.page_url("top-down-tanks")


def test_keyword_search_with_filters(api: httpx.Client) -> None:
    results = api.get("/api/search/text", params={"q": "sprites", "license": "OGA-BY 3.0"})
    assert results.status_code == 200
    assert all("OGA-BY 3.0" in r["licenses"] for r in results.json()["results"])


def test_keyword_search_returns_titles_verbatim(api: httpx.Client) -> None:
    """JSON carries the crawled title as data; escaping is the HTML page's job."""
    results = api.get("/api/search/text", params={"q": "probe"}).json()["results"]
    assert [r["title"] for r in results] == [XSS_TITLE]


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}, {"q": "_!?"}, {"q": "x" * 501}])
def test_keyword_search_bad_query_is_422(api: httpx.Client, params: dict) -> None:
    assert_error(api.get("/api/search/text", params=params), 422, "invalid_parameters")


def test_one_image_with_its_sources(api: httpx.Client, data: SearchData) -> None:
    best = upload(api, sprite_bytes(IDLE), k=1).json()["results"][0]
    response = api.get(f"/api/images/{best['image_id']}")
    assert response.status_code == 200
    image = response.json()
    assert image["image_id"] == best["image_id"]
    assert image["image_url"] == f"/images/{best['image_id']}.png"
    assert (image["width"], image["height"]) == (best["width"], best["height"])
    pages = {image["page_url"]} | {c["page_url"] for c in image["copies"]}
    assert pages == {data.page_url("female-adventurer-walk-cycle"), data.page_url("hero-sprite")}
    assert "score" not in image


def test_one_image_unknown_is_404(api: httpx.Client) -> None:
    assert_error(api.get("/api/images/987654321"), 404, "not_found")
    assert_error(api.get("/api/images/x"), 422, "invalid_parameters")


def test_stats(api: httpx.Client) -> None:
    stats = api.get("/api/stats").json()
    for key in ("pages", "files", "images", "tiles", "indexed"):
        assert isinstance(stats[key], int)
    assert stats["pages"] >= 18
    assert stats["tiles"] > 0
    assert stats["indexed"] == stats["images"] + stats["tiles"]


def test_image_png(api: httpx.Client) -> None:
    best = upload(api, sprite_bytes(ALIEN), k=1).json()["results"][0]
    response = api.get(best["image_url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(response.content)) as im:
        assert im.size == (best["width"], best["height"])
        with Image.open(io.BytesIO(sprite_bytes(ALIEN))) as original:
            assert im.convert("RGBA").tobytes() == original.convert("RGBA").tobytes()


def test_tile_png_is_cut_from_its_sheet(api: httpx.Client) -> None:
    tile = api.post(
        "/api/search/image",
        params={"tiles": "only", "k": 1},
        files={"image": ("q.png", sprite_bytes(ALIEN), "image/png")},
    ).json()["results"][0]
    x, y, w, h = tile["tile"]
    with Image.open(io.BytesIO(api.get(tile["image_url"]).content)) as cut:
        assert cut.size == (w, h)
        piece = cut.convert("RGBA").tobytes()
    with Image.open(io.BytesIO(api.get(tile["parent_image_url"]).content)) as sheet:
        assert sheet.convert("RGBA").crop((x, y, x + w, y + h)).tobytes() == piece


def test_image_png_unknown_is_404(api: httpx.Client) -> None:
    assert_error(api.get("/images/987654321.png"), 404, "not_found")


# --- serving beside a running update ---


def test_serves_while_update_runs(data: SearchData, tmp_path: Path) -> None:
    """A copy of the data folder is served while ``update`` adds a new page to it: every
    request meanwhile is answered, and the new page's image is found once the update ends."""
    from ogasearch.pipeline import STAGES, update
    from ogasearch.workspace import Workspace

    stages = [name for name in STAGES if name != "provenance"]  # as the copied folder was built
    folder = tmp_path / "data"
    shutil.copytree(data.settings.data, folder)
    settings = data.settings.model_copy(update={"data": folder})
    fresh = Image.new("RGBA", (20, 20), (30, 200, 90, 255))
    fresh.paste((240, 240, 20, 255), (4, 4, 16, 16))
    fresh.paste((10, 10, 120, 255), (8, 8, 12, 12))
    data.site.site.add_page(
        "Fresh green block", {"fresh_block.png": png(fresh)}, author="newcomer", slug="fresh-block"
    )
    statuses: list[int] = []
    with running_server(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as c:
        before = upload(c, png(fresh), k=1).json()["results"]
        pages_before = c.get("/api/stats").json()["pages"]
        assert before[0]["page_url"] != data.page_url("fresh-block")
        worker = threading.Thread(target=lambda: update(Workspace(settings), stages=stages))
        worker.start()
        while worker.is_alive():
            statuses.append(c.get("/api/stats").status_code)
            statuses.append(upload(c, sprite_bytes(ALIEN), k=5).status_code)
        worker.join()
        time.sleep(1.5)  # the server re-reads a newer index at most once a second
        after = upload(c, png(fresh), k=1).json()["results"]
        stats = c.get("/api/stats").json()
    assert statuses and set(statuses) == {200}
    assert after[0]["page_url"] == data.page_url("fresh-block")
    assert after[0]["match"] == "exact"
    assert stats["pages"] == pages_before + 1


# --- the contract itself ---


def test_openapi_document(api: httpx.Client) -> None:
    document = api.get("/openapi.json").json()
    paths = document["paths"]
    assert set(paths) >= {
        "/api/search/image",
        "/api/similar/{image_id}",
        "/api/search/text",
        "/api/images/{image_id}",
        "/api/stats",
    }
    assert set(paths["/api/search/image"]) == {"get", "post"}
    post = paths["/api/search/image"]["post"]
    assert {"400", "413", "422"} <= set(post["responses"])
    assert "502" in paths["/api/search/image"]["get"]["responses"]
    schemas = document["components"]["schemas"]
    assert set(schemas["ResultOut"]["properties"]) >= RESULT_FIELDS
    result = schemas["ResultOut"]["properties"]
    assert set(result["label"]["enum"]) == LABELS
    assert set(result["edits"]["items"]["enum"]) == {
        "upscaled",
        "recoloured",
        "flipped",
        "cropped",
        "recompressed",
    }
    assert "gfx_3.zip" in result["page_file_name"]["description"]
    assert set(schemas["ErrorOut"]["properties"]) == {"error", "detail"}
    assert not any(p == "/" or p.startswith("/images") for p in paths)  # the UI is not API
    # the interactive pages would load scripts from a CDN: off (openapi.json is the contract)
    assert api.get("/docs").status_code == 404
    assert api.get("/redoc").status_code == 404


def test_unknown_route_and_method_are_json(api: httpx.Client) -> None:
    assert_error(api.get("/api/nothing-here"), 404, "not_found")
    assert_error(api.delete("/api/stats"), 405, "method_not_allowed")


def test_security_headers(api: httpx.Client) -> None:
    response = api.get("/api/stats")
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_crop_is_an_edited_copy_and_says_so(api: httpx.Client, data: SearchData) -> None:
    with Image.open(io.BytesIO(sprite_bytes(BEE))) as im:
        left, top, right, bottom = im.getchannel("A").getbbox()
        cut = (right - left) // 5
        crop = png(im.crop((left + cut, top, right, bottom)))  # 80% of its pixels
    best = upload(api, crop).json()["results"][0]
    assert best["page_url"] == data.page_url("enemy-sprites")
    assert (best["match"], best["label"]) == ("near", "edited copy")
    assert "cropped" in best["edits"]
    assert best["score_percent"] == round(best["score"] * 100)


def test_a_jpeg_copy_is_re_compressed(api: httpx.Client, data: SearchData) -> None:
    with Image.open(io.BytesIO(sprite_bytes(ALIEN))) as im:
        flat = Image.new("RGB", im.size, (255, 255, 255))
        flat.paste(im, mask=im.getchannel("A"))
    out = io.BytesIO()
    flat.save(out, "JPEG", quality=85)
    results = upload(api, out.getvalue()).json()["results"]
    best = results[0]
    assert best["page_url"] == data.page_url(ALIEN_PAGE)
    assert best["label"] == "edited copy"
    assert "recompressed" in best["edits"]
