"""Packed grids: tiles side by side without gutters (Dungeon Crawl's floor and wall atlases,
Kenney's tiles.png, most opaque tile sets), found from colour jumps along the cut lines.

Inside a tile neighbouring lines are alike; between two different tiles they are not. Per
axis, a cell size (common tile sizes and the divisors of the side) is evidence of a grid when
its cut lines jump, on average, ``_EDGE_RATIO`` times as much as the other lines and most
cuts do individually. Multiples of the cell size score as well as the cell size itself, so
the smallest size scoring close to the best and dividing it wins. Cells start at 0 (callers
pass the art's bounding box, so a margin is no cell).

A single tile's own regular pattern (bricks, slabs, a road crossing) scores too, so a grid
needs five cells along one axis and cells that differ from each other in colour.
"""

from __future__ import annotations

import numpy as np

from ogasearch.tiles.layout import Cell, Segments, cells

MAX_PITCH = 1024  # largest cell considered, in art pixels

_EDGE_SIZES = (8, 16, 24, 32, 48, 64, 96, 128, 256)
_EDGE_RATIO = 1.5  # cut lines this many times stronger than other lines
_EDGE_STRONG = 1.25  # a cut line is strong when this many times the mean of other lines
_EDGE_CONSISTENT = 0.75  # share of the cut lines that must be strong
_EDGE_MIN_CELLS = 2  # cells along a pitched axis, at least ...
_EDGE_MIN_LONG = 5  # ... and along one of the axes at least this many
_EDGE_TIE = 0.9  # a size that tiles the side wins over a better one this close
_EDGE_KEEP = 0.75  # a smaller cell size wins if its ratio is this close to the best one
_LOSSY_MIN_PITCH = 16  # in JPEG images, smaller sizes are the compression's own blocks
_DIVERSITY = 0.5  # cells' mean colours must vary this much (vs. within a cell)
_SAMPLES = 16  # pixels sampled per cell side when comparing cells


def edge_grid(rgba: np.ndarray, lossy: bool, min_size: int) -> list[Cell] | None:
    """The cells of a packed grid over the whole of ``rgba``, or None."""
    height, width = rgba.shape[:2]
    px = edge_pitch(discontinuity(rgba, axis=1), width, lossy, min_size)
    py = edge_pitch(discontinuity(rgba, axis=0), height, lossy, min_size)
    if px is None and py is None:
        return None
    if px is None:  # one column of tiles: the other side must hold a single cell
        assert py is not None
        if width >= 2 * py:
            return None
        px = width
    if py is None:
        if height >= 2 * px:
            return None
        py = height
    if max(width // px, height // py) < _EDGE_MIN_LONG:
        return None  # so few cells that a single tile's own pattern is as likely
    if not _diverse_cells(rgba, px, py):
        return None  # a texture with a regular pattern (bricks, slabs), not a tile set
    return cells(Segments.regular(width, px), Segments.regular(height, py))


def discontinuity(rgba: np.ndarray, axis: int) -> np.ndarray:
    """Mean colour jump (sum over RGBA) between consecutive lines along ``axis`` (1: between
    columns, 0: between rows): entry i is between line i and line i + 1. Transparent pixels
    were zeroed, so "nothing" is one colour."""
    height, width = rgba.shape[:2]
    size, span = (width, height) if axis == 1 else (height, width)
    total = np.zeros(max(size - 1, 0), dtype=np.float64)
    step = max(1, (4 << 20) // max(1, 8 * size))  # about 4 MiB of int16 at a time
    for start in range(0, span, step):
        block = rgba[start : start + step] if axis == 1 else rgba[:, start : start + step]
        jumps = np.abs(np.diff(block.astype(np.int16), axis=axis)).sum(axis=2, dtype=np.int32)
        total += jumps.sum(axis=0 if axis == 1 else 1)
    return total / max(span, 1)


def edge_pitch(profile: np.ndarray, size: int, lossy: bool, min_size: int) -> int | None:
    """The cell size whose cut lines stand out in the discontinuity profile, or None.

    A cut's strength is the largest jump within one line of it: tiles often have a
    one-pixel outline, so the jump is on either side of the cut.
    """
    if profile.size < 3:
        return None
    strength = profile.copy()
    np.maximum(strength[1:], profile[:-1], out=strength[1:])
    np.maximum(strength[:-1], profile[1:], out=strength[:-1])
    longest = min(size // _EDGE_MIN_CELLS, MAX_PITCH)
    sizes = {s for s in _EDGE_SIZES if min_size <= s <= longest}
    sizes |= {d for d in range(min_size, longest + 1) if size % d == 0}
    scores: dict[int, float] = {}
    for pitch in sorted(sizes):
        if lossy and pitch < _LOSSY_MIN_PITCH:
            continue
        cuts = np.arange(pitch, size, pitch) - 1  # profile index of the cut at x = k * pitch
        if cuts.size == 0:
            continue
        near = np.zeros(profile.size, dtype=bool)
        for shift in (-2, -1, 0, 1, 2):
            near[np.clip(cuts + shift, 0, profile.size - 1)] = True
        if near.all():
            continue
        base = max(float(strength[~near].mean()), 1e-6)
        ratio = float(strength[cuts].mean()) / base
        strong = np.count_nonzero(strength[cuts] > _EDGE_STRONG * base) / cuts.size
        if ratio >= _EDGE_RATIO and strong >= _EDGE_CONSISTENT:
            scores[pitch] = ratio
    if not scores:
        return None
    best = max(scores, key=lambda p: scores[p])
    tiling = [p for p in scores if size % p == 0 and scores[p] >= _EDGE_TIE * scores[best]]
    if size % best and tiling:
        best = max(tiling, key=lambda p: scores[p])  # outlines blur a cut by a pixel
    for pitch in sorted(scores):
        if best % pitch == 0 and scores[pitch] >= _EDGE_KEEP * scores[best]:
            return pitch
    return best


def _diverse_cells(rgba: np.ndarray, px: int, py: int) -> bool:
    """Tiles of a set differ in colour; the cells of a patterned texture all look alike.
    Cells are sampled on a grid of about 16 x 16 pixels each, one row of cells at a time."""
    rows, cols = rgba.shape[0] // py, rgba.shape[1] // px
    sy, sx = max(1, py // _SAMPLES), max(1, px // _SAMPLES)
    means, spreads = [], []
    for row in range(rows):
        strip = rgba[row * py : (row + 1) * py : sy, : cols * px]
        cells = strip.reshape(strip.shape[0], cols, px, 4)[:, :, ::sx].astype(np.float32)
        means.append(cells.mean(axis=(0, 2)))  # (cols, 4)
        spreads.append(cells.std(axis=(0, 2)).mean())
    between = float(np.concatenate(means).std(axis=0).mean())
    within = float(np.mean(spreads))
    return between >= _DIVERSITY * max(within, 1e-6)
