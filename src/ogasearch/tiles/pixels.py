"""A sheet's pixels as the tile finders see them: RGBA, upscale undone, where the art is.

* Transparent pixels count as one colour whatever RGB they hide.
* An integer nearest-neighbour upscale (common on OGA: 16x16 art posted at 4x) is undone, so
  sizes and limits are in art pixels.
* The foreground mask is what is not "nothing": alpha when the picture has any transparency,
  otherwise the pixels that differ from a background colour (the border's colour, or the
  colour of the one-colour lines between the tiles of a sheet without margin).
* ``Parts`` holds the mask's connected components, used to check grids and to find sprites.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from ogasearch.extract.images import to_rgba
from ogasearch.tiles.layout import Segments

MAX_UPSCALE = 32  # largest integer upscale factor undone
MAX_COMPONENTS = 100_000  # more connected components than this: noise, not sprites

_STRIP = 64  # lines read at a time when looking for an upscale
_BORDER_SHARE = 0.9  # share of the border a background colour must cover
_BACKGROUND_SHARE = 0.3  # ... and of the whole picture, unless it is a key colour
_GUTTER_LINES = 2  # one-colour inner lines that make a margin-less sheet's background
_KEY_MARGIN = 16  # key colours: every channel this close to 0 or 255 ...
_KEY_SATURATION = 200  # ... or this far between the largest and smallest channel
_LOSSY_TOLERANCE = 32  # per-channel distance still counted as background in JPEG images
_SPRITE_SHARE = 4  # a component is a sprite of its cell if at least 1/4 of the largest


def sheet_pixels(img: Image.Image) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``(rgba, pixels, fy, fx)``: the first frame as an (h, w, 4) array with transparent
    pixels zeroed, a (h, w) uint32 view of it (one value per pixel), and the vertical and
    horizontal upscale factors already undone (1: none)."""
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    rgba = np.array(to_rgba(img), dtype=np.uint8)
    pixels = rgba.view(np.uint32)[..., 0]
    pixels[rgba[..., 3] == 0] = 0  # transparent is transparent, whatever RGB it hides
    fy, fx = upscale_factor(pixels, 0), upscale_factor(pixels, 1)
    if fy > 1 or fx > 1:
        rgba = np.ascontiguousarray(rgba[::fy, ::fx])
        pixels = rgba.view(np.uint32)[..., 0]
    return rgba, pixels, fy, fx


def upscale_factor(pixels: np.ndarray, axis: int) -> int:
    """The integer factor f such that every run of equal lines along ``axis`` is f long.

    An image upscaled by nearest neighbour only changes between lines at multiples of f.
    Read in strips, stopping as soon as the factor is 1 (most pictures, early).
    """
    factor = pixels.shape[axis]
    lines = pixels if axis == 1 else pixels.T
    for top in range(0, lines.shape[0], _STRIP):
        strip = lines[top : top + _STRIP]
        positions = np.flatnonzero((strip[:, 1:] != strip[:, :-1]).any(axis=0)) + 1
        if positions.size:
            factor = int(np.gcd.reduce(np.append(positions, factor)))
        if factor == 1:
            return 1
    return factor if 2 <= factor <= MAX_UPSCALE else 1


def foreground(rgba: np.ndarray, pixels: np.ndarray, lossy: bool) -> tuple[np.ndarray | None, bool]:
    """``(mask, keyed)``: where the art is, and whether that is certain.

    Certain (``keyed``) for transparency and for a key-colour background (pure black, white
    or a saturated colour such as magenta: colours an artist picks to mean "nothing").
    Another dominant border colour may just as well be the body of a single texture tile
    whose details would pass for sprites, so such a mask is only trusted for clear grids.
    The mask is None when the picture is opaque without a background colour.
    """
    alpha = rgba[..., 3]
    if not alpha.all():
        return alpha > 0, True  # any transparency: the artist used alpha as "nothing"
    colour = _lossy_background(rgba) if lossy else _background(pixels)
    if colour is None:
        return None, False
    if lossy:
        distance = np.zeros(pixels.shape, dtype=np.int16)
        for channel in range(3):
            jump = np.abs(rgba[..., channel].astype(np.int16) - int(colour[channel]))
            np.maximum(distance, jump, out=distance)
        mask = distance > _LOSSY_TOLERANCE
    else:
        mask = pixels != colour.view(np.uint32)[0]
    if is_key_colour(colour[:3]):
        return mask, True
    if np.count_nonzero(~mask) < _BACKGROUND_SHARE * mask.size:
        return None, False
    return mask, False


def _background(pixels: np.ndarray) -> np.ndarray | None:
    """The background colour (4 bytes, RGBA) of a lossless opaque picture, or None."""
    gutter = _gutter_colour(pixels)
    if gutter is not None:
        return np.array([gutter], dtype=np.uint32).view(np.uint8)
    border = np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])
    values, counts = np.unique(border, return_counts=True)
    best = int(counts.argmax())
    if counts[best] < _BORDER_SHARE * border.size:
        return None
    return values[best : best + 1].view(np.uint8)


def _lossy_background(rgba: np.ndarray) -> np.ndarray | None:
    """The background colour of a JPEG: the border's median, if nearly all the border is
    within the compression noise of it."""
    border = np.concatenate([rgba[0], rgba[-1], rgba[1:-1, 0], rgba[1:-1, -1]]).astype(np.int16)
    median = np.median(border, axis=0).astype(np.int16)
    close = (np.abs(border[:, :3] - median[:3]) <= _LOSSY_TOLERANCE).all(axis=1)
    if np.count_nonzero(close) < _BORDER_SHARE * close.size:
        return None
    return median.astype(np.uint8)


def _gutter_colour(pixels: np.ndarray) -> np.uint32 | None:
    """The colour of the one-colour rows and columns between the tiles of an opaque sheet
    whose tiles touch its border (no margin), or None.

    Only lines inside the picture count (not the runs along its edges, such as a tile's
    own sky or snow), and at least two of them must share the colour. A key colour is taken
    first; any other colour will do, but leaves the mask uncertain, so only a clear grid is
    cut.
    """
    lines: list[np.uint32] = []
    for grid in (pixels, pixels.T):
        uniform = (grid == grid[:, :1]).all(axis=1)
        edge_runs: set[int] = set()
        for run in (range(grid.shape[0]), range(grid.shape[0] - 1, -1, -1)):
            for index in run:
                if not uniform[index]:
                    break
                edge_runs.add(index)
        lines += [grid[r, 0] for r in np.flatnonzero(uniform) if int(r) not in edge_runs]
    if len(lines) < _GUTTER_LINES:
        return None
    values, counts = np.unique(np.array(lines, dtype=np.uint32), return_counts=True)
    shared = [k for k in np.argsort(-counts, kind="stable") if counts[k] >= _GUTTER_LINES]
    # A key colour first (the columns of a solid tile are one-colour lines too, and may be
    # more), then the most common colour.
    for k in shared:
        if is_key_colour(values[k : k + 1].view(np.uint8)[:3]):
            return values[k]
    return values[shared[0]] if shared else None


def is_key_colour(rgb: np.ndarray) -> bool:
    """Black, white, magenta, cyan, pure green...: every channel near 0 or 255, or strongly
    saturated."""
    values = rgb.astype(np.int16)
    extreme = bool(((values <= _KEY_MARGIN) | (values >= 255 - _KEY_MARGIN)).all())
    return extreme or int(values.max() - values.min()) >= _KEY_SATURATION


def art_bounds(mask: np.ndarray | None, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the art: the whole picture without a mask or without art."""
    if mask is None or not mask.any():
        return 0, 0, shape[1], shape[0]
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


class Parts:
    """Connected components of the mask (8-connected), as boxes ``(x0, y0, x1, y1)``;
    computed once, on first use, by the grid check and the atlas finder."""

    def __init__(self, mask: np.ndarray, min_size: int) -> None:
        self.mask = mask
        self.min_size = min_size
        self._boxes: np.ndarray | None = None
        self._done = False

    @property
    def boxes(self) -> np.ndarray | None:
        """Component boxes, or None when there are none or too many to be sprites (noise)."""
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

    def per_cell(self, xs: Segments, ys: Segments) -> float:
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
        cell = row[inside] * xs.starts.size + col[inside]
        areas = areas[inside]
        if cell.size == 0:
            return 0.0
        largest = np.zeros(int(cell.max()) + 1, dtype=np.int64)
        np.maximum.at(largest, cell, areas)
        counts = np.bincount(cell[areas * _SPRITE_SHARE >= largest[cell]])
        return float(np.median(counts[counts > 0]))
