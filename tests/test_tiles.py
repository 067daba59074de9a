"""Cutting sprite sheets into tiles: grid detection on synthetic and real art, and the stage
on a real SQLite catalog with a real blob store."""

from __future__ import annotations

import hashlib
import io
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import Engine, delete, func, insert, select, update

from ogasearch.catalog import open_catalog
from ogasearch.catalog.fingerprints import encode_fingerprints, patch_changes
from ogasearch.catalog.schema import (
    embeddings,
    failures,
    files,
    images,
    members,
    meta,
    pages,
)
from ogasearch.extract.images import perceptual_hash, pixel_sha256
from ogasearch.settings import Limits, Settings
from ogasearch.store.blobs import BlobStore
from ogasearch.tiles.grid import TileBox, describe_grid, find_tiles
from ogasearch.tiles.stage import cut_tiles
from ogasearch.tiles.upgrade import TILING_VERSION, VERSION_KEY
from support import datasets

CRAWL = datasets.CRAWL_TILES.path
KENNEY = datasets.KENNEY.path

needs_crawl = pytest.mark.usefixtures("crawl_tiles")
needs_kenney = pytest.mark.usefixtures("kenney_images")


# -- synthetic art -----------------------------------------------------------------------------


def colour(seed: int) -> np.ndarray:
    """A bright colour, different for every seed."""
    rng = np.random.default_rng(seed)
    return np.append(rng.integers(40, 256, 3), 255).astype(np.uint8)


def blob_sprite(w: int, h: int, seed: int) -> np.ndarray:
    """An ellipse touching all four sides of a w x h box, with a stripe and a dark outline
    along its lower right."""
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((xx - (w - 1) / 2) / (w / 2)) ** 2 + ((yy - (h - 1) / 2) / (h / 2)) ** 2 <= 1
    out = np.zeros((h, w, 4), dtype=np.uint8)
    out[inside] = colour(seed)
    out[inside & (yy % 5 == seed % 5)] = colour(seed + 1000)
    edge = inside & ~np.pad(inside, 1)[2:, 1:-1] | inside & ~np.pad(inside, 1)[1:-1, 2:]
    out[edge] = (20, 20, 20, 255)
    return out


def flat_tile(size: int, seed: int) -> np.ndarray:
    """An opaque tile: a flat colour, a square of another colour, a dark one-pixel outline."""
    out = np.empty((size, size, 4), dtype=np.uint8)
    out[:] = colour(seed)
    rng = np.random.default_rng(seed)
    a, b = sorted(rng.integers(2, size - 2, 2))
    out[a : b + 1, a : b + 1] = colour(seed + 500)
    out[0, :] = out[-1, :] = out[:, 0] = out[:, -1] = (30, 30, 30, 255)
    return out


def sheet(width: int, height: int, fill: tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
    out = np.zeros((height, width, 4), dtype=np.uint8)
    out[:] = fill
    return out


def paste(canvas: np.ndarray, art: np.ndarray, x: int, y: int) -> None:
    h, w = art.shape[:2]
    opaque = art[..., 3] > 0
    canvas[y : y + h, x : x + w][opaque] = art[opaque]


def image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array)


def boxes_of(img: Image.Image, **kwargs: int) -> list[tuple[int, int, int, int]]:
    return [(b.x, b.y, b.w, b.h) for b in find_tiles(img, **kwargs)]


def grid_sheet(cols: int, rows: int, tile: int, margin: int, spacing: int) -> np.ndarray:
    """Filled opaque tiles on transparency with a margin and spacing (Tiled's layout)."""
    pitch = tile + spacing
    canvas = sheet(2 * margin + cols * pitch - spacing, 2 * margin + rows * pitch - spacing)
    for j in range(rows):
        for i in range(cols):
            paste(canvas, flat_tile(tile, j * cols + i), margin + i * pitch, margin + j * pitch)
    return canvas


# -- grids -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("margin", "spacing"), [(0, 1), (1, 2), (3, 4), (2, 0)])
def test_grid_with_margin_and_spacing_gives_exact_cells(margin: int, spacing: int) -> None:
    canvas = grid_sheet(cols=6, rows=4, tile=16, margin=margin, spacing=spacing)
    pitch = 16 + spacing
    expected = [
        (margin + i * pitch, margin + j * pitch, 16, 16) for j in range(4) for i in range(6)
    ]
    assert boxes_of(image(canvas)) == expected


def test_animation_frames_keep_their_frame_size() -> None:
    """Sprites of varying size centred in 32x32 frames: the boxes are the frames."""
    canvas = sheet(8 * 32, 3 * 32)
    for k in range(24):
        size = 10 + (k * 7) % 21
        off = (32 - size) // 2
        paste(canvas, blob_sprite(size, size, k), (k % 8) * 32 + off, (k // 8) * 32 + off)
    expected = [(i * 32, j * 32, 32, 32) for j in range(3) for i in range(8)]
    assert boxes_of(image(canvas)) == expected


def test_packed_grid_without_gutters_is_found_from_edges() -> None:
    """An opaque tile set, tiles side by side with no gutter and no background colour."""
    canvas = sheet(10 * 16, 7 * 16)
    for j in range(7):
        for i in range(10):
            paste(canvas, flat_tile(16, 100 + j * 10 + i), i * 16, j * 16)
    expected = [(i * 16, j * 16, 16, 16) for j in range(7) for i in range(10)]
    assert boxes_of(image(canvas)) == expected


def test_opaque_sheet_on_a_key_colour_background() -> None:
    magenta = (255, 0, 255, 255)
    canvas = sheet(6 * 24, 3 * 24, fill=magenta)
    for k in range(18):
        paste(canvas, blob_sprite(18, 20, k), (k % 6) * 24 + 3, (k // 6) * 24 + 2)
    found = boxes_of(image(canvas).convert("RGB"))
    assert len(found) == 18
    assert {(w, h) for _, _, w, h in found} == {(24, 24)}
    assert [(x // 24, y // 24) for x, y, _, _ in found] == [(k % 6, k // 6) for k in range(18)]


def test_empty_and_repeated_cells_are_dropped_keeping_the_first() -> None:
    canvas = sheet(6 * 20, 3 * 20)
    art = {k: blob_sprite(16, 16, k) for k in range(18)}
    art[7] = art[2]  # repeats of cell 2
    art[15] = art[2]
    art[4] = art[9] = None  # empty cells
    for k, sprite in art.items():
        if sprite is not None:
            paste(canvas, sprite, (k % 6) * 20 + 2, (k // 6) * 20 + 2)
    found = boxes_of(image(canvas))
    cells = [(x // 20 + 6 * (y // 20)) for x, y, _, _ in found]
    assert cells == [k for k in range(18) if k not in (4, 9, 7, 15)]


def test_transparent_pixels_hiding_different_colours_are_still_repeats() -> None:
    canvas = sheet(4 * 18 - 2, 16)
    sprite = blob_sprite(16, 16, 3)
    hidden = sprite.copy()
    hidden[0, 0] = (9, 200, 9, 0)  # a corner outside the ellipse: transparent, other RGB
    for i, art in enumerate([sprite, blob_sprite(16, 16, 4), hidden, blob_sprite(16, 16, 5)]):
        canvas[:, i * 18 : i * 18 + 16] = art
    assert boxes_of(image(canvas)) == [(0, 0, 16, 16), (18, 0, 16, 16), (54, 0, 16, 16)]


def test_upscaled_sheet_gives_boxes_in_stored_pixels() -> None:
    small = grid_sheet(cols=5, rows=3, tile=8, margin=0, spacing=1)
    big = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)
    expected = [(i * 36, j * 36, 32, 32) for j in range(3) for i in range(5)]
    assert boxes_of(image(big)) == expected


def test_max_tiles_keeps_the_first_in_reading_order() -> None:
    canvas = grid_sheet(cols=6, rows=4, tile=16, margin=0, spacing=2)
    assert boxes_of(image(canvas), max_tiles=5) == [(i * 18, 0, 16, 16) for i in range(5)]


def test_cells_smaller_than_the_minimum_are_not_tiles() -> None:
    canvas = grid_sheet(cols=8, rows=8, tile=6, margin=0, spacing=2)
    assert find_tiles(image(canvas)) == []
    assert len(find_tiles(image(canvas), min_size=4)) == 64


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tile=st.tuples(st.integers(8, 40), st.integers(8, 40)).filter(lambda t: max(t) <= 3 * min(t)),
    cols=st.integers(1, 8),
    rows=st.integers(1, 8),
    margin=st.integers(0, 5),
    spacing=st.integers(1, 4),
    magenta=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_any_tiled_layout_gives_exact_cells(
    tile: tuple[int, int],
    cols: int,
    rows: int,
    margin: int,
    spacing: int,
    magenta: bool,
    seed: int,
) -> None:
    """Solid tiles of any size with any margin and spacing, on transparency or a key colour."""
    tw, th = tile
    if cols * rows < 3:
        cols = 3
    fill = (255, 0, 255, 255) if magenta else (0, 0, 0, 0)
    canvas = sheet(
        2 * margin + cols * (tw + spacing) - spacing,
        2 * margin + rows * (th + spacing) - spacing,
        fill=fill,
    )
    cells = []
    for j in range(rows):
        for i in range(cols):
            x, y = margin + i * (tw + spacing), margin + j * (th + spacing)
            paste(canvas, flat_tile(max(tw, th), seed + j * cols + i)[:th, :tw].copy(), x, y)
            cells.append((x, y, tw, th))
    picture = image(canvas).convert("RGB") if magenta else image(canvas)
    assert boxes_of(picture) == cells


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=st.sampled_from([(16, 16), (24, 24), (32, 32), (32, 48), (48, 48), (64, 64)]),
    cols=st.integers(2, 8),
    rows=st.integers(1, 5),
    data=st.data(),
)
def test_any_frame_layout_gives_one_box_per_sprite(
    frame: tuple[int, int], cols: int, rows: int, data: st.DataObject
) -> None:
    """Sprites of any size anywhere inside their frames (at least a pixel from the edge):
    every sprite lies in exactly one box and no box holds two."""
    tw, th = frame
    if cols * rows < 3:  # two frames are too few to tell a sheet from one picture
        cols = 3
    canvas = sheet(cols * tw, rows * th)
    sprites = []
    for k in range(cols * rows):
        sw = data.draw(st.integers(tw // 2, tw - 2))
        sh = data.draw(st.integers(th // 2, th - 2))
        ox = data.draw(st.integers(1, tw - sw - 1))
        oy = data.draw(st.integers(1, th - sh - 1))
        x, y = (k % cols) * tw + ox, (k // cols) * th + oy
        paste(canvas, blob_sprite(sw, sh, 300 + k), x, y)
        sprites.append((x, y, sw, sh))
    found = boxes_of(image(canvas))
    assert len(found) == len(sprites)
    for x, y, w, h in sprites:
        holders = [b for b in found if b[0] <= x and b[1] <= y]
        holders = [b for b in holders if b[0] + b[2] >= x + w and b[1] + b[3] >= y + h]
        assert len(holders) == 1


# -- irregular atlases -------------------------------------------------------------------------


def test_irregular_atlas_gives_each_sprite_with_its_detached_pixels() -> None:
    rng = np.random.default_rng(11)
    canvas = sheet(300, 200)
    expected = []
    x, y, shelf = 4, 4, 0
    for k in range(14):
        w, h = (int(v) for v in rng.integers(14, 44, 2))
        if x + w > 296:
            x, y, shelf = 4, y + shelf + int(rng.integers(4, 9)), 0
        paste(canvas, blob_sprite(w, h, 40 + k), x, y)
        expected.append((x, y, w, h))
        x += w + int(rng.integers(4, 12))
        shelf = max(shelf, h)
    # a sparkle two pixels right of the first sprite belongs to it
    x0, y0, w0, h0 = expected[0]
    canvas[y0 + 3 : y0 + 5, x0 + w0 + 2 : x0 + w0 + 4] = (255, 255, 0, 255)
    expected[0] = (x0, y0, w0 + 4, h0)
    found = boxes_of(image(canvas))
    assert sorted(found) == sorted(expected)


# -- not sheets --------------------------------------------------------------------------------


def test_single_sprite_is_not_a_sheet() -> None:
    canvas = sheet(64, 64)
    paste(canvas, blob_sprite(50, 40, 1), 7, 12)
    assert find_tiles(image(canvas)) == []


def test_photo_like_noise_and_gradient_are_not_sheets() -> None:
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    assert find_tiles(Image.fromarray(noise)) == []
    ramp = np.linspace(0, 255, 320, dtype=np.uint8)
    gradient = np.stack([np.tile(ramp, (240, 1))] * 3, axis=2)
    assert find_tiles(Image.fromarray(gradient)) == []


def test_tiny_images_are_not_sheets() -> None:
    assert find_tiles(image(grid_sheet(cols=2, rows=1, tile=6, margin=0, spacing=1))) == []
    assert find_tiles(Image.new("RGBA", (1, 1))) == []


def test_repetitive_texture_is_not_a_tile_set() -> None:
    """A brick wall: a strong regular pattern, but every cell looks alike."""
    brick = flat_tile(16, 9)
    wall = np.tile(brick, (8, 12, 1))
    assert find_tiles(image(wall)) == []


def test_tile_box_round_trips_through_the_catalog_form() -> None:
    box = TileBox(3, 4, 16, 24)
    assert str(box) == "3,4,16,24"
    assert TileBox.parse(str(box)) == box
    assert box.pil_box == (3, 4, 19, 28)
    for bad in ("", "1,2,3", "a,b,c,d", "0,0,0,5", "-1,0,4,4"):
        with pytest.raises(ValueError):
            TileBox.parse(bad)
    assert describe_grid([box, box]) == "2 tiles (16x24 x2)"


# -- real art ----------------------------------------------------------------------------------


def distinct_cells(path: Path, size: int) -> set[tuple[int, int]]:
    """Positions of the non-empty cells of a size x size grid whose pixels were not seen in an
    earlier cell (transparent pixels compared as transparent): computed without find_tiles."""
    rgba = np.array(Image.open(path).convert("RGBA"))
    rgba[rgba[..., 3] == 0] = 0
    seen: set[bytes] = set()
    cells = set()
    for y in range(0, rgba.shape[0] - size + 1, size):
        for x in range(0, rgba.shape[1] - size + 1, size):
            cell = rgba[y : y + size, x : x + size]
            key = hashlib.sha256(cell.tobytes()).digest()
            if cell[..., 3].any() and key not in seen:
                cells.add((x, y))
            seen.add(key)
    return cells


@needs_crawl
@pytest.mark.parametrize("name", ["floor.png", "wall.png"])
def test_crawl_packed_atlases_are_cut_on_their_32_pixel_grid(name: str) -> None:
    found = find_tiles(Image.open(CRAWL / name))
    assert {(b.w, b.h) for b in found} == {(32, 32)}
    assert {(b.x, b.y) for b in found} == distinct_cells(CRAWL / name, 32)


@needs_crawl
def test_crawl_main_atlas_gives_its_sprites() -> None:
    """main.png packs sprites cropped to their bounding boxes (rltiles' shrink), side by side
    without gutters: the tiles are the sprites, nearly all at most 32x32, none overlapping."""
    found = find_tiles(Image.open(CRAWL / "main.png"))
    assert len(found) >= 800
    small = [b for b in found if b.w <= 32 and b.h <= 32]
    assert len(small) >= 0.65 * len(found)
    assert sum(b.w > 64 or b.h > 64 for b in found) < 0.05 * len(found)
    mask = np.zeros((1000, 1024), dtype=np.int16)
    for b in found:
        mask[b.y : b.y + b.h, b.x : b.x + b.w] += 1
    assert np.count_nonzero(mask > 1) < 0.05 * mask.size


@needs_crawl
def test_crawl_title_illustrations_and_icons_are_not_sheets() -> None:
    names = sorted(CRAWL.glob("title_*.png")) + sorted(CRAWL.glob("stone_soup_icon-*.png"))
    assert len(names) >= 30
    cut = {p.name: describe_grid(find_tiles(Image.open(p))) for p in names}
    assert {name: d for name, d in cut.items() if d != "not a sheet"} == {}


@needs_kenney
def test_kenney_tile_sheet_is_cut_into_its_128_pixel_tiles() -> None:
    path = KENNEY / "spritesheets" / "tiles.png"
    found = find_tiles(Image.open(path))
    assert {(b.w, b.h) for b in found} == {(128, 128)}
    assert {(b.x, b.y) for b in found} == distinct_cells(path, 128)


@needs_kenney
def test_kenney_number_sheet_is_cut_into_its_digits() -> None:
    found = boxes_of(Image.open(KENNEY / "spritesheets" / "number_sheet.png"))
    assert found == [(x, y, 16, 16) for y in (0, 16) for x in (0, 16, 32)]


@needs_kenney
@pytest.mark.parametrize(
    "folder",
    ["animated_characters", "enemies", "items", "cards", "tiles", "space_shooter", "alien"],
)
def test_kenney_single_sprites_are_not_sheets(folder: str) -> None:
    paths = sorted((KENNEY / folder).rglob("*.png"))
    assert paths
    cut = {str(p.relative_to(KENNEY)): describe_grid(find_tiles(Image.open(p))) for p in paths}
    assert {name: d for name, d in cut.items() if d != "not a sheet"} == {}


def jpeg(picture: Image.Image, quality: int = 85) -> Image.Image:
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer)


def test_jpeg_sheets_are_cut_despite_compression_noise() -> None:
    canvas = sheet(8 * 32, 4 * 32, fill=(255, 0, 255, 255))
    for k in range(32):
        paste(canvas, blob_sprite(24, 26, k), (k % 8) * 32 + 4, (k // 8) * 32 + 3)
    expected = [(i * 32, j * 32, 32, 32) for j in range(4) for i in range(8)]
    assert boxes_of(jpeg(image(canvas))) == expected
    doubled = image(canvas).resize((512, 256), Image.Resampling.NEAREST)
    assert boxes_of(jpeg(doubled)) == [(2 * x, 2 * y, 2 * w, 2 * h) for x, y, w, h in expected]


@needs_crawl
def test_jpeg_packed_atlas_is_cut_and_jpeg_illustrations_are_not() -> None:
    floor = Image.new("RGBA", (1024, 960), (0, 0, 0, 255))
    floor.alpha_composite(Image.open(CRAWL / "floor.png"))
    found = find_tiles(jpeg(floor))
    assert {(b.w, b.h) for b in found} == {(32, 32)} and len(found) >= 900
    for name in ("title_denzi_dragon.png", "title_sastrei_chei.png", "title_firemage.png"):
        assert find_tiles(jpeg(Image.open(CRAWL / name))) == []


def test_first_frame_of_an_animation_is_what_is_cut() -> None:
    frame0 = image(grid_sheet(cols=4, rows=2, tile=16, margin=0, spacing=2))
    frame1 = Image.new("RGBA", frame0.size, (200, 10, 10, 255))
    buffer = io.BytesIO()
    frame0.save(buffer, "GIF", save_all=True, append_images=[frame1])
    buffer.seek(0)
    gif = Image.open(buffer)
    gif.seek(1)
    assert len(find_tiles(gif)) == 8


# -- the stage ---------------------------------------------------------------------------------


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    image(array).save(buffer, "PNG")
    return buffer.getvalue()


class Catalog:
    """A real SQLite catalog and blob store in a temporary folder, filled by hand."""

    def __init__(
        self, root: Path, limits: Limits | None = None, catalog: str | None = None
    ) -> None:
        self.settings = Settings(data=root / "data", limits=limits or Limits(), catalog=catalog)
        self.engine: Engine = open_catalog(self.settings.catalog_url)
        self.store = BlobStore(self.settings.store_dir)
        with self.engine.begin() as conn:
            self.page_id = conn.execute(
                insert(pages).values(slug="sheets", url="https://opengameart.org/content/sheets")
            ).inserted_primary_key[0]

    def add_image(
        self, name: str, data: bytes | None, *, archive_path: str = "", sha256: str | None = None
    ) -> int:
        """A file (and member, inside an archive) holding an image, as extract leaves them."""
        if data is not None:
            sha256 = self.store.put_bytes(data)
        assert sha256 is not None
        with self.engine.begin() as conn:
            file_id = conn.execute(
                insert(files).values(
                    page_id=self.page_id,
                    url=f"https://opengameart.org/sites/default/files/{name}",
                    name=name,
                    state="done",
                    sha256=sha256,
                )
            ).inserted_primary_key[0]
            member_id = None
            if archive_path:
                member_id = conn.execute(
                    insert(members).values(
                        file_id=file_id, path=archive_path, kind="image", sha256=sha256
                    )
                ).inserted_primary_key[0]
            return conn.execute(
                insert(images).values(
                    file_id=file_id,
                    member_id=member_id,
                    archive_path=archive_path,
                    sha256=sha256,
                    format="PNG",
                    width=1,
                    height=1,
                )
            ).inserted_primary_key[0]

    def row(self, image_id: int):  # type: ignore[no-untyped-def]
        with self.engine.connect() as conn:
            return conn.execute(select(images).where(images.c.id == image_id)).one()

    def tiles(self, parent_id: int) -> list:  # type: ignore[type-arg]
        with self.engine.connect() as conn:
            return conn.execute(
                select(images).where(images.c.parent_id == parent_id).order_by(images.c.id)
            ).all()

    def count_tiles(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).where(images.c.parent_id.is_not(None))
            ).scalar_one()


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog(tmp_path)
    yield cat
    cat.engine.dispose()


def test_stage_writes_tile_rows_for_sheets_and_nothing_for_single_pictures(
    catalog: Catalog,
) -> None:
    array = grid_sheet(cols=5, rows=3, tile=16, margin=1, spacing=2)
    sheet_id = catalog.add_image("pack.zip", png_bytes(array), archive_path="pack.zip/a.png")
    single = sheet(48, 48)
    paste(single, blob_sprite(40, 30, 3), 4, 9)
    single_id = catalog.add_image("hero.png", png_bytes(single))

    stats = cut_tiles(catalog.engine, catalog.settings, catalog.store)

    assert (stats.images, stats.sheets, stats.tiles, stats.failed) == (2, 1, 15, 0)
    parent = catalog.row(sheet_id)
    assert (parent.tiles_state, parent.error) == ("done", None)
    assert catalog.row(single_id).tiles_state == "done"
    assert catalog.tiles(single_id) == []
    tiles = catalog.tiles(sheet_id)
    assert [t.box for t in tiles] == [
        f"{1 + i * 18},{1 + j * 18},16,16" for j in range(3) for i in range(5)
    ]
    picture = image(array)
    for t in tiles:
        crop = picture.crop((t.tile_x, t.tile_y, t.tile_x + t.tile_w, t.tile_y + t.tile_h))
        assert t.box == f"{t.tile_x},{t.tile_y},{t.tile_w},{t.tile_h}"
        assert t.sha256 == t.pixel_sha256 == pixel_sha256(crop)
        assert t.phash == perceptual_hash(crop)
        assert (t.file_id, t.member_id, t.archive_path) == (
            parent.file_id,
            parent.member_id,
            "pack.zip/a.png",
        )
        assert (t.width, t.height, t.frames) == (16, 16, 1)
        assert (t.tiles_state, t.embed_state, t.indexed) == ("skipped", "pending", False)
    assert len({t.sha256 for t in tiles}) == 15


def test_stage_is_idempotent_and_never_duplicates_tiles(catalog: Catalog) -> None:
    sheet_id = catalog.add_image("s.png", png_bytes(grid_sheet(4, 4, 16, 0, 1)))
    first = cut_tiles(catalog.engine, catalog.settings, catalog.store)
    assert first.tiles == 16
    again = cut_tiles(catalog.engine, catalog.settings, catalog.store)
    assert (again.images, again.tiles) == (0, 0)
    with catalog.engine.begin() as conn:  # as if the state had been lost: cut once more
        conn.execute(update(images).where(images.c.id == sheet_id).values(tiles_state="pending"))
    redo = cut_tiles(catalog.engine, catalog.settings, catalog.store)
    assert (redo.images, redo.sheets, redo.tiles) == (1, 1, 0)
    assert catalog.count_tiles() == 16
    assert catalog.row(sheet_id).tiles_state == "done"


def test_stage_copies_the_tiles_of_an_identical_sheet(catalog: Catalog) -> None:
    data = png_bytes(grid_sheet(3, 2, 16, 0, 2))
    first = catalog.add_image("a.png", data)
    second = catalog.add_image("b.png", data)
    stats = cut_tiles(catalog.engine, catalog.settings, catalog.store)
    assert (stats.sheets, stats.tiles, stats.copied) == (2, 12, 6)
    one = [(t.box, t.sha256, t.phash) for t in catalog.tiles(first)]
    two = [(t.box, t.sha256, t.phash) for t in catalog.tiles(second)]
    assert one == two and len(one) == 6
    assert {t.file_id for t in catalog.tiles(second)} == {catalog.row(second).file_id}


def test_stage_records_failures_and_goes_on(catalog: Catalog) -> None:
    corrupt = catalog.add_image("bad.png", b"\x89PNG\r\n\x1a\n but not really a png")
    missing = catalog.add_image("gone.png", None, sha256=hashlib.sha256(b"absent").hexdigest())
    good = catalog.add_image("ok.png", png_bytes(grid_sheet(3, 3, 16, 0, 2)))

    stats = cut_tiles(catalog.engine, catalog.settings, catalog.store)

    assert (stats.images, stats.failed, stats.sheets) == (3, 2, 1)
    bad, gone = catalog.row(corrupt), catalog.row(missing)
    assert bad.tiles_state == gone.tiles_state == "failed"
    assert "corrupt" in bad.error or "truncated" in bad.error
    assert gone.error == "blob missing from the store"
    assert catalog.row(good).tiles_state == "done"
    with catalog.engine.connect() as conn:
        logged = conn.execute(select(failures.c.stage, failures.c.item)).all()
    assert sorted(logged) == [("tiles", f"image {corrupt}"), ("tiles", f"image {missing}")]
    assert cut_tiles(catalog.engine, catalog.settings, catalog.store).images == 0


def test_older_tiling_rules_are_redecided_by_the_next_run(catalog: Catalog) -> None:
    """A catalog cut by version 1 (no version in ``meta``) with tiles the rules no longer cut:
    the next run deletes them with their vectors, patches and index entries, adds the tiles
    that are missing, keeps the ones still cut as they are, and records the version."""
    sheet_id = catalog.add_image("s.png", png_bytes(grid_sheet(4, 3, 16, 0, 2)))
    single = sheet(48, 48)
    paste(single, blob_sprite(40, 30, 3), 4, 9)
    single_id = catalog.add_image("hero.png", png_bytes(single))
    cut_tiles(catalog.engine, catalog.settings, catalog.store)
    kept = {t.box: t.id for t in catalog.tiles(sheet_id)}
    assert len(kept) == 12
    with catalog.engine.begin() as conn:  # what older rules left: over-cut parts, a lost tile
        conn.execute(delete(meta).where(meta.c.key == VERSION_KEY))
        conn.execute(delete(images).where(images.c.box == "0,0,16,16"))
        parent = catalog.row(single_id)
        stale = []
        for n, (box, indexed) in enumerate([("4,9,20,30", True), ("24,9,20,30", False)]):
            stale_id = conn.execute(
                insert(images).values(
                    file_id=parent.file_id,
                    box=box,
                    parent_id=single_id,
                    sha256=f"{n:064}",
                    width=20,
                    height=30,
                    tiles_state="skipped",
                    embed_state="done",
                    indexed=indexed,
                )
            ).inserted_primary_key[0]
            conn.execute(
                insert(embeddings).values(
                    image_id=stale_id,
                    model="m",
                    dim=1,
                    vector=b"\0\0",
                    patches=encode_fingerprints([n + 1]),
                )
            )
            stale.append(stale_id)
        changes = patch_changes(conn)
    unindexed: list[int] = []

    stats = cut_tiles(catalog.engine, catalog.settings, catalog.store, unindex=unindexed.extend)

    assert (stats.redecided, stats.images, stats.removed, stats.tiles) == (2, 2, 2, 1)
    assert unindexed == [stale[0]]  # only the indexed one had an index entry
    assert catalog.tiles(single_id) == []
    with catalog.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(embeddings)).scalar_one() == 0
        assert patch_changes(conn) > changes  # the patch table is rebuilt by the next index run
        version = conn.execute(select(meta.c.value).where(meta.c.key == VERSION_KEY)).scalar()
    assert version == str(TILING_VERSION)
    now = {t.box: t.id for t in catalog.tiles(sheet_id)}
    assert set(now) == set(kept)
    assert all(now[box] == kept[box] for box in kept if box != "0,0,16,16")  # not re-cut
    assert cut_tiles(catalog.engine, catalog.settings, catalog.store).redecided == 0


def test_a_fresh_catalog_records_the_tiling_version_without_redeciding(catalog: Catalog) -> None:
    catalog.add_image("s.png", png_bytes(grid_sheet(4, 3, 16, 0, 2)))
    stats = cut_tiles(catalog.engine, catalog.settings, catalog.store)
    assert (stats.redecided, stats.sheets) == (0, 1)
    with catalog.engine.connect() as conn:
        version = conn.execute(select(meta.c.value).where(meta.c.key == VERSION_KEY)).scalar()
    assert version == str(TILING_VERSION)


def test_stage_honours_the_tile_limit_and_stage_limit(tmp_path: Path) -> None:
    cat = Catalog(tmp_path, Limits(max_tiles_per_sheet=4))
    ids = [cat.add_image(f"{k}.png", png_bytes(grid_sheet(5, 2, 16, 0, k + 1))) for k in range(3)]
    stats = cut_tiles(cat.engine, cat.settings, cat.store, limit=2)
    assert (stats.images, stats.tiles) == (2, 8)
    assert [cat.row(i).tiles_state for i in ids] == ["done", "done", "pending"]
    assert [t.box for t in cat.tiles(ids[0])] == [f"{i * 17},0,16,16" for i in range(4)]
    cat.engine.dispose()


@pytest.mark.postgres
def test_stage_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    cat = Catalog(tmp_path, catalog=pg_url)
    data = png_bytes(grid_sheet(4, 3, 16, 1, 2))
    first, twin = cat.add_image("a.png", data), cat.add_image("b.png", data)
    broken = cat.add_image("c.png", b"GIF89a broken")
    stats = cut_tiles(cat.engine, cat.settings, cat.store)
    assert (stats.images, stats.sheets, stats.tiles, stats.copied, stats.failed) == (
        3,
        2,
        24,
        12,
        1,
    )
    assert [t.box for t in cat.tiles(first)] == [t.box for t in cat.tiles(twin)]
    assert cat.row(broken).tiles_state == "failed"
    with cat.engine.begin() as conn:
        conn.execute(update(images).where(images.c.id == first).values(tiles_state="pending"))
    assert cut_tiles(cat.engine, cat.settings, cat.store).tiles == 0
    assert cat.count_tiles() == 24
    cat.engine.dispose()


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from ogasearch.catalog import open_catalog
    from ogasearch.settings import Settings
    from ogasearch.tiles import stage

    data, where, at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    calls = 0

    def dying(real, after):
        def call(*args, **kwargs):
            global calls
            calls += 1
            if calls == at and not after:
                os.kill(os.getpid(), signal.SIGKILL)
            result = real(*args, **kwargs)
            if calls == at and after:
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        return call

    if where == "record":  # while hashing a sheet's tiles, before any write
        stage._record = dying(stage._record, after=False)
    else:  # tile rows inserted, the sheet's state not yet updated, nothing committed
        stage._write_tiles = dying(stage._write_tiles, after=True)
    settings = Settings(data=data)
    stage.cut_tiles(open_catalog(settings.catalog_url), settings)
    """
)


def kill_catalog(root: Path) -> Catalog:
    cat = Catalog(root)
    for k in range(4):
        cat.add_image(f"sheet{k}.png", png_bytes(grid_sheet(3 + k, 2, 16, k, 1 + k)))
    single = sheet(40, 40)
    paste(single, blob_sprite(30, 30, 1), 5, 5)
    cat.add_image("hero.png", png_bytes(single))
    return cat


def snapshot(cat: Catalog) -> dict[str, object]:
    with cat.engine.connect() as conn:
        whole = conn.execute(
            select(images.c.id, images.c.tiles_state, images.c.error)
            .where(images.c.parent_id.is_(None))
            .order_by(images.c.id)
        ).all()
        tiles = conn.execute(
            select(
                images.c.parent_id,
                images.c.file_id,
                images.c.box,
                images.c.sha256,
                images.c.phash,
                images.c.tiles_state,
                images.c.embed_state,
            ).where(images.c.parent_id.is_not(None))
        ).all()
    return {"whole": [tuple(r) for r in whole], "tiles": sorted(tuple(t) for t in tiles)}


def check_kills(tmp_path: Path, kills: list[tuple[str, int]]) -> None:
    """Kill ``cut_tiles`` (SIGKILL, in a subprocess) at each point in turn; after every kill
    each sheet is either pending without tiles or done with all of them, and a final run
    gives exactly the rows of an uninterrupted run."""
    reference = kill_catalog(tmp_path / "reference")
    cut_tiles(reference.engine, reference.settings, reference.store)
    expected = snapshot(reference)
    per_sheet: dict[int, list[tuple[object, ...]]] = {}
    for tile in expected["tiles"]:  # type: ignore[union-attr]
        per_sheet.setdefault(tile[0], []).append(tile)
    killed = kill_catalog(tmp_path / "killed")
    deaths = 0
    for where, at in kills:
        proc = subprocess.run(
            [sys.executable, "-c", KILLER, str(killed.settings.data), where, str(at)],
            capture_output=True,
            check=False,
        )
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.decode()
        deaths += proc.returncode == -signal.SIGKILL
        now = snapshot(killed)
        for image_id, state, _ in now["whole"]:  # type: ignore[union-attr]
            mine = [t for t in now["tiles"] if t[0] == image_id]  # type: ignore[union-attr]
            assert mine == ([] if state == "pending" else per_sheet.get(image_id, []))
    assert deaths == len(kills)
    cut_tiles(killed.engine, killed.settings, killed.store)
    assert snapshot(killed) == expected
    reference.engine.dispose()
    killed.engine.dispose()


@pytest.mark.slow  # a kill loop
def test_killed_runs_leave_whole_sheets_and_a_rerun_finishes_the_same(tmp_path: Path) -> None:
    check_kills(tmp_path, [("record", 3), ("write", 2)])


@pytest.mark.slow
def test_kills_anywhere_leave_whole_sheets(tmp_path: Path) -> None:
    check_kills(tmp_path, [("record", 1), ("write", 1), ("record", 7), ("write", 1), ("record", 2)])


# -- sheets and pictures that are not sheets (small versions of the classes of bench/sheet_set) --


def _sheet_art():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    try:
        import sheet_art
    finally:
        sys.path.pop(0)
    return sheet_art


def sprites(count: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(14, 40, size=(count, 2))
    return [image(blob_sprite(int(w), int(h), seed * 100 + i)) for i, (w, h) in enumerate(sizes)]


@pytest.mark.parametrize(
    "seed",
    [
        0,
        pytest.param(
            1,
            marks=pytest.mark.xfail(
                strict=True,
                reason="known gap: overlapping "
                "figures leave empty lines that a gutter grid of big cells still fits",
            ),
        ),
        2,
    ],
)
def test_figures_scattered_on_a_key_colour_are_a_scene_not_an_atlas(seed: int) -> None:
    art = _sheet_art()
    picture = art.scene((0, 0, 0, 255), (400, 300), sprites(7, seed), seed)
    assert find_tiles(picture) == []


@pytest.mark.parametrize("seed", [0, 1])
def test_soft_effects_are_not_sheets(seed: int) -> None:
    art = _sheet_art()
    for picture in (art.glow(96, seed), art.sparks(128, seed), art.smoke(128, seed)):
        assert find_tiles(picture) == []


def test_sprites_packed_on_shelves_are_an_atlas() -> None:
    canvas = sheet(200, 120)
    x, y, count = 0, 0, 0
    for i, sprite in enumerate(sprites(12, 5)):
        if x + sprite.width > 200:
            x, y = 0, y + 40
        paste(canvas, np.array(sprite), x, y)  # top-aligned on a shelf, 2 px apart
        x += sprite.width + 2
        count = i + 1
    assert len(find_tiles(image(canvas))) == count


def test_two_row_sheet_on_a_plain_background_colour_is_cut() -> None:
    """Sprites with spacing but no margin on a background that is no key colour: the
    one-colour lines between the frames are the background."""
    fill = (70, 110, 160, 255)
    canvas = sheet(5 * 40 + 4 * 4, 2 * 40 + 4, fill)
    for k in range(10):
        paste(canvas, blob_sprite(30 + k % 3 * 4, 40, 700 + k), (k % 5) * 44, (k // 5) * 44)
    assert len(find_tiles(image(canvas))) == 10


def test_a_last_row_of_smaller_sprites_keeps_the_grid() -> None:
    """Three rows, the last holding small things (gems under flags): still one grid whose
    cells are the frames' common art extent."""
    canvas = sheet(2 + 4 * 40 + 3 * 3 + 2, 2 + 3 * 40 + 2 * 3 + 2)
    for k in range(12):
        h = 40 if k < 8 else 14
        x, y = 2 + (k % 4) * 43, 2 + (k // 4) * 43 + (40 - h) // 2
        paste(canvas, blob_sprite(30, h, 800 + k), x + 5, y)
    found = boxes_of(image(canvas))
    assert found == [(2 + i * 43 + 5, 2 + j * 43, 30, 40) for j in range(3) for i in range(4)]


def test_two_lines_of_glyphs_are_a_logo_not_an_atlas() -> None:
    """Glyphs of one height along a title line and a smaller subtitle line, at uneven
    widths and gaps (no grid): the atlas finder's shelves, but text."""
    rng = np.random.default_rng(3)
    canvas = sheet(420, 110)
    for line, (top, height, count) in enumerate(((10, 40, 9), (70, 20, 8))):
        x = 12 + line * 60
        for k in range(count):
            width = int(rng.integers(height * 2 // 3, height + 8))
            paste(canvas, blob_sprite(width, height, 900 + 20 * line + k), x, top)
            x += width + int(rng.integers(2, 7))
    assert find_tiles(image(canvas)) == []
