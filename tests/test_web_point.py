"""Pointing at a part of the query picture in the web UI: the box form (the keyboard way),
``?box=``, the cards of results found in a part of the picture, and in headless Chromium:
a box dragged with the mouse re-runs the search on that part, and pointing at a result found
in the scene draws its box on the query picture."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page

from ogasearch.web.app import create_app
from ogasearch.web.server import running_server
from support.browser import chromium
from support.scenes import ALIEN_PAGE, SIZE, Scene, alien_scene, unhurried
from support.search_data import SearchData, search_data


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SearchData:
    return search_data(tmp_path_factory)


@pytest.fixture(scope="module")
def base_url(data: SearchData) -> Iterator[str]:
    with running_server(create_app(unhurried(data.settings))) as url:
        yield url


@pytest.fixture(scope="module")
def web(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def scene() -> Scene:
    return alien_scene()


@pytest.fixture(scope="module")
def uploaded(web: httpx.Client, scene: Scene) -> str:
    """The scene's upload key (the client keeps its owner cookie)."""
    response = web.post("/", files={"image": ("scene.png", scene.png, "image/png")})
    assert response.status_code == 303, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)["upload"][0]


def first_link(page_html: str) -> str:
    found = re.search(r'<h3 class="title">\s*<a href="([^"]*)"', page_html)
    assert found, page_html[:2000]
    return html.unescape(found.group(1))


def test_scene_results_say_found_here(
    web: httpx.Client, data: SearchData, scene: Scene, uploaded: str
) -> None:
    page = web.get("/", params={"upload": uploaded})
    assert page.status_code == 200
    assert first_link(page.text) == data.page_url(ALIEN_PAGE)
    card = re.search(r'<li class="result"[^>]*data-query-box="([\d,]+)"', page.text)
    assert card, "the first card carries where it was found"
    box = [int(v) for v in card.group(1).split(",")]
    assert max(abs(a - b) for a, b in zip(box, scene.sprite_box, strict=True)) <= 3
    assert "found here" in page.text
    assert 'id="query-view"' in page.text and 'id="box-form"' in page.text


def test_the_box_form_searches_a_part(
    web: httpx.Client, data: SearchData, scene: Scene, uploaded: str
) -> None:
    """The keyboard way: the form's four corner fields (a GET), kept in the page's links."""
    x0, y0, x1, y1 = scene.around(10)
    page = web.get("/", params={"upload": uploaded, "x0": x0, "y0": y0, "x1": x1, "y1": y1})
    assert page.status_code == 200, page.text[:500]
    assert first_link(page.text) == data.page_url(ALIEN_PAGE)
    assert f'data-box="{x0},{y0},{x1},{y1}"' in page.text
    assert f"Searching the part {x0},{y0},{x1},{y1}" in page.text
    elsewhere = web.get("/", params={"upload": uploaded, "box": f"0,0,{x0 - 10},{SIZE[1]}"})
    assert elsewhere.status_code == 200
    assert ALIEN_PAGE not in first_link(elsewhere.text)
    # changing a filter keeps the part
    refiltered = web.post(
        "/", data={"upload": uploaded, "box": f"{x0},{y0},{x1},{y1}", "tiles": "exclude"}
    )
    assert refiltered.status_code == 303
    kept = parse_qs(urlsplit(refiltered.headers["location"]).query)
    assert kept["box"] == [f"{x0},{y0},{x1},{y1}"] and kept["tiles"] == ["exclude"]


def test_a_bad_box_is_422_on_the_page(web: httpx.Client, uploaded: str) -> None:
    page = web.get("/", params={"upload": uploaded, "box": f"0,0,{SIZE[0] + 5},10"})
    assert page.status_code == 422
    assert 'class="error"' in page.text and "not a non-empty part" in page.text
    assert 'id="box-form"' in page.text  # to correct it


# --- in a real browser ---


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 1000})
    yield context.new_page()
    context.close()


def _upload(page: Page, scene: Scene, tmp_path: Path) -> None:
    picture = tmp_path / "scene.png"
    picture.write_bytes(scene.png)
    page.goto("/")
    with page.expect_navigation():
        page.set_input_files("#image", str(picture))
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0",
        arg=page.locator("#query-image").element_handle(),
    )


def _screen(page: Page, box: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """A box of picture pixels in the page's pixels, as the query picture is shown."""
    r = page.locator("#query-image").bounding_box()
    assert r is not None
    sx, sy = r["width"] / SIZE[0], r["height"] / SIZE[1]
    x0, y0, x1, y1 = box
    return (r["x"] + x0 * sx, r["y"] + y0 * sy, r["x"] + x1 * sx, r["y"] + y1 * sy)


def _drawn(page: Page, selector: str) -> tuple[float, float, float, float]:
    r = page.locator(selector).bounding_box()
    assert r is not None
    return (r["x"], r["y"], r["x"] + r["width"], r["y"] + r["height"])


@pytest.mark.browser
def test_browser_draw_a_box_to_search_that_part(
    page: Page, data: SearchData, scene: Scene, tmp_path: Path
) -> None:
    _upload(page, scene, tmp_path)
    assert page.locator(".result .title a").first.get_attribute("href") == data.page_url(ALIEN_PAGE)
    # a box on the backdrop, left of the alien: the alien is no longer first
    left = scene.sprite_box[0] - 20
    x0, y0, x1, y1 = _screen(page, (10, 10, left, SIZE[1] - 10))
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
    page.mouse.move(x1, y1, steps=4)
    with page.expect_navigation():
        page.mouse.up()
    assert "upload=" in page.url and "x0=" in page.url
    assert page.locator(".result .title a").first.get_attribute("href") != data.page_url(ALIEN_PAGE)
    # the box stays drawn, where it was dragged (within a picture pixel or two)
    page.locator("#drawn-box").wait_for(state="visible")
    searched = page.locator("#query-view").get_attribute("data-box") or ""
    a, b, c, d = (int(v) for v in searched.split(","))
    want = _screen(page, (a, b, c, d))
    got = _drawn(page, "#drawn-box")
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 3
    assert abs(got[0] - x0) <= 4 and abs(got[2] - x1) <= 4


@pytest.mark.browser
def test_browser_pointing_at_a_scene_result_draws_its_box(
    page: Page, data: SearchData, scene: Scene, tmp_path: Path
) -> None:
    _upload(page, scene, tmp_path)
    first = page.locator(".result").first
    assert first.locator(".title a").get_attribute("href") == data.page_url(ALIEN_PAGE)
    found = page.locator("#found-box")
    assert found.is_hidden()
    first.hover()
    found.wait_for(state="visible")
    got = _drawn(page, "#found-box")
    want = _screen(page, scene.sprite_box)
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 3, (got, want)
    page.mouse.move(1, 1)
    found.wait_for(state="hidden")
    # and from the keyboard: focusing the card's "found here" draws it too
    first.locator(".found-here").focus()
    found.wait_for(state="visible")
