"""Grids with gutters: cut lines that run through empty lines of the foreground mask.

Per axis, every pitch from the smallest tile up is tried with the offset whose cuts keep
farthest from the art; a cut is valid when it crosses no art (a few crossings are allowed for
a quarter of the cuts: a sword swinging out of its frame). Margins and spacing of any width
come out of the same search. Among valid cuts the choice goes to, in order:

1. the most cells holding art (a pitch twice too big has half as many);
2. the steadiest: with the right pitch the art sits at the same place in every period, with
   a pitch one pixel off it drifts; solid tiles pin the pitch exactly, varying sprites leave
   a little slack;
3. among those about as steady, cells that tile the picture exactly (the frames the artist
   drew), then fewer empty cells, then the widest gaps.

A grid must hold art in at least half of its cells: figures scattered over a scene leave
empty lines too, but between mostly empty cells.

Cells are then either whole periods (sprites padded inside their frames keep the frame) or
the art's common extent in each period (solid tiles with margin and spacing, or periods that
do not tile the picture).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ogasearch.tiles.layout import Cell, Segments, cells
from ogasearch.tiles.pixels import Parts

MAX_PITCH = 1024  # largest grid cell considered, in art pixels

_CROSSING_SHARE = 0.005  # a cut may cross the art of this share of the lines ...
_CLEAN_CUTS = 0.75  # ... but this share of the cuts must cross nothing
_MAX_EMPTY_SEGMENTS = 0.5  # empty rows/columns of cells allowed, as a share of busy ones
_FEW_CELLS = 3  # an axis with this few cells needs cells of similar art extent ...
_SIMILAR_EXTENT = 0.3  # ... the smallest at least this share of the largest (a last row of
# gems under flags is a third as tall; a picture's parts at empty lines differ more)
_MAX_BANDS = 2  # median separate runs of art per cell along an axis, at most
_DRIFT = 0.1  # pitches whose art moves this share of a period more still compete
_UNKEYED_MIN_CELLS = 8  # cells a grid on a non-key background colour needs, 2+ per axis
_SINGLE_AXIS_RATIO = 3.2  # a one-cell axis is at most this many times the other pitch (tiles
# of 1:3 with their gutter)
_MAX_ASPECT = 4  # cells are at most this many times longer than wide
_MAX_SPRITES_PER_CELL = 1  # median sprites per cell, at most
_MIN_OCCUPANCY = 0.5  # share of the grid's cells (rows x columns) that must hold art
_FILLED = 0.9  # cells whose art fills this share of their common extent: solid tiles


@dataclass(frozen=True, slots=True)
class GutterAxis:
    """A periodic cut of one axis: cells ``[offset + k * pitch, ... + pitch)``."""

    pitch: int
    offset: int
    first: int  # k of the first cell (may start before 0 when offset > 0)
    count: int  # number of cells covering the art
    exact: bool  # offset 0 and the side a multiple of the pitch: the cells tile the picture

    def natural(self, size: int) -> Segments:
        bases = self.offset + (self.first + np.arange(self.count)) * self.pitch
        starts, ends = np.clip(bases, 0, size), np.clip(bases + self.pitch, 0, size)
        keep = ends > starts
        return Segments(starts[keep], ends[keep], bases[keep])


@dataclass(frozen=True, slots=True)
class _Candidate:
    busy: int  # cells holding art
    empty: int  # cells without art between the first and the last busy one
    spread: int  # how far the art's first and last line move between periods
    exact: bool
    clearance: float  # empty lines between the closest cut and the art
    axis: GutterAxis


def gutter_grid(mask: np.ndarray, parts: Parts, keyed: bool, min_size: int) -> list[Cell] | None:
    """The cells of a grid whose cut lines run through the mask's empty lines, or None."""
    height, width = mask.shape
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    ax = gutter_axis(cols, np.count_nonzero(mask[:, 1:] & mask[:, :-1], axis=0), height, min_size)
    ay = gutter_axis(rows, np.count_nonzero(mask[1:] & mask[:-1], axis=1), width, min_size)
    if ax is None and ay is None:
        return None
    if not keyed and (ax is None or ay is None or ax.count * ay.count < _UNKEYED_MIN_CELLS):
        return None  # a plain colour that may be a texture's body: only clear grids count
    if not _single_axis_ok(ax, cols, ay, rows):
        return None
    xs = ax.natural(width) if ax is not None else Segments.whole(width)
    ys = ay.natural(height) if ay is not None else Segments.whole(height)
    cell_w, cell_h = float(np.median(xs.ends - xs.starts)), float(np.median(ys.ends - ys.starts))
    if max(cell_w, cell_h) > _MAX_ASPECT * min(cell_w, cell_h):
        return None  # strips, not tiles: rows of an atlas, lines of text
    if _occupancy(mask, xs, ys) < _MIN_OCCUPANCY:
        return None  # figures scattered over empty cells: a scene, not a sheet
    if parts.per_cell(xs, ys) > _MAX_SPRITES_PER_CELL:
        return None  # cells hold several sprites each: a multiple of a grid not found
    tx, ty = _trimmed(mask, xs, ys, axis=1), _trimmed(mask, ys, xs, axis=0)
    filled = _fill_ratio(mask, tx, ty) >= _FILLED
    if filled or (ax is not None and not ax.exact):
        xs = tx
    if filled or (ay is not None and not ay.exact):
        ys = ty
    return cells(xs, ys)


def gutter_axis(
    occupied: np.ndarray, crossings: np.ndarray, span: int, min_size: int
) -> GutterAxis | None:
    """The best periodic cut of one axis through its gutters, or None (no such cut).

    ``occupied[i]``: line i holds art; ``crossings[i]``: how many pixels of line i and line
    i + 1 are both art (a cut between them would split that many); ``span``: the length of a
    line. A cut at position x lies between lines x - 1 and x.
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
    clearance = _clearance(occupied)
    clearance[~valid] = -1.0
    clearance[: lo + 1] = np.inf  # cuts outside the art constrain nothing
    clearance[hi:] = np.inf
    filled = np.concatenate([[0], np.cumsum(occupied)])
    found: list[_Candidate] = []
    for pitch in range(min_size, min(hi - lo, MAX_PITCH) + 1):
        per_offset = _pad(clearance, pitch).reshape(-1, pitch).min(axis=0)
        ok = per_offset >= 0
        if not ok.any():
            continue
        exact = bool(size % pitch == 0 and ok[0])
        offset = 0 if exact else int(np.argmax(np.where(ok, per_offset, -1.0)))
        first = (lo - offset) // pitch
        count = -((offset - hi) // pitch) - first  # up to ceil((hi - offset) / pitch)
        if count < 2:
            continue
        edges = np.clip(offset + (first + np.arange(count + 1)) * pitch, 0, size)
        if np.count_nonzero(clean[edges[1:-1]]) < _CLEAN_CUTS * (count - 1):
            continue  # cuts may cross a sprite's overflow now and then, not as a rule
        busy = int(np.count_nonzero(filled[edges[1:]] - filled[edges[:-1]]))
        empty = count - busy
        if busy < 2 or empty > max(1.0, _MAX_EMPTY_SEGMENTS * busy):
            continue
        if count <= _FEW_CELLS and not _similar_extents(occupied, edges):
            continue
        if _bands_per_cell(occupied, edges) > _MAX_BANDS:
            continue  # each cell holds several separate things: a multiple of a finer grid
        axis = GutterAxis(pitch, offset, first, count, exact)
        spread = _spread(lines, edges, offset + (first + np.arange(count)) * pitch)
        found.append(_Candidate(busy, empty, spread, exact, float(per_offset[offset]), axis))
    return _best(found)


def _best(found: list[_Candidate]) -> GutterAxis | None:
    """The most busy cells; then the steadiest; among those about as steady, one that tiles
    the picture, then fewer empty cells, then the steadiest, then the widest gaps."""
    if not found:
        return None
    most = max(f.busy for f in found)
    found = [f for f in found if f.busy == most]
    steadiest = min(found, key=lambda f: f.spread)
    # Art that sits exactly still (solid tiles) pins the pitch; sprites that vary from frame
    # to frame leave a little slack for the pitch that tiles the picture.
    slack = max(1.0, _DRIFT * steadiest.axis.pitch) if steadiest.spread else 0.0
    near = [f for f in found if f.spread <= steadiest.spread + slack]
    return max(near, key=lambda f: (f.exact, -f.empty, -f.spread, f.clearance)).axis


def _clearance(occupied: np.ndarray) -> np.ndarray:
    """For every cut position 0..n: empty lines between it and the nearest art on either
    side (0 when art touches it)."""
    size = occupied.size
    index = np.arange(size)
    far = 1 << 30
    last = np.maximum.accumulate(np.where(occupied, index, -far))  # last art line <= i
    following = np.minimum.accumulate(np.where(occupied, index, far)[::-1])[::-1]  # >= i
    cuts = np.arange(size + 1)
    before = np.concatenate([[-far], last])
    after = np.concatenate([following, [far]])
    return np.minimum(cuts - before - 1, after - cuts).astype(np.float64)


def _spread(lines: np.ndarray, edges: np.ndarray, bases: np.ndarray) -> int:
    """How much the first and the last art line of each cell move, relative to its period."""
    head = np.searchsorted(lines, edges[:-1])
    tail = np.searchsorted(lines, edges[1:]) - 1
    has = head <= tail
    starts = lines[head[has]] - bases[has]
    ends = lines[tail[has]] - bases[has]
    return int(np.ptp(starts) + np.ptp(ends))


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


def _pad(values: np.ndarray, multiple: int) -> np.ndarray:
    extra = -values.size % multiple
    return np.concatenate([values, np.full(extra, np.inf)]) if extra else values


def _single_axis_ok(
    ax: GutterAxis | None, cols: np.ndarray, ay: GutterAxis | None, rows: np.ndarray
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


def _trimmed(mask: np.ndarray, own: Segments, other: Segments, axis: int) -> Segments:
    """The axis's cells cut down to the extent of the art in every period (the same offset
    and size for all cells). ``axis`` 1: ``own`` are columns, 0: rows."""
    if axis == 0:
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
    return Segments(np.clip(own.bases + t0, 0, size), np.clip(own.bases + t1, 0, size), own.bases)


def _occupancy(mask: np.ndarray, xs: Segments, ys: Segments) -> float:
    """Share of the grid's cells that hold any art: a sheet fills its grid (but for a last
    row), a scene's empty lines between scattered figures make a grid of mostly empty cells."""
    art = _block_sums(_block_sums(mask, ys, axis=0), xs, axis=1)
    return float(np.count_nonzero(art)) / max(art.size, 1)


def _fill_ratio(mask: np.ndarray, xs: Segments, ys: Segments) -> float:
    """Median share of art pixels in the grid's non-empty cells (1.0: solid tiles)."""
    art = _block_sums(_block_sums(mask, ys, axis=0), xs, axis=1)
    area = (ys.ends - ys.starts)[:, None] * (xs.ends - xs.starts)[None, :]
    busy = (art > 0) & (area > 0)
    return float(np.median(art[busy] / area[busy])) if busy.any() else 0.0


def _block_sums(values: np.ndarray, segments: Segments, axis: int) -> np.ndarray:
    """Sums of ``values`` over each segment ``[start, end)`` along ``axis``."""
    pad = [(0, 0)] * values.ndim
    pad[axis] = (0, 1)
    padded = np.pad(values, pad)  # an index equal to the side is valid for reduceat
    bounds = np.stack([segments.starts, segments.ends], axis=1).ravel()
    sums = np.add.reduceat(padded, bounds, axis=axis, dtype=np.int64)
    taken = np.take(sums, np.arange(0, bounds.size, 2), axis=axis)
    empty = segments.ends <= segments.starts
    if empty.any():  # reduceat gives the first element for an empty range
        index: list[slice | np.ndarray] = [slice(None)] * values.ndim
        index[axis] = empty
        taken[tuple(index)] = 0
    return taken
