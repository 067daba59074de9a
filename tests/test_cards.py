"""One card per page: results from one page (tiles of one sheet) fold into one card.

The pure folding first, then over real HTTP on the data folder the real pipeline built from
the local site, whose platformer sheet is cut into a hundred tiles that look alike.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from ogasearch.search.cards import one_card_per_page
from ogasearch.search.results import SearchResult, Source
from support.search_data import SearchData, app_client, search_data

TILE = (384, 1024, 128, 128)  # a tile of platformer_tiles.png


def _result(image_id: int, page_id: int, score: float) -> SearchResult:
    source = Source(
        image_id=image_id,
        page_id=page_id,
        page_url=f"https://example.org/content/{page_id}",
        title=None,
        author=None,
        author_url=None,
        licenses=[],
        post_date=None,
        file_url="https://example.org/f.png",
        file_name="f.png",
        archive_path=None,
    )
    return SearchResult(image_id, score, source, 16, 16, 1, None, None, "vector")


def test_one_card_per_page_keeps_the_best_of_each_page() -> None:
    pages = [1, 1, 2, 1, 3, 2, 4, 1]
    results = [_result(n, page, 1.0 - n / 10) for n, page in enumerate(pages)]
    cards = one_card_per_page(results, k=3)
    assert [c.image_id for c in cards] == [0, 2, 4]
    assert [[m.image_id for m in c.more] for c in cards] == [[1, 3, 7], [5], []]
    assert [c.image_id for c in one_card_per_page(results, k=10)] == [0, 2, 4, 6]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SearchData:
    return search_data(tmp_path_factory)


@pytest.fixture(scope="module")
def api(data: SearchData) -> Iterator[httpx.Client]:
    yield from app_client(data.settings, timeout=120)


@pytest.fixture(scope="module")
def tile(api: httpx.Client, data: SearchData) -> dict:
    """The catalog's tile ``TILE`` of the platformer sheet, found by its own pixels."""
    x, y, w, h = TILE
    with Image.open(io.BytesIO(data.site.site.file("platformer_tiles.png").data)) as sheet:
        out = io.BytesIO()
        sheet.crop((x, y, x + w, y + h)).save(out, format="PNG")
    found = api.post(
        "/api/search/image",
        params={"tiles": "only", "k": 1},
        files={"image": ("q.png", out.getvalue(), "image/png")},
    ).json()["results"][0]
    assert found["tile"] == list(TILE)
    return found


def test_similar_cards_are_distinct_pages(api: httpx.Client, tile: dict) -> None:
    """Like a tile: its sheet's other tiles fold into its card, so the first 10 cards hold
    10 pages (the site has more than 10 pages with images)."""
    results = api.get(f"/api/similar/{tile['image_id']}", params={"k": 10}).json()["results"]
    pages = [r["page_url"] for r in results]
    assert len(results) == 10 and len(set(pages)) == 10
    first = results[0]
    assert first["image_id"] == tile["image_id"]
    # the sheet's other tiles are in its card, not in the list
    more = first["more"]
    assert len(more) >= 5
    assert all(m["parent_image_id"] == tile["parent_image_id"] for m in more if m["tile"])
    assert all(m["image_url"] == f"/images/{m['image_id']}.png" for m in more)
    listed = {r["image_id"] for r in results}
    assert not listed & {m["image_id"] for m in more}
    scores = [m["score"] for m in more]
    assert scores == sorted(scores, reverse=True) and scores[0] <= first["score"]


def test_search_by_image_and_keyword_carry_the_grouping(
    api: httpx.Client, data: SearchData
) -> None:
    sheet = data.site.site.file("platformer_tiles.png").data
    for results in (
        api.post(
            "/api/search/image", files={"image": ("q.png", sheet, "image/png")}, data={"k": "10"}
        ).json()["results"],
        api.get("/api/search/text", params={"q": "tiles"}).json()["results"],
    ):
        pages = [r["page_url"] for r in results]
        assert results and len(set(pages)) == len(pages)
        assert all(isinstance(r["more"], list) for r in results)


def test_tile_card_shows_the_tile_and_its_sheet_on_demand(api: httpx.Client, tile: dict) -> None:
    page = api.get("/", params={"similar": tile["image_id"]}).text
    card = page[page.index('<li class="result"') : page.index("</li>\n", page.index("<details"))]
    # the card's picture is the tile alone, served cut from its sheet
    thumb = re.search(r'<a class="thumb"[^>]*>\s*<img class="pixelated" src="([^"]+)"', card)
    assert thumb is not None and thumb.group(1) == tile["image_url"]
    with Image.open(io.BytesIO(api.get(thumb.group(1)).content)) as shown:
        assert shown.size == tuple(TILE[2:])
    # the sheet only inside a closed <details>, loaded lazily, with the tile's box
    sheet_url = tile["parent_image_url"]
    details = re.search(r'<details class="sheet">(.*?)</details>', card, re.DOTALL)
    assert details is not None and sheet_url in details.group(1)
    assert sheet_url not in card.replace(details.group(0), "")
    assert re.search(rf'<img class="pixelated" src="{sheet_url}"[^>]*loading="lazy"', card)
    box = re.search(
        r'<rect class="tile-box" x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)"', card
    )
    assert box is not None and tuple(map(int, box.groups())) == TILE
    # the page's other tiles: behind "N more from this page", small and lazy
    more = re.search(r"<summary>(\d+) more from this page</summary>", page)
    assert more is not None and int(more.group(1)) >= 5
    assert page.count("data-more-id=") >= int(more.group(1))
