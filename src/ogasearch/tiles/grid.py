"""Finding the tiles of a sprite sheet or tile set: pure functions on pixels, no catalog.

A user may hold one tile of a sheet, so every sheet is cut into its tiles and each tile is
indexed with its box. ``find_tiles`` answers "where are the tiles in this picture?", and
returns ``[]`` when the picture is not a sheet (a single sprite, an illustration, a photo-like
background, tiny images), because cutting those would only add noise to the index.

How (each step is a small function below, all on numpy arrays):

1. Pixels: the first frame as RGBA; fully transparent pixels count as one colour whatever
   RGB they hide. An integer upscale (every pixel an f x f block, common on OGA) is undone
   first, so that sizes and limits are in art pixels; boxes are scaled back at the end.
2. Foreground mask: non-transparent pixels, or, for an opaque sheet, the pixels that differ
   from the dominant border colour (magenta, black, white backgrounds). A fully opaque
   picture without such a colour (a packed tile set) has no mask.
3. Regular grids, two detectors, the one with more non-empty cells wins:
   - gutters: per axis, a pitch and offset whose cut lines all fall in empty lines of the
     mask (so margins and spacing of any width are found), chosen for the most non-empty
     cells, then for exact tiling of the image, then for the widest clearance;
   - edges (packed grids without gutters, e.g. Dungeon Crawl's floor and wall atlases or
     Kenney's tiles.png): per axis, a cell size (common sizes and divisors of the side)
     whose cut lines carry markedly stronger colour discontinuities than other lines.
4. Irregular atlases (sprites packed without a grid): connected components of the mask, with
   small detached bits (sparkles, a sprite's loose pixels) merged into their sprite, and
   boxes nested inside another box merged into it.
5. Clean-up: cells smaller than ``min_size`` (art pixels) or empty (all transparent or
   background, or one flat colour) are dropped, so are repeated cells (identical pixels:
   the first one in reading order stays), and at most ``max_tiles`` are kept.

A sheet needs at least two distinct tiles; pictures that look like one dominant figure with
some small bits around it (an illustration on a plain background) are not cut.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from ogasearch.extract.images import to_rgba

MAX_TILES = 4096  # tiles kept per sheet (the first ones in reading order)
MIN_TILE = 8  # smallest tile side, in art pixels (after undoing an integer upscale)
MAX_PITCH = 1024  # largest grid cell considered, in art pixels
MAX_UPSCALE = 32  # largest integer upscale factor undone
MAX_COMPONENTS = 100_000  # more connected components than this: noise, not an atlas

_BORDER_SHARE = 0.9  # share of the border a background colour must cover
_BACKGROUND_SHARE = 0.3  # ... and of the whole picture, unless it is a key colour
_GUTTER_LINES = 2  # one-colour inner lines that make a margin-less sheet's background
_STRIP = 64  # lines read at a time when looking for an upscale
_KEY_MARGIN = 16  # key colours: every channel this close to 0 or 255 ...
_KEY_SATURATION = 200  # ... or this far between the largest and smallest channel
_LOSSY_TOLERANCE = 32  # per-channel distance still counted as background in JPEG images
_CROSSING_SHARE = 0.005  # a gutter cut may cross the content of this share of the lines
_CLEAN_CUTS = 0.75  # ... but this share of the cuts must cross nothing
_FEW_CELLS = 3  # grids with this few cells along an axis need cells of similar art extent
_UNKEYED_MIN_CELLS = 4  # cells per axis a grid on a non-key background colour needs
_MAX_PARTS_PER_CELL = 1  # median sprites per grid cell, at most ...
_SPRITE_SHARE = 4  # ... counting components at least 1/4 of the cell's largest
_FILLED = 0.9  # grid cells whose art fills this share of its common extent: solid tiles
_MAX_BANDS = 2  # median separate runs of art per cell along an axis, at most
_DRIFT = 0.1  # pitches whose art moves this share of a period more still compete
_MAX_ASPECT = 4  # grid cells are at most this many times longer than wide
_SIMILAR_EXTENT = 0.5  # ... the smallest at least this share of the largest
_MAX_EMPTY_SEGMENTS = 0.5  # empty grid rows/columns allowed, as a share of non-empty ones
_SINGLE_AXIS_RATIO = 2.5  # a one-cell axis may be at most this many times the other pitch
_EDGE_RATIO = 1.5  # edge grids: cut lines this many times stronger than other lines
_EDGE_RATIO_LOSSY = 3.0  # ... in JPEG images (8x8 block edges must not look like a grid)
_EDGE_STRONG = 1.25  # a cut line is strong when this many times the mean of other lines
_EDGE_CONSISTENT = 0.75  # share of the cut lines that must be strong
_EDGE_MIN_CELLS = 2  # a pitched axis of an edge grid has at least two cells ...
_EDGE_MIN_LONG = 5  # ... and one axis at least five (a single tile's pattern may look like
_EDGE_MIN_LONG_ALPHA = 5  # four), on transparency or a key colour as well
_EDGE_TIE = 0.9  # a size that tiles the side wins over a better one this close
_EDGE_KEEP = 0.75  # a smaller cell size wins if its ratio is this close to the best one
_EDGE_SIZES = (8, 16, 24, 32, 48, 64, 96, 128, 256)
_EDGE_DENSITY = 0.5  # edge grids are for packed sheets: this share of the picture is art
_EDGE_DIVERSITY = 0.5  # cells' mean colours must vary this much (vs. within a cell): no texture
_MIN_GRID_CELLS = 3  # distinct non-empty cells a grid needs
_MAX_DUPLICATES = 0.5  # edge grids with more repeated cells than this are maps, not tile sets
_FRAGMENT_GAP = 3  # detached bits this close (art pixels) to a sprite belong to it
_DOMINANT_SHARE = 0.5  # one figure with this share of the art: an illustration
_MIN_SPRITES = 3  # sprites an atlas needs
_SPRITE_SIDE = 2  # median sprite area at least (this x min_size) squared
_ATLAS_COVER = 0.1  # sprite boxes cover at least this share of the picture
_JOINED = 1.5  # a sprite box this many times the typical side may be two joined sprites
_NECK_SPAN = 0.25  # ... split between this share of its length and one minus it
_NECK = 0.15  # ... where at most this share of the line is art
_HUGE_SHARE = 0.25  # a component box over this share of the picture is no tile


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


@dataclass(frozen=True, slots=True)
class _Segments:
    """One axis of a grid: cell intervals ``[start, end)`` along it, in art pixels, and where
    each cell's period starts (``bases``, before clipping to the image)."""

    starts: np.ndarray
    ends: np.ndarray
    bases: np.ndarray


@dataclass(frozen=True, slots=True)
class _GutterAxis:
    """A periodic cut of one axis: cells ``[offset + k * pitch, ... + pitch)``."""

    pitch: int
    offset: int
    first: int  # k of the first cell (may start before 0 when offset > 0)
    count: int  # number of cells covering the content
    exact: bool  # offset 0 and the side a multiple of the pitch: the cells tile the image

    def natural(self, size: int) -> _Segments:
        bases = self.offset + (self.first + np.arange(self.count)) * self.pitch
        starts, ends = np.clip(bases, 0, size), np.clip(bases + self.pitch, 0, size)
        keep = ends > starts
        return _Segments(starts[keep], ends[keep], bases[keep])


def find_tiles(
    img: Image.Image, *, max_tiles: int = MAX_TILES, min_size: int = MIN_TILE
) -> list[TileBox]:
    """The tiles of a sprite sheet or tile set, in reading order; ``[]`` if it is not one."""
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    rgba = np.array(to_rgba(img), dtype=np.uint8)
    lossy = (img.format or "").upper() == "JPEG"
    height, width = rgba.shape[:2]
    if min(width, height) < min_size or max(width, height) < 2 * min_size:
        return []
    pixels = rgba.view(np.uint32)[..., 0]  # one RGBA pixel per value, a view of rgba
    pixels[rgba[..., 3] == 0] = 0  # transparent is transparent, whatever RGB it hides
    fy, fx = _upscale_factor(pixels, 0), _upscale_factor(pixels, 1)
    if fy > 1 or fx > 1:
        rgba = np.ascontiguousarray(rgba[::fy, ::fx])
        pixels = rgba.view(np.uint32)[..., 0]
    height, width = pixels.shape
    if min(width, height) < min_size or max(width, height) < 2 * min_size:
        return []
    mask, keyed = _foreground(rgba, pixels, lossy)
    parts = _Parts(mask, min_size) if mask is not None else None
    boxes = _grid_tiles(rgba, pixels, mask, parts, keyed, lossy, max_tiles, min_size)
    if boxes is None and parts is not None and keyed:
        boxes = _atlas_tiles(pixels, parts, max_tiles, min_size)
    if not boxes:
        return []
    return [TileBox(x * fx, y * fy, w * fx, h * fy) for x, y, w, h in boxes]


# -- pixels ------------------------------------------------------------------------------------


def _upscale_factor(pixels: np.ndarray, axis: int) -> int:
    """The integer factor f such that every run of equal lines along ``axis`` is f long.

    An image upscaled by nearest neighbour only changes between lines at multiples of f.
    Read in strips, stopping as soon as the factor is 1 (most pictures, early).
    """
    size = pixels.shape[axis]
    factor = size
    lines = pixels if axis == 1 else pixels.T
    for top in range(0, lines.shape[0], _STRIP):
        strip = lines[top : top + _STRIP]
        changes = (strip[:, 1:] != strip[:, :-1]).any(axis=0)
        positions = np.flatnonzero(changes) + 1
        if positions.size:
            factor = int(np.gcd.reduce(np.append(positions, factor)))
        if factor == 1:
            return 1
    return factor if 2 <= factor <= MAX_UPSCALE else 1


def _foreground(
    rgba: np.ndarray, pixels: np.ndarray, lossy: bool
) -> tuple[np.ndarray | None, bool]:
    """Where the art is, and whether that is certain.

    Certain (``keyed``) for transparency and for a key-colour background (pure black, white
    or a saturated colour such as magenta: colours an artist picks to mean "nothing").
    Another dominant border colour may just as well be the body of a single texture tile
    whose details would pass for sprites, so such a mask is only trusted for clear grids.
    None when the picture is opaque without a background colour.
    """
    alpha = rgba[..., 3]
    if not alpha.all():
        return alpha > 0, True  # any transparency: the artist used alpha as "nothing"
    border = np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])
    values, counts = np.unique(border, return_counts=True)
    best = int(counts.argmax())
    candidates = [values[best]] if counts[best] >= _BORDER_SHARE * border.size else []
    gutter = _gutter_colour(pixels)
    if gutter is not None:
        candidates.insert(0, gutter)
    if not candidates:
        return None, False
    background = candidates[0]
    colour = np.array([background], dtype=np.uint32).view(np.uint8)
    if not lossy:
        mask = pixels != background
    else:
        distance = np.zeros(pixels.shape, dtype=np.int16)
        for channel in range(3):
            jump = np.abs(rgba[..., channel].astype(np.int16) - colour[channel])
            np.maximum(distance, jump, out=distance)
        mask = distance > _LOSSY_TOLERANCE
    if _is_key_colour(colour[:3]):
        return mask, True
    if np.count_nonzero(~mask) < _BACKGROUND_SHARE * mask.size:
        return None, False
    return mask, False


def _gutter_colour(pixels: np.ndarray) -> np.uint32 | None:
    """The key colour of the one-colour rows and columns between the tiles of an opaque
    sheet whose tiles touch its border (no margin), or None.

    Only lines inside the picture count (not the runs along its edges, such as a tile's
    own sky or snow), and at least two of them must share the colour.
    """
    lines: list[np.uint32] = []
    for grid in (pixels, pixels.T):
        uniform = (grid == grid[:, :1]).all(axis=1)
        inner = np.flatnonzero(uniform)
        edge_runs = set()
        for run in (range(grid.shape[0]), range(grid.shape[0] - 1, -1, -1)):
            for index in run:
                if not uniform[index]:
                    break
                edge_runs.add(index)
        lines += [grid[r, 0] for r in inner if r not in edge_runs]
    if len(lines) < _GUTTER_LINES:
        return None
    values, counts = np.unique(np.array(lines, dtype=np.uint32), return_counts=True)
    for k in np.argsort(-counts, kind="stable"):
        if counts[k] >= _GUTTER_LINES and _is_key_colour(values[k : k + 1].view(np.uint8)[:3]):
            return values[k]
    return None


def _is_key_colour(rgb: np.ndarray) -> bool:
    """Black, white, magenta, cyan, pure green...: every channel near 0 or 255, or strongly
    saturated."""
    values = rgb.astype(np.int16)
    extreme = bool(((values <= _KEY_MARGIN) | (values >= 255 - _KEY_MARGIN)).all())
    return extreme or int(values.max() - values.min()) >= _KEY_SATURATION


class _Parts:
    """Connected components of the mask (8-connected), as boxes ``(x0, y0, x1, y1)``;
    computed once, on first use, by the grid check and the atlas finder."""

    def __init__(self, mask: np.ndarray, min_size: int) -> None:
        self.mask = mask
        self.min_size = min_size
        self._boxes: np.ndarray | None = None
        self._done = False

    @property
    def boxes(self) -> np.ndarray | None:
        """Component boxes, or None when there are too many to be sprites (noise)."""
        if not self._done:
            self._done = True
            labels, count = ndimage.label(self.mask, structure=np.ones((3, 3), dtype=bool))
            if 0 < count <= MAX_COMPONENTS:
                self._boxes = np.array(
                    [
                        [s[1].start, s[0].start, s[1].stop, s[0].stop]
                        for s in ndimage.find_objects(labels)
                    ],
                    dtype=np.int64,
                )
        return self._boxes

    def per_cell(self, xs: _Segments, ys: _Segments) -> float:
        """Median number of sprites per non-empty cell: tile-sized components whose centre
        lies in the cell and whose box is at least a quarter of the cell's largest (debris
        around a sprite does not count, a second sprite does)."""
        boxes = self.boxes
        if boxes is None:
            return 0.0
        widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        big = (widths >= self.min_size) & (heights >= self.min_size)
        boxes, areas = boxes[big], (widths * heights)[big]
        if boxes.size == 0:
            return 0.0
        cx = (boxes[:, 0] + boxes[:, 2]) // 2
        cy = (boxes[:, 1] + boxes[:, 3]) // 2
        col = np.searchsorted(xs.starts, cx, side="right") - 1
        row = np.searchsorted(ys.starts, cy, side="right") - 1
        inside = (col >= 0) & (row >= 0)
        inside &= cx < xs.ends[np.clip(col, 0, None)]
        inside &= cy < ys.ends[np.clip(row, 0, None)]
        cells = row[inside] * xs.starts.size + col[inside]
        areas = areas[inside]
        if cells.size == 0:
            return 0.0
        largest = np.zeros(int(cells.max()) + 1, dtype=np.int64)
        np.maximum.at(largest, cells, areas)
        sprites = cells[areas * _SPRITE_SHARE >= largest[cells]]
        counts = np.bincount(sprites)
        return float(np.median(counts[counts > 0]))


# -- regular grids -----------------------------------------------------------------------------


def _grid_tiles(
    rgba: np.ndarray,
    pixels: np.ndarray,
    mask: np.ndarray | None,
    parts: _Parts | None,
    keyed: bool,
    lossy: bool,
    max_tiles: int,
    min_size: int,
) -> list[tuple[int, int, int, int]] | None:
    """Cells of the best regular grid (gutters or edges), cleaned up; None if there is none."""
    candidates: list[tuple[list[tuple[int, int, int, int]], bool]] = []
    if mask is not None and parts is not None and mask.any():
        grid = _gutter_grid(mask, parts, keyed, min_size)
        if grid is not None:
            candidates.append((grid, False))
    # Packed grids are looked for inside the art's bounding box: a margin is not a cell.
    x0, y0, x1, y1 = _art_bounds(mask, rgba.shape)
    inner = mask[y0:y1, x0:x1] if mask is not None else None
    if inner is None or np.count_nonzero(inner) >= _EDGE_DENSITY * inner.size:
        long = _EDGE_MIN_LONG_ALPHA if mask is not None and keyed else _EDGE_MIN_LONG
        region = np.ascontiguousarray(rgba[y0:y1, x0:x1])
        grid = _edge_grid(region, lossy, min_size, long)
        if grid is not None:
            candidates.append(([(x + x0, y + y0, w, h) for x, y, w, h in grid], True))
    best: list[tuple[int, int, int, int]] | None = None
    for cells, from_edges in candidates:
        kept, duplicates = _clean(pixels, mask, cells, max_tiles, min_size)
        if from_edges and duplicates > _MAX_DUPLICATES * (len(kept) + duplicates):
            continue  # mostly repeats: a map or a screenshot, not a tile set
        if len(kept) >= _MIN_GRID_CELLS and (best is None or len(kept) > len(best)):
            best = kept
    return best


def _art_bounds(mask: np.ndarray | None, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the art: the whole picture without a mask or without art."""
    if mask is None or not mask.any():
        return 0, 0, shape[1], shape[0]
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _gutter_grid(
    mask: np.ndarray, parts: _Parts, keyed: bool, min_size: int
) -> list[tuple[int, int, int, int]] | None:
    """A grid whose cut lines run through empty (or nearly empty) lines of the mask."""
    height, width = mask.shape
    rows, cols = mask.any(axis=1), mask.any(axis=0)
    cross_x = np.count_nonzero(mask[:, 1:] & mask[:, :-1], axis=0)
    cross_y = np.count_nonzero(mask[1:] & mask[:-1], axis=1)
    ax = _gutter_axis(cols, cross_x, height, min_size)
    ay = _gutter_axis(rows, cross_y, width, min_size)
    if ax is None and ay is None:
        return None
    if not keyed and (ax is None or ay is None or min(ax.count, ay.count) < _UNKEYED_MIN_CELLS):
        return None  # a plain colour that may be a texture's body: only clear grids count
    xs = _axis_segments(ax, width)
    ys = _axis_segments(ay, height)
    if not _single_axis_ok(ax, cols, ay, rows):
        return None
    cell_w, cell_h = float(np.median(xs.ends - xs.starts)), float(np.median(ys.ends - ys.starts))
    if max(cell_w, cell_h) > _MAX_ASPECT * min(cell_w, cell_h):
        return None  # strips, not tiles: rows of an atlas, lines of text
    if parts.per_cell(xs, ys) > _MAX_PARTS_PER_CELL:
        return None  # cells hold several sprites each: a multiple of a grid not found
    # Whole periods (the frames an artist drew sprites in) or the art's common extent in a
    # period (filled tiles with margin and spacing, or periods that do not tile the picture).
    tx = _trimmed(mask, xs, ys, axis_no=1)
    ty = _trimmed(mask, ys, xs, axis_no=0)
    filled = _fill_ratio(mask, tx, ty) >= _FILLED
    if filled or (ax is not None and not ax.exact):
        xs = tx
    if filled or (ay is not None and not ay.exact):
        ys = ty
    return _cells(xs, ys)


def _gutter_axis(
    occupied: np.ndarray, crossings: np.ndarray, span: int, min_size: int
) -> _GutterAxis | None:
    """The best periodic cut of one axis through its gutters, or None (no such cut).

    ``occupied[i]``: line i holds art; ``crossings[i]``: how many pixels of line i and line
    i + 1 are both art (a cut between them would split that many). A cut at position x lies
    between lines x - 1 and x.
    """
    size = occupied.size
    lines = np.flatnonzero(occupied)
    if lines.size == 0:
        return None
    lo, hi = int(lines[0]), int(lines[-1]) + 1
    valid = np.ones(size + 1, dtype=bool)
    valid[1:size] = crossings <= _CROSSING_SHARE * span
    clean = np.ones(size + 1, dtype=bool)
    clean[1:size] = crossings == 0
    if not clean[lo + 1 : hi].any():
        return None
    # Clearance of a cut: empty lines between it and the nearest art on either side.
    index = np.arange(size)
    last = np.maximum.accumulate(np.where(occupied, index, -(1 << 30)))
    nearest_next = np.minimum.accumulate(np.where(occupied, index, 1 << 30)[::-1])[::-1]
    cuts = np.arange(size + 1)
    before = np.concatenate([[-(1 << 30)], last])
    after = np.concatenate([nearest_next, [1 << 30]])
    clearance = np.minimum(cuts - before - 1, after - cuts).astype(np.float64)
    clearance[~valid] = -1.0
    clearance[: lo + 1] = np.inf
    clearance[hi:] = np.inf
    filled = np.concatenate([[0], np.cumsum(occupied)])
    found: list[tuple[int, int, int, bool, float, _GutterAxis]] = []
    for pitch in range(min_size, min(hi - lo, MAX_PITCH) + 1):
        padded = _pad(clearance, pitch, np.inf).reshape(-1, pitch).min(axis=0)
        ok = padded >= 0
        if not ok.any():
            continue
        exact = bool(size % pitch == 0 and ok[0])
        offset = 0 if exact else int(np.argmax(np.where(ok, padded, -1.0)))
        first = (lo - offset) // pitch
        last_k = -((offset - hi) // pitch)  # ceil((hi - offset) / pitch)
        count = last_k - first
        if count < 2:
            continue
        edges = np.clip(offset + (first + np.arange(count + 1)) * pitch, 0, size)
        inner = edges[1:-1]
        if np.count_nonzero(clean[inner]) < _CLEAN_CUTS * inner.size:
            continue  # cuts may cross a sprite's overflow now and then, not as a rule
        art = filled[edges[1:]] - filled[edges[:-1]]
        busy = int(np.count_nonzero(art))
        empty = count - busy
        if busy < 2 or empty > max(1.0, _MAX_EMPTY_SEGMENTS * busy):
            continue
        if count <= _FEW_CELLS and not _similar_extents(occupied, edges):
            continue
        if _bands_per_cell(occupied, edges) > _MAX_BANDS:
            continue  # each cell holds several separate things: a multiple of a finer grid
        bases = offset + (first + np.arange(count)) * pitch
        head = np.searchsorted(lines, edges[:-1])
        tail = np.searchsorted(lines, edges[1:]) - 1
        has = head <= tail
        starts = lines[head[has]] - bases[has]
        ends = lines[tail[has]] - bases[has]
        spread = int(np.ptp(starts) + np.ptp(ends))
        axis = _GutterAxis(pitch, offset, first, count, exact)
        found.append((busy, empty, spread, exact, float(padded[offset]), axis))
    return _best_cut(found)


def _best_cut(found: list[tuple[int, int, int, bool, float, _GutterAxis]]) -> _GutterAxis | None:
    """The most cells; then art at the same place in every period (with a wrong pitch the
    art drifts a little more in each period); among pitches about as steady, one that tiles
    the picture, then fewer empty cells, then the steadiest, then the widest gaps.

    ``found`` holds (cells with art, empty cells, spread, tiles the picture, clearance,
    axis), the spread being how much the art's first and last line move between periods.
    """
    if not found:
        return None
    most = max(f[0] for f in found)
    found = [f for f in found if f[0] == most]
    steadiest = min(found, key=lambda f: f[2])
    # Art that sits exactly still (solid tiles) pins the pitch; sprites that vary from frame
    # to frame leave a little slack for the pitch that tiles the picture.
    slack = max(1.0, _DRIFT * steadiest[5].pitch) if steadiest[2] else 0.0
    near = [f for f in found if f[2] <= steadiest[2] + slack]
    return max(near, key=lambda f: (f[3], -f[1], -f[2], f[4]))[5]


def _similar_extents(occupied: np.ndarray, edges: np.ndarray) -> bool:
    """A few cells only count as a grid if their art is about as wide: frames, not parts of
    one picture."""
    extents = []
    for a, b in itertools.pairwise(edges):
        lines = np.flatnonzero(occupied[a:b])
        if lines.size:
            extents.append(int(lines[-1] - lines[0] + 1))
    return min(extents) >= _SIMILAR_EXTENT * max(extents)


def _bands_per_cell(occupied: np.ndarray, edges: np.ndarray) -> float:
    """Median number of separate runs of art lines inside the cells."""
    starts = occupied & ~np.concatenate([[False], occupied[:-1]])
    runs = np.concatenate([[0], np.cumsum(starts)])
    counts = []
    for a, b in itertools.pairwise(edges):
        n = int(runs[b] - runs[a]) + int(a > 0 and occupied[a] and occupied[a - 1])
        if n:
            counts.append(n)
    return float(np.median(counts)) if counts else 0.0


def _pad(values: np.ndarray, multiple: int, fill: float) -> np.ndarray:
    extra = -values.size % multiple
    return np.concatenate([values, np.full(extra, fill)]) if extra else values


def _axis_segments(axis: _GutterAxis | None, size: int) -> _Segments:
    """The axis's natural cells; an axis without a cut is one cell over the whole side."""
    if axis is None:
        return _Segments(np.array([0]), np.array([size]), np.array([0]))
    return axis.natural(size)


def _single_axis_ok(
    ax: _GutterAxis | None, cols: np.ndarray, ay: _GutterAxis | None, rows: np.ndarray
) -> bool:
    """A one-cell axis (a strip of frames) must be short next to the other axis's pitch:
    rows of sprites without columns are shelves of an atlas, not a grid."""
    if ax is None and ay is not None:
        return _extent(cols) <= _SINGLE_AXIS_RATIO * ay.pitch
    if ay is None and ax is not None:
        return _extent(rows) <= _SINGLE_AXIS_RATIO * ax.pitch
    return True


def _extent(occupied: np.ndarray) -> int:
    """Lines from the first to the last one holding art."""
    lines = np.flatnonzero(occupied)
    return int(lines[-1] - lines[0] + 1) if lines.size else 0


def _trimmed(mask: np.ndarray, own: _Segments, other: _Segments, axis_no: int) -> _Segments:
    """The axis's cells cut down to the extent of the art in every period (same offset and
    size for all cells)."""
    if axis_no == 0:
        mask = mask.T
    # art[j, i]: line i (along this axis) holds art inside cell j of the other axis
    art = np.logical_or.reduceat(mask, other.starts, axis=0)[: other.starts.size]
    t0, t1 = None, None
    for start, end, base in zip(own.starts, own.ends, own.bases, strict=True):
        lines = np.flatnonzero(art[:, start:end].any(axis=0))
        if lines.size:
            first, last = int(lines[0]) + start - base, int(lines[-1]) + start - base
            t0 = first if t0 is None else min(t0, first)
            t1 = last + 1 if t1 is None else max(t1, last + 1)
    if t0 is None or t1 is None:
        return own
    size = mask.shape[1]
    return _Segments(np.clip(own.bases + t0, 0, size), np.clip(own.bases + t1, 0, size), own.bases)


def _fill_ratio(mask: np.ndarray, xs: _Segments, ys: _Segments) -> float:
    """Median share of art pixels in the grid's non-empty cells (1.0: solid tiles)."""
    art = _block_sums(_block_sums(mask, ys, axis=0), xs, axis=1)
    area = (ys.ends - ys.starts)[:, None] * (xs.ends - xs.starts)[None, :]
    busy = (art > 0) & (area > 0)
    return float(np.median(art[busy] / area[busy])) if busy.any() else 0.0


def _block_sums(values: np.ndarray, segments: _Segments, axis: int) -> np.ndarray:
    """Sums of ``values`` over each segment ``[start, end)`` along ``axis``."""
    pad = [(0, 0)] * values.ndim
    pad[axis] = (0, 1)
    padded = np.pad(values, pad)  # an index equal to the side is valid for reduceat
    bounds = np.stack([segments.starts, segments.ends], axis=1).ravel()
    sums = np.add.reduceat(padded, bounds, axis=axis, dtype=np.int64)
    taken = np.take(sums, np.arange(0, bounds.size, 2), axis=axis)
    empty = segments.ends <= segments.starts
    if empty.any():  # reduceat gives the first element for an empty range
        index = [slice(None)] * values.ndim
        index[axis] = empty
        taken[tuple(index)] = 0
    return taken


def _cells(xs: _Segments, ys: _Segments) -> list[tuple[int, int, int, int]]:
    """Row-major (x, y, w, h) cells of a grid."""
    return [
        (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
        for y0, y1 in zip(ys.starts, ys.ends, strict=True)
        for x0, x1 in zip(xs.starts, xs.ends, strict=True)
        if x1 > x0 and y1 > y0
    ]


def _edge_grid(
    rgba: np.ndarray, lossy: bool, min_size: int, long: int
) -> list[tuple[int, int, int, int]] | None:
    """A packed grid (no gutters) found from colour discontinuities along its cut lines."""
    height, width = rgba.shape[:2]
    px = _edge_pitch(_discontinuity(rgba, axis=1), width, lossy, min_size)
    py = _edge_pitch(_discontinuity(rgba, axis=0), height, lossy, min_size)
    if px is None and py is None:
        return None
    if px is None:  # a column of tiles: the other side must hold a single cell
        assert py is not None
        if width >= 2 * py:
            return None
        px = width
    if py is None:
        if height >= 2 * px:
            return None
        py = height
    if max(width // px, height // py) < long:
        return None  # four cells or fewer: a single tile's own pattern as likely as a set
    if not _diverse_cells(rgba, px, py):
        return None  # a texture with a regular pattern (bricks, slabs), not a tile set
    xs = np.arange(0, width - px + 1, px)
    ys = np.arange(0, height - py + 1, py)
    return _cells(_Segments(xs, xs + px, xs), _Segments(ys, ys + py, ys))


def _diverse_cells(rgba: np.ndarray, px: int, py: int) -> bool:
    """Tiles of a set differ in colour; the cells of a patterned texture all look alike."""
    rows, cols = rgba.shape[0] // py, rgba.shape[1] // px
    cells = rgba[: rows * py, : cols * px].reshape(rows, py, cols, px, 4).astype(np.float32)
    means = cells.mean(axis=(1, 3))  # (rows, cols, 4)
    within = float(cells.std(axis=(1, 3)).mean())
    between = float(means.reshape(-1, 4).std(axis=0).mean())
    return between >= _EDGE_DIVERSITY * max(within, 1e-6)


def _discontinuity(rgba: np.ndarray, axis: int) -> np.ndarray:
    """Mean colour jump (alpha-premultiplied RGBA) between consecutive lines along ``axis``:
    entry i is between line i and line i + 1."""
    height, width = rgba.shape[:2]
    size = width if axis == 1 else height
    total = np.zeros(max(size - 1, 0), dtype=np.float64)
    step = max(1, (8 << 20) // max(1, 16 * (width if axis == 0 else height)))
    span = height if axis == 1 else width
    for start in range(0, span, step):
        block = rgba[start : start + step] if axis == 1 else rgba[:, start : start + step]
        values = block.astype(np.int32)
        values[..., :3] = values[..., :3] * values[..., 3:] // 255
        jumps = np.abs(np.diff(values, axis=axis)).sum(axis=2)
        total += jumps.sum(axis=0 if axis == 1 else 1)
    return total / max(span, 1)


def _edge_pitch(profile: np.ndarray, size: int, lossy: bool, min_size: int) -> int | None:
    """The cell size whose cut lines stand out in the discontinuity profile, or None.

    A cut's strength is the largest jump within one line of it (tiles often have a one-pixel
    outline, so the jump is on either side of the cut). A size is evidence of a grid when
    its cuts are, on average, ``_EDGE_RATIO`` times the mean strength of the other lines and
    most cuts are individually strong: one loud seam does not make a grid. Multiples of the
    cell size score as well as the cell size itself, so the smallest size that scores close
    to the best and divides it wins.
    """
    if profile.size < 3:
        return None
    strength = profile.copy()
    np.maximum(strength[1:], profile[:-1], out=strength[1:])
    np.maximum(strength[:-1], profile[1:], out=strength[:-1])
    sizes = {s for s in _EDGE_SIZES if s >= min_size}
    longest = min(size // _EDGE_MIN_CELLS, MAX_PITCH)
    sizes |= {d for d in range(min_size, longest + 1) if size % d == 0}
    threshold = _EDGE_RATIO_LOSSY if lossy else _EDGE_RATIO
    scores: dict[int, float] = {}
    for pitch in sorted(sizes):
        if lossy and pitch < 32:
            continue  # JPEG's own 8x8 and 16x16 blocks
        cuts = np.arange(pitch, size, pitch) - 1  # profile index of the cut at x = k * pitch
        if cuts.size < _EDGE_MIN_CELLS - 1:
            continue
        near = np.zeros(profile.size, dtype=bool)
        for shift in (-2, -1, 0, 1, 2):
            near[np.clip(cuts + shift, 0, profile.size - 1)] = True
        if near.all():
            continue
        base = max(float(strength[~near].mean()), 1e-6)
        ratio = float(strength[cuts].mean()) / base
        strong = np.count_nonzero(strength[cuts] > _EDGE_STRONG * base) / cuts.size
        if ratio >= threshold and strong >= _EDGE_CONSISTENT:
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


# -- irregular atlases -------------------------------------------------------------------------


def _atlas_tiles(
    pixels: np.ndarray, parts: _Parts, max_tiles: int, min_size: int
) -> list[tuple[int, int, int, int]] | None:
    """Sprites of an atlas without a grid: connected components of the mask, merged."""
    mask = parts.mask
    boxes = parts.boxes
    if boxes is None or len(boxes) < 2:
        return None
    boxes = _merge_nested(_merge_fragments(boxes, min_size))
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    areas = widths * heights
    huge = areas > _HUGE_SHARE * mask.size
    if huge.any():
        inside = sum(int(np.count_nonzero(mask[y0:y1, x0:x1])) for x0, y0, x1, y1 in boxes[huge])
        if inside >= _DOMINANT_SHARE * np.count_nonzero(mask):
            return None  # most of the art is one picture (or sprites too packed to separate)
    keep = ~huge & (widths >= min_size) & (heights >= min_size)
    boxes, areas = boxes[keep], areas[keep]
    if len(boxes) < _MIN_SPRITES or areas.max() >= _DOMINANT_SHARE * areas.sum():
        return None  # one figure and some bits around it: an illustration
    if np.median(areas) < (_SPRITE_SIDE * min_size) ** 2:
        return None  # specks: stars, letters, a texture's details
    if areas.sum() < _ATLAS_COVER * mask.size:
        return None  # a few things on a wide empty canvas: a scene, not an atlas
    boxes = _merge_nested(_split_joined(boxes, mask, min_size))
    order = np.lexsort((boxes[:, 0], boxes[:, 1]))
    cells = [(int(x0), int(y0), int(x1 - x0), int(y1 - y0)) for x0, y0, x1, y1 in boxes[order]]
    kept, _ = _clean(pixels, mask, cells, max_tiles, min_size)
    return kept if len(kept) >= 2 else None


def _merge_fragments(boxes: np.ndarray, min_size: int) -> np.ndarray:
    """Attach components smaller than a tile to the nearest tile-sized one within a few
    pixels (a sprite's detached pixels); drop the others."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    big = (w >= min_size) | (h >= min_size)
    main = boxes[big].copy()
    if main.size == 0:
        return main
    for frag in boxes[~big]:
        dx = np.maximum(0, np.maximum(main[:, 0] - frag[2], frag[0] - main[:, 2]))
        dy = np.maximum(0, np.maximum(main[:, 1] - frag[3], frag[1] - main[:, 3]))
        gap = np.maximum(dx, dy)
        nearest = int(gap.argmin())
        if gap[nearest] <= _FRAGMENT_GAP:
            main[nearest, :2] = np.minimum(main[nearest, :2], frag[:2])
            main[nearest, 2:] = np.maximum(main[nearest, 2:], frag[2:])
    return main


def _split_joined(boxes: np.ndarray, mask: np.ndarray, min_size: int) -> np.ndarray:
    """Split boxes much wider (taller) than the typical sprite at a thin neck: packed sprites
    that touch (by a shadow or an edge) are one component but two tiles."""
    typical_w = float(np.median(boxes[:, 2] - boxes[:, 0]))
    typical_h = float(np.median(boxes[:, 3] - boxes[:, 1]))
    todo = [tuple(int(v) for v in box) for box in boxes]
    done: list[tuple[int, int, int, int]] = []
    while todo:
        box = todo.pop()
        parts = _split_once(box, mask, typical_w, typical_h, min_size)
        if parts is None:
            done.append(box)
        else:
            todo.extend(parts)
    return np.array(done, dtype=np.int64)


def _split_once(
    box: tuple[int, int, int, int],
    mask: np.ndarray,
    typical_w: float,
    typical_h: float,
    min_size: int,
) -> list[tuple[int, int, int, int]] | None:
    """Two tight boxes split at the thinnest line of ``box`` along its long side, or None."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    region = mask[y0:y1, x0:x1]
    for axis, length, typical, across in ((1, w, typical_w, h), (0, h, typical_h, w)):
        if length < _JOINED * typical or length < 2 * min_size:
            continue
        profile = region.sum(axis=0 if axis == 1 else 1)
        lo = max(min_size, int(length * _NECK_SPAN))
        hi = min(length - min_size, int(length * (1 - _NECK_SPAN)))
        if hi <= lo:
            continue
        cut = lo + int(np.argmin(profile[lo:hi]))
        if profile[cut] > _NECK * across:
            continue
        if axis == 1:
            halves = [(x0, y0, x0 + cut, y1), (x0 + cut, y0, x1, y1)]
        else:
            halves = [(x0, y0, x1, y0 + cut), (x0, y0 + cut, x1, y1)]
        tight = [_tight(half, mask) for half in halves]
        if all(t is not None for t in tight):
            return [t for t in tight if t is not None]
    return None


def _tight(box: tuple[int, int, int, int], mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``box`` shrunk to the art inside it; None if empty."""
    x0, y0, x1, y1 = box
    region = mask[y0:y1, x0:x1]
    cols, rows = np.flatnonzero(region.any(axis=0)), np.flatnonzero(region.any(axis=1))
    if cols.size == 0:
        return None
    return (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)


def _merge_nested(boxes: np.ndarray) -> np.ndarray:
    """Merge every box whose centre lies inside a larger box into that box, until none does
    (parts of one sprite: a ring and its gem). Touching sprites' boxes only graze."""
    while True:
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        boxes = boxes[order].copy()
        cx = (boxes[:, 0] + boxes[:, 2]) / 2
        cy = (boxes[:, 1] + boxes[:, 3]) / 2
        alive = np.ones(len(boxes), dtype=bool)
        merged = False
        for i in range(len(boxes)):
            if not alive[i]:
                continue
            x0, y0, x1, y1 = boxes[i]
            inside = alive & (cx > x0) & (cx < x1) & (cy > y0) & (cy < y1)
            inside[: i + 1] = False
            if inside.any():
                group = boxes[inside]
                boxes[i, :2] = np.minimum(boxes[i, :2], group[:, :2].min(axis=0))
                boxes[i, 2:] = np.maximum(boxes[i, 2:], group[:, 2:].max(axis=0))
                alive &= ~inside
                merged = True
        boxes = boxes[alive]
        if not merged:
            return boxes


# -- clean-up ----------------------------------------------------------------------------------


def _clean(
    pixels: np.ndarray,
    mask: np.ndarray | None,
    cells: Iterable[tuple[int, int, int, int]],
    max_tiles: int,
    min_size: int,
) -> tuple[list[tuple[int, int, int, int]], int]:
    """Drop small, empty, flat and repeated cells; return the kept cells and the repeats."""
    kept: list[tuple[int, int, int, int]] = []
    seen: set[bytes] = set()
    duplicates = 0
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
            duplicates += 1
            continue
        seen.add(key)
        kept.append((x, y, w, h))
        if len(kept) >= max_tiles:
            break
    return kept, duplicates


def describe_grid(boxes: Sequence[TileBox]) -> str:
    """A short human summary of a cut, for logs and measurements: ``"132 tiles, 32x32 x120"``."""
    if not boxes:
        return "not a sheet"
    sizes: dict[tuple[int, int], int] = {}
    for box in boxes:
        sizes[(box.w, box.h)] = sizes.get((box.w, box.h), 0) + 1
    common = sorted(sizes.items(), key=lambda item: -item[1])[:3]
    parts = ", ".join(f"{w}x{h} x{n}" for (w, h), n in common)
    return f"{len(boxes)} tiles ({parts})"


__all__ = ["MAX_TILES", "MIN_TILE", "TileBox", "describe_grid", "find_tiles"]
