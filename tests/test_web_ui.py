"""The search page: server-rendered HTML over real HTTP, then driven in headless Chromium.

Both run on the data folder the real pipeline built from the local site (``support``), whose
extra page has a title that tries to run script: it must show as text.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import io
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from markupsafe import escape
from PIL import Image
from playwright.sync_api import Browser, Page

from ogasearch.localsite.kenney import sprite_bytes
from ogasearch.web import ui
from ogasearch.web.app import create_app
from ogasearch.web.server import running_server
from ogasearch.web.views import fit, licence_class, safe_link
from support.browser import chromium
from support.search_data import XSS_TITLE, SearchData, search_data

ALIEN = "alien/alienBlue_front.png"
ALIEN_PAGE = "alien-blue-player-character"
IDLE = "animated_characters/female_adventurer/femaleAdventurer_idle.png"
ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "screenshot.png"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SearchData:
    return search_data(tmp_path_factory)


@pytest.fixture(scope="module")
def base_url(data: SearchData) -> Iterator[str]:
    with running_server(create_app(data.settings)) as url:
        yield url


@pytest.fixture(scope="module")
def web(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=120) as client:
        yield client


def result_titles(page_html: str) -> list[str]:
    titles = re.findall(
        r'<h3 class="title">\s*(?:<a href="[^"]*">)?(.*?)(?:</a>)?\s*</h3>', page_html
    )
    return [html.unescape(t) for t in titles]


def result_links(page_html: str) -> list[str]:
    return [
        html.unescape(h) for h in re.findall(r'<h3 class="title">\s*<a href="([^"]*)"', page_html)
    ]


def upload_page(web: httpx.Client, data: bytes, **fields: str) -> httpx.Response:
    response = web.post("/", files={"image": ("sprite.png", data, "image/png")}, data=fields)
    assert response.status_code == 303, response.text
    return web.get(response.headers["location"])


# --- view helpers ---


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        ((16, 16), (128, 128)),  # 8x, whole pixels
        ((20, 10), (120, 60)),  # 6x
        ((128, 64), (128, 64)),
        ((300, 150), (128, 64)),  # shrunk to fit
        ((1, 1000), (1, 128)),
    ],
)
def test_thumbnail_sizes(size: tuple[int, int], shown: tuple[int, int]) -> None:
    assert fit(*size, 128) == shown


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://opengameart.org/users/x", "https://opengameart.org/users/x"),
        ("http://example.com/a", "http://example.com/a"),
        ("/users/bob", "https://site.example/users/bob"),
        ("javascript:alert(1)", None),
        (" JavaScript:alert(1)", None),
        ("data:text/html,<script>", None),
        ("//evil.example/x", None),
        ("", None),
        (None, None),
    ],
)
def test_only_http_links(url: str | None, safe: str | None) -> None:
    assert safe_link(url, "https://site.example") == safe


def test_licence_badge_classes() -> None:
    assert licence_class("CC-BY-SA 3.0") == "lic-cc-by-sa"
    assert licence_class("CC0") == "lic-cc0"
    assert licence_class('"><script>') == "lic-script"


# --- the page over HTTP ---


def test_front_page(web: httpx.Client) -> None:
    response = web.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    page = response.text
    assert 'enctype="multipart/form-data"' in page
    assert 'name="image"' in page and 'name="q"' in page
    assert '<option value="CC0">CC0</option>' in page
    assert "indexed" in page  # the stats line


def test_upload_shows_the_source_page_first(web: httpx.Client, data: SearchData) -> None:
    response = upload_page(web, sprite_bytes(ALIEN))
    assert response.status_code == 200
    assert urlsplit(str(response.url)).query.startswith("upload=")
    links = result_links(response.text)
    assert links[0] == data.page_url(ALIEN_PAGE)
    assert len(links) >= 10 and len(set(links)) == len(links)  # one card per page
    assert 'class="pixelated query-image" src="/uploads/' in response.text
    assert 'class="more"' in response.text


def test_upload_preview_is_served(web: httpx.Client) -> None:
    response = web.post("/", files={"image": ("a.png", sprite_bytes(ALIEN), "image/png")})
    key = parse_qs(urlsplit(response.headers["location"]).query)["upload"][0]
    preview = web.get(f"/uploads/{key}")
    assert preview.status_code == 200
    assert preview.headers["content-type"] == "image/png"
    assert preview.content == sprite_bytes(ALIEN)
    assert web.get("/uploads/" + "0" * 64).status_code == 404


def test_unreadable_upload_shows_an_error(web: httpx.Client) -> None:
    response = web.post("/", files={"image": ("a.png", b"not an image", "image/png")})
    assert response.status_code == 400
    assert 'class="error"' in response.text
    assert "unsupported format" in response.text


def test_expired_upload(web: httpx.Client) -> None:
    response = web.get("/", params={"upload": "ab" * 32})
    assert response.status_code == 404
    assert "expired" in response.text


def test_text_box_takes_keywords_or_an_image_url(web: httpx.Client, data: SearchData) -> None:
    response = web.post("/", data={"q": "tanks", "license": "CC0"})
    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["location"]).query) == {
        "q": ["tanks"],
        "license": ["CC0"],
    }
    url = data.file_url("alienBlue_front.png")
    response = web.post("/", data={"q": url})
    assert parse_qs(urlsplit(response.headers["location"]).query) == {"url": [url]}
    page = web.get(response.headers["location"])
    assert result_links(page.text)[0] == data.page_url(ALIEN_PAGE)


def test_changing_a_filter_keeps_the_search(web: httpx.Client) -> None:
    response = web.post("/", data={"q": "", "similar": "5", "tiles": "only"})
    assert parse_qs(urlsplit(response.headers["location"]).query) == {
        "similar": ["5"],
        "tiles": ["only"],
    }


def test_keyword_results_escape_crawled_titles(web: httpx.Client) -> None:
    response = web.get("/", params={"q": "probe"})
    assert response.status_code == 200
    page = response.text
    assert result_titles(page) == [XSS_TITLE]
    assert "<script>window.__xss" not in page
    assert "onerror=" not in page.replace("onerror=&#34;", "").replace("onerror=&quot;", "")
    assert str(escape(XSS_TITLE)) in page


def test_licence_filter_on_the_page(web: httpx.Client) -> None:
    page = web.get("/", params={"similar": "5", "license": "CC0"}).text
    assert '<option value="CC0" selected>' in page
    badges = re.findall(r'<p class="licences">(.*?)</p>', page, re.DOTALL)
    assert badges and all("CC0" in b for b in badges)


def test_copies_shown_once(web: httpx.Client, data: SearchData) -> None:
    page = upload_page(web, sprite_bytes(IDLE)).text
    links = result_links(page)
    copies = {data.page_url("female-adventurer-walk-cycle"), data.page_url("hero-sprite")}
    assert links[0] in copies
    assert len(copies & set(links)) == 1  # the other page is a copy, not a second result
    assert "also on 1 page<" in page


def test_similar_links_and_paging(web: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    # five cards a page: the site has fewer pages than two pages of 24 cards
    monkeypatch.setattr(ui, "PAGE_SIZE", 5)
    first = web.get("/", params={"q": "sprites"}).text
    similar = re.findall(r'<a class="similar" href="([^"]*)"', first)
    assert similar and all(parse_qs(urlsplit(html.unescape(s)).query)["similar"] for s in similar)
    one = web.get(html.unescape(similar[0]))
    assert one.status_code == 200
    ids_one = re.findall(r'data-image-id="(\d+)"', one.text)
    assert len(ids_one) == 5
    more = re.search(r'<a class="more" href="([^"]*)"', one.text)
    assert more is not None
    two = web.get(html.unescape(more.group(1)))
    ids_two = re.findall(r'data-image-id="(\d+)"', two.text)
    assert ids_two and not set(ids_one) & set(ids_two)
    assert '<span class="current">2</span>' in two.text
    assert web.get("/", params={"similar": "987654321"}).status_code == 404


def test_tile_result_shows_its_sheet_outlined(web: httpx.Client) -> None:
    page = upload_page(web, sprite_bytes(ALIEN), tiles="only").text
    assert "<svg viewBox=" in page
    box = re.search(
        r"<summary>in its (\d+)×(\d+) sheet</summary>.*?"
        r'<img class="pixelated" src="/images/\d+\.png"[^>]*loading="lazy">.*?'
        r'<rect class="tile-box" x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)"',
        page,
        re.DOTALL,
    )
    assert box is not None
    sheet_w, sheet_h, x, y, w, h = map(int, box.groups())
    assert 0 <= x < x + w <= sheet_w and 0 <= y < y + h <= sheet_h


def test_bad_page_parameters_are_tolerated(web: httpx.Client) -> None:
    for params in ({"page": "abc", "q": "tank"}, {"page": "-5", "q": "tank"}, {"tiles": "x"}):
        assert web.get("/", params=params).status_code == 200


def test_static_files(web: httpx.Client) -> None:
    css = web.get("/static/style.css")
    assert css.status_code == 200
    assert "image-rendering: pixelated" in css.text
    assert web.get("/static/search.js").status_code == 200


BEE = "enemies/bee.png"  # in gfx_3.zip, which its page calls gfx.zip; recoloured on another page


def test_cards_speak_plain_words(web: httpx.Client) -> None:
    page = upload_page(web, sprite_bytes(BEE)).text
    matches = re.findall(
        r'<span class="match">· ([^<]*)</span>(?: <span class="score">([^<]*)</span>)?', page
    )
    assert matches[0] == ("exact copy", "")  # an exact copy shows no percentage
    assert ("edited copy (recoloured)", matches[1][1]) in matches
    similar = [score for word, score in matches if word == "similar"]
    assert similar and all(re.fullmatch(r"\d{1,3}%", score) for score in similar)
    words = {word.split(" (")[0] for word, _ in matches}
    assert words <= {"exact copy", "edited copy", "found in your picture", "similar"}
    assert f"{len(matches)} results shown" in page
    assert not re.search(r"\d\.\d{3}</span>", page)  # no raw scores


def test_cards_show_the_file_name_the_page_shows(web: httpx.Client, data: SearchData) -> None:
    page = upload_page(web, sprite_bytes(BEE)).text
    first = page.split('<li class="result"')[1]
    assert f'<a href="{data.file_url("gfx_3.zip")}">gfx.zip</a>' in first
    assert ">gfx_3.zip<" not in first


def test_more_like_names_the_image(web: httpx.Client) -> None:
    page = web.get("/", params={"q": "alien blue"}).text
    similar = re.findall(r'<a class="similar" href="([^"]*)"', page)
    title = result_titles(page)[0]
    more = web.get(html.unescape(similar[0])).text
    assert f'More like <q class="similar-name">{escape(title)}</q>' in more
    assert "Images like image" not in more


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"q": "tank", "license": "bogus"}, "unknown license &#39;bogus&#39;; valid: "),
        ({"q": "tank", "tiles": "some"}, "unknown tiles &#39;some&#39;; valid: &#39;exclude&#39;"),
    ],
)
def test_unknown_filter_values_are_422_on_the_page(
    web: httpx.Client, params: dict[str, str], words: str
) -> None:
    response = web.get("/", params=params)
    assert response.status_code == 422
    error = re.search(r'<p class="error" role="alert">(.*?)</p>', response.text)
    assert error is not None and words in error.group(1)
    if "license" in params:
        assert "&#39;CC0&#39;" in error.group(1)


def test_favicon_is_the_drawn_icon(web: httpx.Client) -> None:
    spec = importlib.util.spec_from_file_location("favicon", ROOT / "scripts" / "favicon.py")
    assert spec is not None and spec.loader is not None
    favicon = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(favicon)
    response = web.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/x-icon"
    with Image.open(io.BytesIO(response.content)) as icon:
        assert icon.format == "ICO" and {(16, 16), (32, 32)} <= icon.info["sizes"]
        icon.size = (16, 16)
        assert icon.convert("RGBA").tobytes() == favicon.draw().tobytes()
    assert '<link rel="icon" href="/favicon.ico"' in web.get("/").text


# --- the page in a real browser ---


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.mark.browser
def test_browser_search_journey(page: Page, data: SearchData, tmp_path: Path) -> None:
    """Upload -> source page first -> "similar" -> keywords -> the hostile title is text."""
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sprite = tmp_path / "alienBlue_front.png"
    sprite.write_bytes(sprite_bytes(ALIEN))
    page.goto("/")
    with page.expect_navigation():
        page.set_input_files("#image", str(sprite))
    assert "upload=" in page.url
    first = page.locator(".result").first
    assert first.locator(".title a").get_attribute("href") == data.page_url(ALIEN_PAGE)
    assert first.locator(".title").inner_text().strip() == "Alien Blue - player character"
    assert "CC0" in first.locator(".badge").first.inner_text()

    thumb = first.locator(".thumb img")
    assert thumb.evaluate("img => img.complete && img.naturalWidth > 0")
    assert thumb.evaluate("img => getComputedStyle(img).imageRendering") == "pixelated"
    width, height, natural_w, natural_h = thumb.evaluate(
        "img => [img.width, img.height, img.naturalWidth, img.naturalHeight]"
    )
    assert (natural_w, natural_h) == (131, 188)  # the sprite, served at its own size
    assert (width, height) == fit(131, 188, 128)  # and drawn to fit the grid cell

    with page.expect_navigation():
        first.locator("a.similar").click()
    assert "similar=" in page.url
    links = page.locator(".result .title a").evaluate_all("links => links.map(a => a.href)")
    assert len(links) >= 10 and len(set(links)) == len(links)

    page.fill("#q", "probe")
    with page.expect_navigation():
        page.press("#q", "Enter")
    assert "q=probe" in page.url
    titles = page.locator(".result .title")
    assert titles.count() == 1
    assert titles.first.inner_text().strip() == XSS_TITLE
    assert page.evaluate("() => window.__xss === undefined")
    assert page.locator(".result .title script").count() == 0
    assert dialogs == []


@pytest.mark.browser
def test_browser_tile_query_shows_its_sheet(page: Page, data: SearchData, tmp_path: Path) -> None:
    """One tile cut out of a sheet and upscaled 2x: found as that tile, drawn on its sheet."""
    x, y, w, h = 384, 1024, 128, 128
    sheet_bytes = data.site.site.file("platformer_tiles.png").data
    with Image.open(io.BytesIO(sheet_bytes)) as sheet:
        tile = sheet.crop((x, y, x + w, y + h)).resize((2 * w, 2 * h), Image.Resampling.NEAREST)
    query = tmp_path / "tile_2x.png"
    tile.save(query)
    page.set_viewport_size({"width": 1280, "height": 1400})
    page.goto("/")
    with page.expect_navigation():
        page.set_input_files("#image", str(query))
    first = page.locator(".result").first
    assert first.locator(".title a").get_attribute("href") == data.page_url("platformer-tiles")
    first.locator("details.sheet summary").click()
    outline = first.locator(".sheet rect.tile-box")
    assert [outline.get_attribute(a) for a in ("x", "y", "width", "height")] == [
        str(v) for v in (x, y, w, h)
    ]
    sheet = first.locator(".sheet img")
    assert sheet.evaluate("image => getComputedStyle(image).imageRendering") == "pixelated"
    page.wait_for_function(
        "image => image.complete && image.naturalWidth > 0", arg=sheet.element_handle()
    )
    assert outline.evaluate("rect => rect.getBBox().width") == w
    shot = tmp_path / "screenshot.png"
    page.screenshot(path=str(shot))
    with Image.open(shot) as picture:
        assert picture.size == (1280, 1400)
    # The README's picture: written when missing or asked for, so test runs leave the tree clean.
    if not SCREENSHOT.exists() or os.environ.get("OGASEARCH_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


@pytest.mark.browser
def test_browser_card_expands_its_page_and_sheet(
    page: Page, web: httpx.Client, data: SearchData
) -> None:
    """Like a tile of the platformer sheet: one card for the sheet's page, whose sheet is
    fetched only when asked for, and whose other tiles open under "N more from this page"."""
    x, y, w, h = 384, 1024, 128, 128
    with Image.open(io.BytesIO(data.site.site.file("platformer_tiles.png").data)) as sheet:
        crop = io.BytesIO()
        sheet.crop((x, y, x + w, y + h)).save(crop, format="PNG")
    tile = web.post(
        "/api/search/image",
        params={"tiles": "only", "k": 1},
        files={"image": ("q.png", crop.getvalue(), "image/png")},
    ).json()["results"][0]
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(urlsplit(request.url).path))
    page.goto(f"/?similar={tile['image_id']}")
    links = page.locator(".result .title a").evaluate_all("links => links.map(a => a.href)")
    assert len(links) >= 10 and len(set(links[:10])) == 10
    first = page.locator(".result").first
    assert first.locator(".thumb img").get_attribute("src") == tile["image_url"]
    assert tile["parent_image_url"] not in fetched  # the sheet is not on every card
    hits = first.locator("details.more li img")
    assert not hits.first.is_visible()
    first.locator("details.more summary").click()
    assert hits.count() >= 5 and hits.first.is_visible()
    loaded = "img => img.complete && img.naturalWidth > 0"
    page.wait_for_function(loaded, arg=hits.first.element_handle())
    first.locator("details.sheet summary").click()
    page.wait_for_function(loaded, arg=first.locator(".sheet img").element_handle())
    assert tile["parent_image_url"] in fetched
    assert first.locator(".sheet rect.tile-box").is_visible()


@pytest.mark.browser
def test_browser_drop_an_image_anywhere(page: Page, data: SearchData) -> None:
    page.goto("/")
    encoded = base64.b64encode(sprite_bytes(ALIEN)).decode()
    with page.expect_navigation():
        page.evaluate(
            """(encoded) => {
                const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
                const file = new File([bytes], "dropped.png", { type: "image/png" });
                const transfer = new DataTransfer();
                transfer.items.add(file);
                const options = { dataTransfer: transfer, bubbles: true, cancelable: true };
                document.querySelector("main").dispatchEvent(new DragEvent("drop", options));
            }""",
            encoded,
        )
    assert "upload=" in page.url
    href = page.locator(".result .title a").first.get_attribute("href")
    assert href == data.page_url(ALIEN_PAGE)


@pytest.mark.browser
def test_browser_filter_change_reruns_the_search(page: Page) -> None:
    # "tiles" is on pages under several licences, three of them CC0 (no CC0 page says
    # "sprites": its pages' images matched CC0 only through copies shown on other pages)
    page.goto("/?q=tiles")
    with page.expect_navigation():
        page.select_option("#license", "CC0")
    assert "license=CC0" in page.url and "q=tiles" in page.url
    badges = page.locator(".result .licences").all_inner_texts()
    assert badges and all("CC0" in b for b in badges)


@pytest.mark.browser
def test_browser_refuses_a_too_large_image_before_sending(
    page: Page, data: SearchData, tmp_path: Path
) -> None:
    big = tmp_path / "big.png"  # only its size matters: the page refuses it unread
    big.write_bytes(sprite_bytes(ALIEN) + bytes(data.settings.limits.max_query_bytes))
    page.goto("/")
    page.set_input_files("#image", str(big))
    message = page.locator("#form-message")
    message.wait_for(state="visible")
    assert "limit" in message.inner_text()
    assert urlsplit(page.url).query == ""
