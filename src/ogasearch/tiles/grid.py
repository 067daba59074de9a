"""Finding the tiles of a sprite sheet or tile set: pure functions on pixels, no catalog.

A user may hold one tile of a sheet, so every sheet is cut into its tiles and each tile is
indexed with its box. ``find_tiles`` answers "where are the tiles in this picture?" and
returns ``[]`` when the picture is not a sheet (a single sprite, an illustration, a photo-like
background, a tiny image), because cutting those would only add noise to the index.

The steps, each in its own module:

1. ``pixels``: the first frame as RGBA, an integer upscale undone (sizes are in art pixels,
   boxes are scaled back at the end), the foreground mask (transparency, or a background
   colour) and its connected components.
2. Regular grids, the one with more distinct non-empty cells wins:
   ``gutters`` (cut lines through empty lines of the mask: any margin and spacing) and
   ``edges`` (packed tiles without gutters, found from colour jumps along the cut lines).
3. ``atlas``: sprites without a grid, from the connected components.
4. Here: cells smaller than ``min_size``, empty (all transparent or background, or one flat
   colour) or repeated (identical pixels: the first in reading order stays) are dropped, and
   at most ``max_tiles`` are kept. A grid needs three distinct tiles.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ogasearch.tiles.atlas import atlas_cells
from ogasearch.tiles.edges import edge_grid
from ogasearch.tiles.gutters import gutter_grid
from ogasearch.tiles.layout import Cell
from ogasearch.tiles.pixels import Parts, art_bounds, foreground, sheet_pixels

MAX_TILES = 4096  # tiles kept per sheet (the first ones in reading order)
MIN_TILE = 8  # smallest tile side, in art pixels (after undoing an integer upscale)

_EDGE_DENSITY = 0.5  # packed grids: this share of the art's bounding box is art
_MIN_GRID_CELLS = 3  # distinct non-empty cells a grid needs
_MIN_ATLAS_CELLS = 2  # ... and an atlas, once cleaned up
_MAX_DUPLICATES = 0.5  # packed grids with more repeated cells than this are maps


@dataclass(frozen=True, slots=True)
class TileBox:
    """A tile's box in its sheet, in pixels of the sheet as stored."""

    x: int
    y: int
    w: int
    h: int

    def __str__(self) -> str:
        """The catalog's ``images.box`` form: ``"x,y,w,h"``."""
        return f"{self.x},{self.y},{self.w},{self.h}"

    @classmethod
    def parse(cls, text: str) -> TileBox:
        """The box written by ``str(box)`` (raises ValueError on anything else)."""
        parts = text.split(",")
        if len(parts) != 4:
            raise ValueError(f"not a tile box 'x,y,w,h': {text!r}")
        x, y, w, h = (int(p) for p in parts)
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise ValueError(f"not a tile box 'x,y,w,h': {text!r}")
        return cls(x, y, w, h)

    @property
    def pil_box(self) -> tuple[int, int, int, int]:
        """``(left, upper, right, lower)`` for ``Image.crop``."""
        return (self.x, self.y, self.x + self.w, self.y + self.h)


def find_tiles(
    img: Image.Image, *, max_tiles: int = MAX_TILES, min_size: int = MIN_TILE
) -> list[TileBox]:
    """The tiles of a sprite sheet or tile set (first frame), in reading order; ``[]`` if
    the picture is not one."""
    if min(img.size) < min_size or max(img.size) < 2 * min_size:
        return []
    rgba, pixels, fy, fx = sheet_pixels(img)
    height, width = pixels.shape
    if min(width, height) < min_size or max(width, height) < 2 * min_size:
        return []
    lossy = (img.format or "").upper() == "JPEG"
    mask, keyed = foreground(rgba, pixels, lossy)
    parts = Parts(mask, min_size) if mask is not None else None
    cells = _grid_cells(rgba, pixels, mask, parts, keyed, lossy, max_tiles, min_size)
    if cells is None and parts is not None and keyed:
        found = atlas_cells(parts, min_size)
        if found is not None:
            kept, _ = _clean(pixels, mask, found, max_tiles, min_size)
            cells = kept if len(kept) >= _MIN_ATLAS_CELLS else None
    if not cells:
        return []
    return [TileBox(x * fx, y * fy, w * fx, h * fy) for x, y, w, h in cells]


def _grid_cells(
    rgba: np.ndarray,
    pixels: np.ndarray,
    mask: np.ndarray | None,
    parts: Parts | None,
    keyed: bool,
    lossy: bool,
    max_tiles: int,
    min_size: int,
) -> list[Cell] | None:
    """Cells of the best regular grid (gutters or edges), cleaned up; None if there is none."""
    candidates: list[tuple[list[Cell], bool]] = []
    if mask is not None and parts is not None and mask.any():
        grid = gutter_grid(mask, parts, keyed, min_size)
        if grid is not None:
            candidates.append((grid, False))
    # Packed grids are looked for inside the art's bounding box: a margin is not a cell.
    x0, y0, x1, y1 = art_bounds(mask, rgba.shape)
    inner = mask[y0:y1, x0:x1] if mask is not None else None
    if inner is None or np.count_nonzero(inner) >= _EDGE_DENSITY * inner.size:
        grid = edge_grid(np.ascontiguousarray(rgba[y0:y1, x0:x1]), lossy, min_size)
        if grid is not None:
            candidates.append(([(x + x0, y + y0, w, h) for x, y, w, h in grid], True))
    best: list[Cell] | None = None
    for grid, packed in candidates:
        kept, repeats = _clean(pixels, mask, grid, max_tiles, min_size)
        if packed and repeats > _MAX_DUPLICATES * (len(kept) + repeats):
            continue  # mostly repeats: a map or a screenshot, not a tile set
        if len(kept) >= _MIN_GRID_CELLS and (best is None or len(kept) > len(best)):
            best = kept
    return best


def _clean(
    pixels: np.ndarray,
    mask: np.ndarray | None,
    cells: Iterable[Cell],
    max_tiles: int,
    min_size: int,
) -> tuple[list[Cell], int]:
    """Drop small, empty, flat and repeated cells; return the kept cells and the repeats."""
    kept: list[Cell] = []
    seen: set[bytes] = set()
    repeats = 0
    for x, y, w, h in cells:
        if w < min_size or h < min_size:
            continue
        block = pixels[y : y + h, x : x + w]
        if mask is not None and not mask[y : y + h, x : x + w].any():
            continue
        if mask is None and bool((block == block.flat[0]).all()):
            continue
        digest = hashlib.blake2b(block.tobytes(), digest_size=16)
        digest.update(f"{w}x{h}".encode())
        key = digest.digest()
        if key in seen:
            repeats += 1
            continue
        seen.add(key)
        kept.append((x, y, w, h))
        if len(kept) >= max_tiles:
            break
    return kept, repeats


def describe_grid(boxes: Sequence[TileBox]) -> str:
    """A short summary of a cut, for logs and measurements: ``"132 tiles (32x32 x120, ...)"``."""
    if not boxes:
        return "not a sheet"
    sizes: dict[tuple[int, int], int] = {}
    for box in boxes:
        sizes[(box.w, box.h)] = sizes.get((box.w, box.h), 0) + 1
    common = sorted(sizes.items(), key=lambda item: -item[1])[:3]
    listed = ", ".join(f"{w}x{h} x{n}" for (w, h), n in common)
    return f"{len(boxes)} tiles ({listed})"


__all__ = ["MAX_TILES", "MIN_TILE", "TileBox", "describe_grid", "find_tiles"]
