"""The map of all the art: layout, placement of new images, the tile pyramid and its
incremental redraw, region labels, the catalog upgrade, the API and the page in Chromium.

The end-to-end tests run on the session's data folder that the real pipeline built from the
local site (``support.search_data``; ``update`` ran the map stage); the incremental ones on a
copy of it.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from playwright.sync_api import Browser, Page
from sqlalchemy import delete, func, select, text, update

from ogasearch.artmap.info import WORLD, map_folder, read_info, tile_path
from ogasearch.artmap.labels import region_labels
from ogasearch.artmap.layout import fit_layout
from ogasearch.artmap.pyramid import (
    THUMB,
    compose,
    draw_leaf,
    max_zoom,
    save_tile,
    thumbnail,
    tile_members,
)
from ogasearch.artmap.stage import build_map, mappable
from ogasearch.catalog.db import open_catalog
from ogasearch.catalog.schema import SCHEMA_VERSION, images, map_points, meta
from ogasearch.cli import main
from ogasearch.settings import Settings
from ogasearch.store.blobs import BlobStore
from ogasearch.web.app import create_app
from ogasearch.web.server import running_server
from support.browser import chromium
from support.search_data import SearchData, search_data

CENTRE_JS = "(() => { const c = window.ogaMap.getCenter(); return [c.lat, c.lng]; })()"


def clusters(n_per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated clusters of unit vectors (64-d, the same three centres whatever
    the seed) and each row's cluster."""
    centres = np.random.default_rng(0).normal(size=(3, 64))
    rng = np.random.default_rng(seed + 1)
    which = np.repeat(np.arange(3), n_per)
    vectors = centres[which] + 0.15 * rng.normal(size=(len(which), 64))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), which


# --- the pieces ---


def test_the_deepest_zoom_grows_with_the_number_of_images() -> None:
    assert max_zoom(10) == 2
    assert max_zoom(10_000) < max_zoom(300_000) <= 8


def test_a_small_sprite_is_upscaled_by_whole_pixels_with_no_new_colours() -> None:
    sprite = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    sprite.putpixel((1, 2), (0, 0, 255, 255))
    thumb = thumbnail(sprite)
    assert thumb.size == (THUMB, THUMB)
    assert {c for _n, c in thumb.getcolors()} == {(255, 0, 0, 255), (0, 0, 255, 255)}
    assert thumb.getpixel((8, 16)) == (0, 0, 255, 255)


def test_an_image_on_a_tile_border_is_drawn_on_both_tiles(tmp_path: Path) -> None:
    zoom = 2  # a tile is 64 map units
    xy = np.array([[64.0, 10.0]])  # on the border of tiles (0, 0) and (1, 0)
    members = tile_members(xy, zoom)
    assert set(members) == {(0, 0), (1, 0)}
    thumb = Image.new("RGBA", (THUMB, THUMB), (0, 200, 0, 255))
    left = draw_leaf((0, 0), zoom, [(1, 64.0, 10.0)], {1: thumb})
    right = draw_leaf((1, 0), zoom, [(1, 64.0, 10.0)], {1: thumb})
    assert left is not None and right is not None
    assert left.getbbox() == (256 - THUMB // 2, 40 - THUMB // 2, 256, 40 + THUMB // 2)
    assert right.getbbox() == (0, 40 - THUMB // 2, THUMB // 2, 40 + THUMB // 2)
    assert draw_leaf((2, 2), zoom, [(1, 64.0, 10.0)], {1: thumb}) is None
    save_tile(tmp_path, (1, 0), zoom, right, leaf=True)
    parent = compose(tmp_path, (0, 0), zoom - 1)  # (1, 0) is the parent's top-right quarter
    assert parent is not None
    x0, _y0, x1, _y1 = parent.getbbox()
    assert x0 == 128 and x1 == 128 + THUMB // 4


def test_the_layout_keeps_clusters_apart_and_places_new_vectors_in_theirs() -> None:
    vectors, which = clusters(40)
    layout, xy = fit_layout(vectors, seed=1)
    assert xy.shape == (120, 2) and xy.min() >= 0 and xy.max() < WORLD
    centres = np.array([xy[which == c].mean(axis=0) for c in range(3)])
    spread = max(np.linalg.norm(xy[which == c] - centres[c], axis=1).mean() for c in range(3))
    gaps = [np.linalg.norm(centres[a] - centres[b]) for a, b in ((0, 1), (0, 2), (1, 2))]
    assert min(gaps) > 2 * spread
    new, new_which = clusters(5, seed=7)  # the same centres, new members
    placed = layout.place(new[new_which == 1])
    nearest = np.linalg.norm(placed[:, None, :] - centres[None, :, :], axis=2).argmin(axis=1)
    assert (nearest == 1).all()


def test_regions_are_named_by_their_pages_particular_words() -> None:
    rng = np.random.default_rng(0)
    xy = np.concatenate([rng.normal(40, 3, (30, 2)), rng.normal(200, 3, (30, 2))])
    ids = list(range(60))
    vocab = {
        i: {"slime", "green", "sprite"} if i < 30 else {"castle", "stone", "sprite"} for i in ids
    }
    labels = region_labels(xy, ids, vocab, max_zoom=3)
    top = [label for label in labels if label.zoom == 0]
    assert {label.text.split(" · ")[0] for label in top} <= {"slime", "green", "castle", "stone"}
    assert all("sprite" not in label.text for label in labels)  # on every page: says nothing
    by_side = {label.x < 128: label.text for label in top}
    assert "slime" in by_side[True] and "castle" in by_side[False]


def test_a_version_2_catalog_gets_the_map_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    engine = open_catalog(url, create=True)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE map_points"))
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="2"))
    engine.dispose()
    engine = open_catalog(url, create=False)
    with engine.connect() as conn:
        version = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version"))
        assert version.scalar_one() == str(SCHEMA_VERSION) == "5"
        assert conn.execute(select(func.count()).select_from(map_points)).scalar_one() == 0
    engine.dispose()


# --- on the session's data folder ---


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


def points(settings: Settings) -> dict[int, tuple[float, float]]:
    engine = open_catalog(settings.catalog_url, create=False)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(map_points.c.image_id, map_points.c.x, map_points.c.y))
            return {int(i): (x, y) for i, x, y in rows}
    finally:
        engine.dispose()


def test_update_placed_every_indexed_image_and_drew_the_tiles(data: SearchData) -> None:
    info = read_info(data.settings.data)
    assert info is not None and info.labels
    engine = open_catalog(data.settings.catalog_url, create=False)
    with engine.connect() as conn:
        wanted = set(conn.execute(mappable()).scalars())
        undrawn = conn.execute(select(func.count()).where(~map_points.c.drawn)).scalar_one()
    engine.dispose()
    assert set(points(data.settings)) == wanted and info.points == len(wanted) >= 8
    assert undrawn == 0
    with Image.open(tile_path(data.settings.data, 0, 0, 0)) as top:
        assert top.format == "WEBP" and top.size == (256, 256) and top.getbbox()


def test_locate_answers_the_stored_coordinates(web: httpx.Client, data: SearchData) -> None:
    image_id, (x, y) = next(iter(points(data.settings).items()))
    answer = web.get(f"/api/map/locate/{image_id}")
    assert answer.status_code == 200
    assert answer.json() == {"image_id": image_id, "x": x, "y": y}
    missing = web.get("/api/map/locate/99999999")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    many = web.get("/api/map/points", params={"ids": f"99999999,{image_id}"}).json()
    assert many == {"points": [{"image_id": image_id, "x": x, "y": y}]}
    assert web.get("/api/map/points", params={"ids": "1,x"}).status_code == 422


def test_a_click_on_an_image_finds_it_and_labels_come_per_zoom(
    web: httpx.Client, data: SearchData
) -> None:
    info = read_info(data.settings.data)
    assert info is not None
    image_id, (x, y) = max(points(data.settings).items())  # drawn last: on top
    hit = web.get("/api/map/at", params={"x": x + 0.01, "y": y, "z": info.max_zoom})
    assert hit.status_code == 200 and hit.json()["image_id"] == image_id
    assert web.get("/api/map/at", params={"x": -100, "y": -100, "z": 0}).status_code == 404
    labels = web.get("/api/map/labels", params={"z": 0}).json()
    assert labels["labels"] and all(0 <= label["x"] < WORLD for label in labels["labels"])


def test_tiles_are_served_and_empty_ones_are_transparent(web: httpx.Client) -> None:
    tile = web.get("/map/tiles/0/0/0.webp")
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/webp"
    assert "max-age" in tile.headers["cache-control"]
    empty = web.get("/map/tiles/0/5/5.webp")  # outside the map
    with Image.open(io.BytesIO(empty.content)) as image:
        assert image.getbbox() is None
    page = web.get("/map", params={"highlight": "1,2,<x>"})
    assert page.status_code == 200 and 'data-highlight=""' in page.text
    assert "/static/vendor/leaflet/leaflet.js" in page.text


def test_new_images_are_placed_into_the_map_and_only_their_tiles_redrawn(
    data: SearchData, tmp_path: Path
) -> None:
    """Points removed from a copy stand for new images: the next run places them with the
    fitted model, leaves every other point where it was and redraws only their tiles."""
    folder = tmp_path / "data"
    shutil.copytree(data.settings.data, folder)
    settings = data.settings.model_copy(update={"data": folder})
    before = points(settings)
    new = sorted(before)[-3:]
    engine = open_catalog(settings.catalog_url, create=False)
    with engine.begin() as conn:
        conn.execute(delete(map_points).where(map_points.c.image_id.in_(new)))
    leaves = list((map_folder(folder) / "tiles").glob("*/*/*.webp"))
    stats = build_map(engine, settings, BlobStore(folder / "store"))
    assert stats["fitted"] == 0 and stats["placed"] == 3
    assert 0 < stats["tiles"] < len(leaves)
    after = points(settings)
    assert {i: after[i] for i in before if i not in new} == {
        i: p for i, p in before.items() if i not in new
    }
    assert set(after) == set(before)
    assert build_map(engine, settings, BlobStore(folder / "store"))["tiles"] == 0  # nothing new
    with engine.begin() as conn:  # an image that leaves the index leaves the map
        conn.execute(update(images).where(images.c.id == new[0]).values(indexed=False))
    gone = build_map(engine, settings, BlobStore(folder / "store"))
    assert gone["placed"] == 0 and gone["tiles"] > 0 and new[0] not in points(settings)
    engine.dispose()
    rebuilt = CliRunner().invoke(main, ["map", "--rebuild", "--data", str(folder)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert f'"fitted": {len(before) - 1}' in rebuilt.output  # all but the one gone


# --- in Chromium ---


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def loaded_tiles(page: Page) -> int:
    return page.locator("#map img.leaflet-tile-loaded").count()


@pytest.mark.browser
def test_browser_pan_zoom_and_click_an_image(page: Page, data: SearchData) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/map")
    page.wait_for_selector("#map img.leaflet-tile-loaded")
    page.wait_for_selector(".map-label span")
    start = page.evaluate("window.ogaMap.getZoom()")
    centre = page.evaluate(
        "(() => { const c = window.ogaMap.getCenter(); return [c.lat, c.lng]; })()"
    )
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 300, box["y"] + 300)
    page.mouse.down()
    page.mouse.move(box["x"] + 500, box["y"] + 380, steps=8)
    page.mouse.up()
    moved = page.evaluate(
        "(() => { const c = window.ogaMap.getCenter(); return [c.lat, c.lng]; })()"
    )
    assert moved != centre
    page.click(".leaflet-control-zoom-in")
    page.wait_for_function(f"window.ogaMap.getZoom() === {start + 1}")
    page.wait_for_selector("#map img.leaflet-tile-loaded")
    # click the image drawn last (on top), wherever it lies
    image_id, (x, y) = max(points(data.settings).items())
    info = read_info(data.settings.data)
    assert info is not None
    page.evaluate(f"window.ogaMap.setView([{-y}, {x}], {info.max_zoom}, {{animate: false}})")
    page.wait_for_selector("#map img.leaflet-tile-loaded")
    spot = page.evaluate(
        f"(() => {{ const p = window.ogaMap.latLngToContainerPoint([{-y}, {x}]);"
        " return [p.x, p.y]; })()"
    )
    page.mouse.click(box["x"] + spot[0], box["y"] + spot[1])
    card = page.locator("#map-card")
    card.wait_for(state="visible")
    assert card.get_attribute("data-image-id") == str(image_id)
    assert card.locator("h3 a").get_attribute("href")
    assert card.locator(".licences").inner_text()
    assert not errors


@pytest.mark.browser
def test_browser_show_a_search_on_the_map(page: Page) -> None:
    page.goto("/?q=alien")
    link = page.locator("a.show-on-map")
    shown = link.get_attribute("href")
    assert shown and shown.startswith("/map?highlight=")
    link.click()
    page.wait_for_selector("#map path.map-highlight")
    count = page.locator("#map path.map-highlight").count()
    assert 1 <= count <= len(shown.split("=")[1].split(","))
