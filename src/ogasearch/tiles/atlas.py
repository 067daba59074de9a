"""Atlases without a grid: sprites packed or scattered on transparency or a key colour.

Sprites are the connected components of the foreground mask, after three repairs:

* components smaller than a tile within a few pixels of a sprite belong to it (sparkles, a
  sword's detached tip); farther ones are dropped;
* a box whose centre lies inside a larger box belongs to it (a ring and its gem);
* a box much wider or taller than the typical sprite is split at a thin neck: packers such as
  Dungeon Crawl's put sprites edge to edge, so touching sprites form one component.

A picture with one dominant figure, specks only, or a few things on a wide empty canvas is
an illustration, a starfield or a scene, not an atlas. An atlas without a grid is the work
of a packer, and packers leave two marks that scenes, logos and lines of text lack: the
sprites fill most of the art's bounding box, and they sit on shelves (most sprites share
their top, bottom or left edge with another sprite), where a scene scatters its figures.
Text has shelves too, but few of them (its lines), each of glyphs of about one height.
"""

from __future__ import annotations

import numpy as np

from ogasearch.tiles.layout import Cell
from ogasearch.tiles.pixels import Parts

_FRAGMENT_GAP = 3  # detached bits this close (art pixels) to a sprite belong to it
_HUGE_SHARE = 0.25  # a component box over this share of the picture is no tile ...
_DOMINANT_SHARE = 0.5  # ... and if such boxes hold this share of the art: one picture
_MIN_SPRITES = 3  # sprites an atlas needs
_SPRITE_SIDE = 2  # median sprite area at least (this x min_size) squared
_ATLAS_COVER = 0.4  # sprite boxes cover at least this share of the art's bounding box
_ALIGNED = 0.5  # share of sprites that share an edge line with another sprite, at least
_TEXT_LINES = 3  # sprites in this many lines at most, ...
_LINE_ALIKE = 2 / 3  # ... with this share of each line's glyphs ...
_LINE_HEIGHT = 0.15  # ... this close to the line's median height: text or a logo
_SAME_SIZE = 1  # boxes whose widths and heights all agree within this many pixels are frames
_JOINED = 1.5  # a box this many times the typical side may be two touching sprites ...
_NECK_SPAN = 0.25  # ... split between this share of its length and one minus it ...
_NECK = 0.15  # ... where at most this share of the line is art

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1)


def atlas_cells(parts: Parts, min_size: int) -> list[Cell] | None:
    """The sprites of an atlas in reading order, or None if the picture is no atlas."""
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
    x0, y0 = boxes[:, :2].min(axis=0)
    x1, y1 = boxes[:, 2:].max(axis=0)
    if areas.sum() < _ATLAS_COVER * (x1 - x0) * (y1 - y0):
        return None  # things spread over an empty canvas: a scene, a logo, a line of text
    boxes = _merge_nested(_split_joined(boxes, mask, min_size))
    if _aligned(boxes) < _ALIGNED:
        return None  # figures scattered at random: a scene, not a packer's shelves
    if _text_lines(boxes):
        return None  # glyphs of one height along a line or two: a logo, a title, a caption
    order = np.lexsort((boxes[:, 0], boxes[:, 1]))
    return [(int(x0), int(y0), int(x1 - x0), int(y1 - y0)) for x0, y0, x1, y1 in boxes[order]]


def _aligned(boxes: np.ndarray) -> float:
    """Share of boxes whose top, bottom or left edge is on the same line as another box's."""
    best = 0.0
    for edge in (boxes[:, 1], boxes[:, 3], boxes[:, 0]):
        _, inverse, counts = np.unique(edge, return_inverse=True, return_counts=True)
        best = max(best, float(np.mean(counts[inverse] > 1)))
    return best


def _text_lines(boxes: np.ndarray) -> bool:
    """Whether the boxes lie in a few lines (runs of rows that boxes cover) whose glyphs are
    mostly of one height. A packer's shelves are many, or hold sprites of any height; boxes all
    of one size are frames (a strip, a row of tiles): glyphs differ in width."""
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    if np.ptp(widths) <= _SAME_SIZE and np.ptp(heights) <= _SAME_SIZE:
        return False
    order = np.argsort(boxes[:, 1])
    lines: list[list[int]] = []
    bottom = -1
    for i in order:
        if boxes[i, 1] >= bottom:
            lines.append([])
        lines[-1].append(int(i))
        bottom = max(bottom, int(boxes[i, 3]))
    if len(lines) > _TEXT_LINES:
        return False
    for line in lines:
        heights = boxes[line, 3] - boxes[line, 1]
        alike = np.abs(heights - np.median(heights)) <= _LINE_HEIGHT * np.median(heights)
        if np.mean(alike) < _LINE_ALIKE:
            return False
    return True


def _merge_fragments(boxes: np.ndarray, min_size: int) -> np.ndarray:
    """Attach components smaller than a tile to the nearest tile-sized one within a few
    pixels; drop the others."""
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


def _merge_nested(boxes: np.ndarray) -> np.ndarray:
    """Merge every box whose centre lies inside a larger box into that box, until none does.
    Touching sprites' boxes only graze each other."""
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


def _split_joined(boxes: np.ndarray, mask: np.ndarray, min_size: int) -> np.ndarray:
    """Split boxes much wider (taller) than the typical sprite at a thin neck, repeatedly."""
    typical_w = float(np.median(boxes[:, 2] - boxes[:, 0]))
    typical_h = float(np.median(boxes[:, 3] - boxes[:, 1]))
    todo: list[Box] = [(int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in boxes]
    done: list[Box] = []
    while todo:
        box = todo.pop()
        halves = _split_once(box, mask, typical_w, typical_h, min_size)
        if halves is None:
            done.append(box)
        else:
            todo.extend(halves)
    return np.array(done, dtype=np.int64)


def _split_once(
    box: Box, mask: np.ndarray, typical_w: float, typical_h: float, min_size: int
) -> list[Box] | None:
    """Two tight boxes split at the thinnest line of ``box`` along a long side, or None."""
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
        if tight[0] is not None and tight[1] is not None:
            return [tight[0], tight[1]]
    return None


def _tight(box: Box, mask: np.ndarray) -> Box | None:
    """``box`` shrunk to the art inside it; None if it holds none."""
    x0, y0, x1, y1 = box
    region = mask[y0:y1, x0:x1]
    cols, rows = np.flatnonzero(region.any(axis=0)), np.flatnonzero(region.any(axis=1))
    if cols.size == 0:
        return None
    return (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
