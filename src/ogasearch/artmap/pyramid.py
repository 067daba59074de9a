"""The tile pyramid: 256-pixel WebP tiles, drawn from thumbnails at the deepest zoom and
composed from their four children above it, so a change redraws only the tiles it touches.

At ``max_zoom`` each image is a thumbnail of at most ``THUMB`` pixels centred on its point
(nearest-neighbour upscaling, so pixel art stays pixel art; box-filtered when a picture is
bigger); every tile above is its four children halved (premultiplied alpha, box filter).
Deepest tiles are lossless WebP, composed ones lossy (they are overviews of many images).
An empty tile is not written: the server answers an empty one.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from ogasearch.artmap.info import TILE, tile_path
from ogasearch.progress import progress

THUMB = 32  # thumbnail side at the deepest zoom, pixels
SPACING = 40  # pixels per image the deepest zoom aims at (picks max_zoom)
ZOOM_RANGE = (2, 8)
OVERVIEW_QUALITY = 80  # WebP quality of composed tiles

Tile = tuple[int, int]  # (x, y) at one zoom
Thumbs = Callable[[list[int]], dict[int, Image.Image]]  # image ids -> their thumbnails


def max_zoom(points: int) -> int:
    """The deepest zoom for a map of ``points`` images: about SPACING pixels per image."""
    wanted = math.ceil(math.log2(max(SPACING * math.sqrt(max(points, 1)) / TILE, 1)))
    return min(max(wanted, ZOOM_RANGE[0]), ZOOM_RANGE[1])


def thumbnail(image: Image.Image) -> Image.Image:
    """An image fitted into THUMB x THUMB: whole-number nearest upscaling, box downscaling."""
    image = image.convert("RGBA")
    w, h = image.size
    scale = THUMB / max(w, h)
    if scale >= 1:
        factor = int(scale)
        return image.resize((w * factor, h * factor), Image.Resampling.NEAREST)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return image.convert("RGBa").resize(size, Image.Resampling.BOX).convert("RGBA")


def tile_members(xy: np.ndarray, zoom: int) -> dict[Tile, list[int]]:
    """For each tile at ``zoom``, the rows of ``xy`` (map units) whose thumbnails it shows."""
    px = xy * (2**zoom)
    half = THUMB / 2
    last = 2**zoom - 1
    bounds = (px[:, 0] - half, px[:, 1] - half, px[:, 0] + half, px[:, 1] + half)
    lo_x, lo_y, hi_x, hi_y = (np.clip(np.floor(v / TILE).astype(int), 0, last) for v in bounds)
    found: dict[Tile, list[int]] = defaultdict(list)
    for row in range(len(xy)):
        for tx in range(lo_x[row], hi_x[row] + 1):
            for ty in range(lo_y[row], hi_y[row] + 1):
                found[(int(tx), int(ty))].append(row)
    return found


def draw_leaf(
    tile: Tile, zoom: int, points: list[tuple[int, float, float]], thumbs: dict[int, Image.Image]
) -> Image.Image | None:
    """The tile at the deepest zoom: each point's thumbnail centred on it, in id order (so a
    redraw gives the same picture); None when nothing shows."""
    canvas = Image.new("RGBA", (TILE, TILE))
    drawn = False
    for image_id, x, y in sorted(points):
        thumb = thumbs.get(image_id)
        if thumb is None:
            continue
        left = round(x * 2**zoom - tile[0] * TILE - thumb.width / 2)
        top = round(y * 2**zoom - tile[1] * TILE - thumb.height / 2)
        if _inside(left, top, thumb):
            canvas.alpha_composite(thumb, (left, top))
            drawn = True
    return canvas if drawn and canvas.getbbox() else None


def _inside(left: int, top: int, thumb: Image.Image) -> bool:
    return left < TILE and top < TILE and left + thumb.width > 0 and top + thumb.height > 0


def compose(data: Path, tile: Tile, zoom: int) -> Image.Image | None:
    """The tile at ``zoom`` from its four children at ``zoom + 1``, halved."""
    canvas = Image.new("RGBa", (2 * TILE, 2 * TILE))
    found = False
    for dx in (0, 1):
        for dy in (0, 1):
            path = tile_path(data, zoom + 1, 2 * tile[0] + dx, 2 * tile[1] + dy)
            if path.is_file():
                with Image.open(path) as child:
                    canvas.paste(child.convert("RGBa"), (dx * TILE, dy * TILE))
                found = True
    if not found:
        return None
    return canvas.resize((TILE, TILE), Image.Resampling.BOX).convert("RGBA")


def save_tile(data: Path, tile: Tile, zoom: int, image: Image.Image | None, leaf: bool) -> None:
    """Write the tile (replaced whole: a reader sees the old or the new one), or remove it."""
    path = tile_path(data, zoom, *tile)
    if image is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if leaf:
        image.save(tmp, "WEBP", lossless=True, method=4)
    else:
        image.save(tmp, "WEBP", quality=OVERVIEW_QUALITY, method=4)
    os.replace(tmp, path)


def parents(tiles: Iterable[Tile]) -> set[Tile]:
    return {(x // 2, y // 2) for x, y in tiles}


def draw_tiles(
    data: Path, ids: list[int], xy: np.ndarray, changed: np.ndarray, zoom: int, thumbs: Thumbs
) -> int:
    """Redraw the deepest tiles under the places ``changed`` (map units: new points, points
    gone) from every point shown (``ids`` and their map units ``xy``), then their parents up
    to zoom 0; return the tiles written."""
    if not len(changed):
        return 0
    members = tile_members(xy, zoom)
    leaves = sorted(tile_members(changed, zoom))
    written = 0
    with progress(len(leaves), "map: tiles", "tile") as bar:
        for tile in leaves:
            points = [(ids[r], float(xy[r, 0]), float(xy[r, 1])) for r in members.get(tile, [])]
            drawn = draw_leaf(tile, zoom, points, thumbs([p[0] for p in points]))
            save_tile(data, tile, zoom, drawn, leaf=True)
            written += 1
            bar.update(1)
    level: set[Tile] = set(leaves)
    with progress(None, "map: overview tiles", "tile") as bar:
        for z in range(zoom - 1, -1, -1):
            level = parents(level)
            for tile in sorted(level):
                save_tile(data, tile, z, compose(data, tile, z), leaf=False)
                written += 1
                bar.update(1)
    return written
