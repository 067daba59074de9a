"""Candidate regions of a scene-like query (a screenshot, a mock-up, a forum post) that may
hold an indexed sprite, each returned as a canonical RGBA image ready to embed.

Upscaled pixel art on other content: a sprite pasted at an integer scale k is made of k x k
blocks of one colour on a grid with one phase; the content around it (a painting, a photo,
pixel art at another scale or phase) is not. The grid (k, phase) is found from where colour
edges fall (their positions modulo k pile up on the sprite's phase). On that grid, the scene
is every block that is not of one colour plus the flat areas joined to those; what is left,
walled off by its own edges, is pasted art: each blob becomes an RGBA image (its blocks
opaque, the rest transparent) at 1x, with its own silhouette, as if it had never been pasted.

Measured (quality benchmark, screenshot queries): blobs put the right image first for about a
third of the queries and in the top 10 for about half; sliding windows over the scene (tried at
1/2 and 1/3 of its side) found the right image first in 4 of 40 and mostly added false matches,
so they are not used. Known gaps: art whose outline has the colour of the flat area it sits on
loses that outline; a scene scaled as a whole (everything on one grid) gives no blobs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ogasearch.budget import check
from ogasearch.embed.preprocess import Canonical, canonical

MAX_GRID = 8  # largest paste scale looked for
EDGE_TOLERANCE = 8  # max channel difference still "the same colour" (mild compression)
MIN_BLOB_BLOCKS = 12  # smallest pasted art looked for, in its own pixels
MAX_BLOB_SHARE = 0.6  # a blob covering more of the scene is the scene's own pixel art
MAX_BLOBS = 4
MIN_GRID_EDGES = 64  # fewer unexplained edges than this hold no more pasted art
GRID_KEEP = 0.9  # a larger scale of the best grid's family wins if it fits this well
GRIDS_KEPT = 4  # paste grids (families) looked for in a scene
SCENE_MIN_SIDE = 24  # smallest canonical side for a query to count as a scene
SCENE_MIN_LONG_SIDE = 48


def looks_like_scene(canon: Canonical) -> bool:
    """An opaque picture, large enough to hold sprites: worth a region search."""
    w, h = canon.image.size
    return canon.opaque and min(w, h) >= SCENE_MIN_SIDE and max(w, h) >= SCENE_MIN_LONG_SIDE


@dataclass(frozen=True)
class Region:
    """Art cut out of a scene, and where: ``scene`` is the scene reduced on the art's grid
    (one pixel per k x k block), ``box`` the art's (top, bottom, left, right) in it."""

    image: Image.Image  # canonical RGBA
    scene: np.ndarray  # (h, w, 3) float32 block means
    box: tuple[int, int, int, int]
    grid: tuple[int, int, int] = (1, 0, 0)  # the scene's grid (k, px, py): see ``in_picture``


def _edge_positions(rgb: np.ndarray, axis: int) -> np.ndarray:
    """Boolean map of colour changes between a pixel and the next one along ``axis``."""
    d = np.abs(np.diff(rgb.astype(np.int16), axis=axis)).max(axis=-1)
    return d > EDGE_TOLERANCE


def _grid_phases(edges: np.ndarray, axis: int, k: int) -> np.ndarray:
    """Edge counts by (position + 1) modulo k along ``axis``."""
    counts = edges.sum(axis=1 - axis)
    residues = (np.arange(1, counts.size + 1)) % k
    return np.bincount(residues, weights=counts, minlength=k)


def find_grids(rgb: np.ndarray, keep: int = GRIDS_KEPT) -> list[tuple[int, int, int]]:
    """The most likely paste grids ``(k, phase_x, phase_y)``, best first, one per family.

    For the true scale k0 of pasted art, its edges all fall on one residue modulo k0, giving
    an excess over the mean of E(1 - 1/k0); a divisor or a multiple of k0 gets less, so the
    excess picks the scale as well as the phase. Each grid found explains away the pixels of
    its blocks of one colour, and the next grid is looked for in the edges left: a floor of
    tiles at 2x covers most of a game screen, and a sprite pasted on it at 3x (or at 2x on
    another phase) is found in what the floor's grid does not explain. Grids of one family
    (one scale divides the other, phases agree) describe the same art and are not repeated."""
    return [grid for grid, _, _ in _explained_grids(rgb, keep)]


def _explained_grids(
    rgb: np.ndarray, keep: int
) -> list[tuple[tuple[int, int, int], np.ndarray, np.ndarray]]:
    """``find_grids`` with each grid's block means and blocks of one colour (``_blocks``)."""
    ex, ey = _edge_positions(rgb, 1), _edge_positions(rgb, 0)
    unexplained = np.ones(rgb.shape[:2], dtype=bool)
    chosen: list[tuple[tuple[int, int, int], np.ndarray, np.ndarray]] = []
    while len(chosen) < keep:
        check()
        # edges with an unexplained pixel on either side (the outline of art counts)
        mx = ex & (unexplained[:, :-1] | unexplained[:, 1:])
        my = ey & (unexplained[:-1] | unexplained[1:])
        if mx.sum() + my.sum() < MIN_GRID_EDGES:
            break
        grid = _best_grid(mx, my, [g for g, _, _ in chosen])
        if grid is None:
            break
        means, const = _blocks(rgb, *grid)
        chosen.append((grid, means, const))
        unexplained &= ~_const_pixels(rgb.shape[:2], grid, const)
    return chosen


def _best_grid(
    ex: np.ndarray, ey: np.ndarray, chosen: list[tuple[int, int, int]]
) -> tuple[int, int, int] | None:
    """The grid whose phases hold the largest share of the edges, per axis rescaled so that
    chance is 0 and a perfect grid 1 (as ``preprocess.detect_upscale`` does); of a family
    that fits nearly as well at several scales (a 4x paste fits a 2x grid too), the largest
    scale. Grids of families already ``chosen`` are passed over."""
    totals = float(ex.sum()), float(ey.sum())
    scored: list[tuple[float, int, int, int]] = []
    for k in range(2, MAX_GRID + 1):
        check()
        cx, cy = _grid_phases(ex, 1, k), _grid_phases(ey, 0, k)
        for qx in set(np.argsort(-cx)[:2].tolist()):
            for qy in set(np.argsort(-cy)[:2].tolist()):
                score = _on_grid(cx[qx], totals[0], k) + _on_grid(cy[qy], totals[1], k)
                if not any(_same_family((k, qx, qy), c) for c in chosen):
                    scored.append((score, k, qx, qy))
    if not scored:
        return None
    best = max(scored)
    if best[0] <= 0:
        return None
    family = [t for t in scored if t[0] >= GRID_KEEP * best[0] and _same_family(t[1:], best[1:])]
    _, k, px, py = max(family, key=lambda t: (t[1], t[0]))
    return k, px, py


def _on_grid(count: float, total: float, k: int) -> float:
    """Share of an axis' edges on one phase of k, rescaled: 0 by chance, 1 all on it."""
    if total <= 0:
        return 0.0
    return (count / total - 1 / k) / (1 - 1 / k)


def _blocks(rgb: np.ndarray, k: int, px: int, py: int) -> tuple[np.ndarray, np.ndarray]:
    """Block means (hb, wb, 3) and which blocks are of one colour, on grid (k, px, py)."""
    h, w = rgb.shape[:2]
    hb, wb = (h - py) // k, (w - px) // k
    blocks = rgb[py : py + hb * k, px : px + wb * k].reshape(hb, k, wb, k, 3)
    spread = blocks.max(axis=(1, 3)).astype(np.int16) - blocks.min(axis=(1, 3))
    const = spread.max(axis=-1) <= EDGE_TOLERANCE
    return blocks.mean(axis=(1, 3)).astype(np.float32), const


def _const_pixels(
    shape: tuple[int, ...], grid: tuple[int, int, int], const: np.ndarray
) -> np.ndarray:
    """Pixels in blocks of one colour (``const``) on ``grid``: what that grid explains."""
    k, px, py = grid
    out = np.zeros(shape[:2], dtype=bool)
    hb, wb = const.shape
    out[py : py + hb * k, px : px + wb * k] = np.repeat(np.repeat(const, k, axis=0), k, axis=1)
    return out


def _same_family(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    (ka, xa, ya), (kb, xb, yb) = sorted((a, b))
    return kb % ka == 0 and xb % ka == xa and yb % ka == ya


@dataclass(frozen=True)
class GridView:
    """A scene reduced on one paste grid: one pixel per k x k block."""

    k: int
    means: np.ndarray  # (hb, wb, 3) float32 block means
    const: np.ndarray  # (hb, wb) bool: blocks of one colour (what pasted art is made of)
    phase: tuple[int, int] = (0, 0)  # (px, py): where the grid's first block starts

    @property
    def grid(self) -> tuple[int, int, int]:
        """(k, px, py), as ``find_grids`` gives it."""
        return (self.k, *self.phase)

    def rgba(self) -> np.ndarray:
        """The reduced scene as uint8 RGBA, blocks that are not of one colour transparent."""
        out = np.empty((*self.const.shape, 4), dtype=np.uint8)
        out[..., :3] = np.rint(self.means).astype(np.uint8)
        out[..., 3] = np.where(self.const, 255, 0)
        return out


def grid_views(rgb: np.ndarray) -> list[GridView]:
    """The scene reduced on each likely paste grid (``find_grids``), best grid first."""
    if min(rgb.shape[:2]) < 2 * MAX_GRID:
        return []
    return [
        GridView(grid[0], means, const, (grid[1], grid[2]))
        for grid, means, const in _explained_grids(rgb, GRIDS_KEPT)
        if min(const.shape) >= 2
    ]


def blobs(views: list[GridView]) -> list[Region]:
    """The art walled off from the scene in each view, largest first."""
    found: list[tuple[int, Region]] = []
    for view in views:
        check()
        const, means = view.const, view.means
        hb, wb = const.shape
        sprite_blocks = const & ~_scene_blocks(const, means)
        # parts of one sprite cut apart by a flat area the scene flood reached: join parts
        # that are within two blocks of each other
        joined = ndimage.binary_dilation(sprite_blocks, structure=np.ones((3, 3), bool))
        labels, n = ndimage.label(joined)
        labels[~sprite_blocks] = 0
        if n == 0:
            continue
        sizes = ndimage.sum(sprite_blocks, labels, index=np.arange(1, n + 1))
        for lab in np.argsort(-sizes)[:MAX_BLOBS]:
            if sizes[lab] < MIN_BLOB_BLOCKS or sizes[lab] > MAX_BLOB_SHARE * hb * wb:
                continue
            blob = labels == lab + 1
            ys, xs = np.nonzero(blob)
            box = (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1)
            region = Region(_cut(blob, means, box), means, box, view.grid)
            found.append((int(sizes[lab]), region))
    found.sort(key=lambda t: -t[0])
    return [region for _, region in found[:MAX_BLOBS]]


def in_picture(
    box: tuple[int, int, int, int], grid: tuple[int, int, int]
) -> tuple[int, int, int, int]:
    """A (top, bottom, left, right) box of a view reduced on ``grid`` (k, px, py) as an
    (x0, y0, x1, y1) box of the picture's own pixels."""
    top, bottom, left, right = box
    k, px, py = grid
    return (px + left * k, py + top * k, px + right * k, py + bottom * k)


def _cut(mask: np.ndarray, means: np.ndarray, box: tuple[int, int, int, int]) -> Image.Image:
    """The blocks of ``mask`` in ``box`` as a canonical RGBA image (others transparent)."""
    y0, y1, x0, x1 = box
    sub = mask[y0:y1, x0:x1]
    sprite = np.zeros((y1 - y0, x1 - x0, 4), dtype=np.uint8)
    sprite[..., :3] = np.rint(means[y0:y1, x0:x1]).astype(np.uint8)
    sprite[..., 3] = np.where(sub, 255, 0)
    sprite[~sub] = 0
    return canonical(Image.fromarray(sprite))


def _scene_blocks(const: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Blocks that belong to the scene rather than to pasted art: every block that is not of
    one colour, and every constant block joined to those through neighbours of (nearly) the
    same colour, i.e. the flat areas of the scene. Pasted art is walled off by its edges.

    One pass of connected components over the graph of neighbouring blocks of the same
    colour: a constant block is scene when its component holds a block that is not of one
    colour (the first such block on a path to it is reached through constant blocks only), so
    the cost is linear in the blocks whatever the shape of the flat areas."""
    h, w = const.shape
    index = np.arange(h * w).reshape(h, w)
    heads, tails = [], []
    for axis in (0, 1):
        same = np.abs(np.diff(means, axis=axis)).max(axis=-1) <= EDGE_TOLERANCE
        lo = index[:-1] if axis == 0 else index[:, :-1]
        hi = index[1:] if axis == 0 else index[:, 1:]
        heads.append(lo[same])
        tails.append(hi[same])
    check()
    head, tail = np.concatenate(heads), np.concatenate(tails)
    graph = coo_matrix((np.ones(head.size, np.int8), (head, tail)), shape=(h * w, h * w))
    _, labels = connected_components(graph, directed=False)
    touches_scene = np.zeros(labels.max() + 1 if labels.size else 0, dtype=bool)
    touches_scene[labels[~const.ravel()]] = True
    return (touches_scene[labels] | ~const.ravel()).reshape(h, w)
