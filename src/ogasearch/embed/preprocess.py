"""Pixel-art-aware preprocessing: the ONE path from an image to model input, used at index time
and at query time alike, so that both sides of a comparison see the same canonical pixels.

``canonical(img)`` undoes what happens to pixel art on its way around the web:

* any mode (P, L, LA, I;16, CMYK, RGB, RGBA...), animations -> first frame, as RGBA;
* an opaque image on a flat background (a sprite flattened onto white or black, a JPEG of it)
  gets that background made transparent again (flood fill from the border, with a tolerance
  for JPEG noise), so it compares equal to the transparent original;
* an integer nearest-neighbour upscale (2x..16x, any phase, also under JPEG noise) is detected
  from the luma/alpha edge profile and undone by block averaging (exact on clean upscales);
* the result is cropped to its content (alpha > 0) bounding box.

``prepare(img, size)`` then composites the canonical image onto a fixed grey (transparency is
never black), scales it with nearest neighbour (never bilinear: pixel art stays crisp) to fill
a ``size`` square, and normalises it (float32 CHW) for the ImageNet-trained extractors.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

from ogasearch.budget import check
from ogasearch.extract import images

BACKGROUND = (128, 128, 128)  # where transparency goes before the CNN; never black
MAX_FACTOR = 16
MIN_BLOCKS = 4  # an unscaled image keeps at least this many pixels on each side
# upscale detection (see detect_upscale): in JPEGs, edge energy inside blocks must be below
# this fraction of that on block borders; a factor must keep GRID_KEEP of the grid excess of
# every finer factor. Chosen on Crawl tiles: 2-4x upscales in JPEG q60 / q90 found 91% / 100%,
# 1x JPEGs left alone 93%; lossless upscales (exact test) undone exactly on 600 images.
UNSCALE_RATIO = 0.6
LOSSY_EDGE = 12.0  # luma/alpha step that counts as an edge in a JPEG
GRID_KEEP = 0.8
EDGE_EPSILON = 1e-3
LOSSY_FORMATS = frozenset({"JPEG", "MPO"})
# a flat border colour covering at least this share of the border is treated as background;
# one tolerance for lossless and JPEG images, so both sides of a comparison decide alike
# (see docs/benchmarks.md, Quality)
BORDER_SHARE = 0.3
BORDER_TOLERANCE = 24  # max channel difference to the border colour (also JPEG noise)
DIRECT_COMPARISONS = 1 << 18  # border colours x border pixels compared one by one
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass(frozen=True)
class Canonical:
    """The canonical RGBA pixels and what was undone to reach them."""

    image: Image.Image  # RGBA, upscale undone, cropped to content
    factor: int  # the upscale that was undone (1: none)
    background_removed: bool  # an opaque flat background was made transparent
    opaque: bool  # the source had no transparency at all (a photo, screenshot, JPEG...)
    # the image before its background was removed (None if nothing was removed): whether a
    # border colour is background is a judgement that a copy of the image (JPEG noise, a
    # flattened shadow) may tip the other way, so the matcher searches with both
    kept: Image.Image | None = None
    # the flat colour that was made transparent (None if nothing was removed): a copy of
    # partly transparent art flattened on it is compared with candidates flattened on it too
    background: tuple[int, int, int] | None = None


def to_rgba(img: Image.Image) -> Image.Image:
    """First frame of any PIL image as 8-bit RGBA, keeping transparency (palette, tRNS keys,
    16-bit greys scaled, not clipped): ``extract.images.to_rgba``, the catalog's own rule."""
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    return images.to_rgba(img)


def canonical(img: Image.Image) -> Image.Image:
    """RGBA, flat background removed, integer upscale undone, cropped to the content box."""
    return canonicalise(img).image


def canonicalise(img: Image.Image, lossy: bool | None = None) -> Canonical:
    """``canonical`` with the facts of what was undone (for diagnostics and the region path).

    ``lossy`` (default: the image's format is JPEG) lets upscale detection and background
    removal tolerate compression noise; lossless images must be exact block upscales.
    Under a query budget (``search.budget``) it stops between its steps once the query must
    stop."""
    check()
    if lossy is None:
        lossy = (img.format or "").upper() in LOSSY_FORMATS
    arr = np.array(to_rgba(img), dtype=np.uint8)
    arr = _clear_hidden(arr)
    arr = _crop_alpha(arr)
    opaque = bool(arr.size) and bool((arr[..., 3] == 255).all())
    factor = 1
    for step in range(3):  # a 64x upscale is found as 16x, then 4x
        check()
        # only the first pass may tolerate noise: block means of a JPEG are smooth, and a
        # second tolerant pass would take leftover 8x8 JPEG block edges for a grid
        k, phase_x, phase_y = detect_upscale(arr, lossy and step == 0)
        if k == 1:
            break
        arr = _downscale(arr, k, phase_x, phase_y)
        factor *= k
    kept = None
    colour = None
    check()
    if opaque:
        before = arr
        arr, colour = _remove_flat_background(arr, BORDER_TOLERANCE)
        arr = _crop_alpha(arr)
        if colour is not None:
            kept = Image.fromarray(before)
    if arr.shape[0] == 0 or arr.shape[1] == 0:  # fully transparent: keep one clear pixel
        arr = np.zeros((1, 1, 4), dtype=np.uint8)
    return Canonical(Image.fromarray(arr), factor, colour is not None, opaque, kept, colour)


def _clear_hidden(arr: np.ndarray) -> np.ndarray:
    """Zero the colour of fully transparent pixels: what they hide must not matter."""
    clear = arr[..., 3] == 0
    if clear.any():
        arr = arr.copy()
        arr[clear] = 0
    return arr


def _crop_alpha(arr: np.ndarray) -> np.ndarray:
    alpha = arr[..., 3]
    rows = np.flatnonzero(alpha.any(axis=1))
    cols = np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return arr[:0, :0]
    return arr[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _edge_signal(arr: np.ndarray) -> np.ndarray:
    """Luma composited on grey, plus alpha: the channels whose edges reveal block structure.

    Luma rather than RGB because JPEG keeps luma at full resolution but blurs chroma over
    2x2 pixels, which would blur the block edges that upscale detection looks for."""
    rgb = arr[..., :3].astype(np.float32)
    alpha = arr[..., 3:4].astype(np.float32) / 255.0
    luma = (rgb * alpha + 128.0 * (1.0 - alpha)) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.stack([luma, alpha[..., 0] * 255.0], axis=-1)


@dataclass(frozen=True)
class _AxisScore:
    excess: float  # share of edge energy on the grid, rescaled: chance 0, perfect grid 1
    ratio: float  # mean energy inside blocks / mean energy on block borders
    phase: int


def _axis_scores(profile: np.ndarray, length: int) -> dict[int, _AxisScore]:
    """Scores of each factor k at its best phase along one axis.

    ``profile[i]`` is the mean edge strength between pixel i and i+1. A k-fold nearest
    upscale with phase p has edges only where (i + 1 - p) % k == 0."""
    out: dict[int, _AxisScore] = {}
    total = float(profile.sum())
    residues = np.arange(1, profile.size + 1)
    for k in range(2, MAX_FACTOR + 1):
        if length < k * MIN_BLOCKS:
            break
        sums = np.bincount(residues % k, weights=profile, minlength=k)
        counts = np.bincount(residues % k, minlength=k)
        p = int(np.argmax(sums))
        share = sums[p] / total if total > 0 else 0.0
        across = sums[p] / counts[p]
        within = (total - sums[p]) / max(profile.size - counts[p], 1)
        ratio = within / across if across > 0 else np.inf
        out[k] = _AxisScore((share - 1 / k) / (1 - 1 / k), float(ratio), p)
    return out


def _profile(sig: np.ndarray, axis: int, lossy: bool) -> np.ndarray:
    """Edge strength between neighbouring lines along ``axis``: the mean difference, or for
    lossy images the share of pixels whose difference is a real edge (> LOSSY_EDGE), which
    JPEG's small ringing and block noise cannot fake as easily."""
    d = np.abs(np.diff(sig, axis=axis))
    if lossy:
        return (d.max(axis=-1) > LOSSY_EDGE).mean(axis=1 - axis)
    return d.sum(axis=-1).mean(axis=1 - axis)


def detect_upscale(arr: np.ndarray, lossy: bool = False) -> tuple[int, int, int]:
    """(factor, phase_x, phase_y) of an integer nearest-neighbour upscale; (1, 0, 0) if none.

    Per axis, a factor qualifies when
    * edges inside its blocks are absent (lossless images: the upscale is exact, so undoing
      it loses nothing) or weak next to edges on block borders (``lossy``: ratio <
      UNSCALE_RATIO; JPEG noise is weak next to colour edges), and
    * its grid explains nearly as much edge energy as any finer grid (excess >= GRID_KEEP x
      the best smaller factor's): a 4x upscale also fits a 2x grid perfectly, but an 8x grid
      only half as well and a 13x grid only by chance.
    The largest factor that qualifies on both axes wins."""
    h, w = arr.shape[:2]
    if h < 2 * MIN_BLOCKS or w < 2 * MIN_BLOCKS:
        return 1, 0, 0
    sig = _edge_signal(arr)
    sx = _axis_scores(_profile(sig, 1, lossy), w)
    sy = _axis_scores(_profile(sig, 0, lossy), h)
    max_ratio = UNSCALE_RATIO if lossy else EDGE_EPSILON
    found = (1, 0, 0)
    for k in sorted(set(sx) & set(sy)):
        if all(_qualifies(s, k, max_ratio) for s in (sx, sy)):
            found = (k, sx[k].phase, sy[k].phase)
    return found


def _qualifies(scores: dict[int, _AxisScore], k: int, max_ratio: float) -> bool:
    s = scores[k]
    if s.ratio > max_ratio or s.excess <= 0:
        return False
    return all(s.excess >= GRID_KEEP * scores[d].excess for d in range(2, k))


def _downscale(arr: np.ndarray, k: int, px: int, py: int) -> np.ndarray:
    """Block means over the detected grid (exact for a clean upscale, denoising under JPEG).

    Colour is averaged weighted by alpha, so transparent pixels in a partly covered block
    do not darken it."""
    h, w = arr.shape[:2]
    ys = np.array(sorted({0, *range(py, h, k)} - {h}))
    xs = np.array(sorted({0, *range(px, w, k)} - {w}))
    a = arr[..., 3].astype(np.float64)
    rgb = arr[..., :3].astype(np.float64) * a[..., None]

    def block_sum(x: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.add.reduceat(x, ys, axis=0), xs, axis=1)

    counts = block_sum(np.ones((h, w)))
    a_sum = block_sum(a)
    rgb_sum = block_sum(rgb)
    alpha = a_sum / counts
    with np.errstate(invalid="ignore", divide="ignore"):
        colour = np.where(a_sum[..., None] > 0, rgb_sum / a_sum[..., None], 0.0)
    out = np.concatenate([colour, alpha[..., None]], axis=-1)
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return _clear_hidden(out)


def _remove_flat_background(
    arr: np.ndarray, tolerance: int
) -> tuple[np.ndarray, tuple[int, int, int] | None]:
    """Make a flat border-connected background transparent (opaque images only); returns
    the image and the background colour (None, image unchanged: no flat background)."""
    h, w = arr.shape[:2]
    if h < 3 or w < 3:
        return arr, None
    rgb = arr[..., :3].astype(np.int16)
    border = np.concatenate([rgb[0], rgb[-1], rgb[1:-1, 0], rgb[1:-1, -1]])
    best_colour = _flat_border_colour(border, tolerance)
    if best_colour is None:
        return arr, None
    near = np.abs(rgb - best_colour).max(axis=-1) <= tolerance
    labels, _ = ndimage.label(near)
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    edge_labels = edge_labels[edge_labels > 0]
    background = np.isin(labels, edge_labels)
    if background.all():
        return arr, None  # a flat image is its own content
    out = arr.copy()
    out[background] = 0
    r, g, b = _background_colour(border, best_colour, tolerance)
    return out, (r, g, b)


def _background_colour(
    border: np.ndarray, found: np.ndarray, tolerance: int
) -> tuple[int, int, int]:
    """The colour a flat background was: the commonest border colour when it alone covers
    BORDER_SHARE of the border (a lossless image: the faint edges of the art that reach the
    border are blends near it, not it), else the median of the border pixels within
    ``tolerance`` of the colour ``_flat_border_colour`` found (JPEG noise around it)."""
    colours, counts = np.unique(border, axis=0, return_counts=True)
    if counts.max() >= BORDER_SHARE * border.shape[0]:
        colour = colours[int(np.argmax(counts))]
    else:
        close = np.abs(border - found).max(axis=-1) <= tolerance
        colour = np.rint(np.median(border[close], axis=0))
    r, g, b = (int(c) for c in colour)
    return r, g, b


def _flat_border_colour(border: np.ndarray, tolerance: int) -> np.ndarray | None:
    """The border colour with the most border pixels within ``tolerance`` of it (the first
    in colour order on a tie), or None when it has fewer than BORDER_SHARE of them.

    Comparing every colour with every pixel costs colours x pixels (a noisy border of a large
    image has as many colours as pixels), so colours are first bounded on a coarse grid of
    cells at least ``tolerance`` wide: the pixels within tolerance of a colour all lie in the
    3 x 3 x 3 cells around its own, and only colours whose cells hold enough pixels are
    compared exactly. The answer is the same as comparing them all."""
    colours = np.unique(border, axis=0)
    need = BORDER_SHARE * border.shape[0]
    if len(colours) * len(border) <= DIRECT_COMPARISONS:
        candidates = colours
    else:
        candidates = _bounded_colours(border, colours, tolerance, need)
    if not len(candidates):
        return None
    chunks = np.array_split(candidates, len(candidates) * len(border) // DIRECT_COMPARISONS + 1)
    close = np.concatenate(
        [(np.abs(border[None] - c[:, None]).max(axis=-1) <= tolerance).sum(axis=1) for c in chunks]
    )
    best = int(np.argmax(close))
    return candidates[best] if close[best] >= need else None


def _bounded_colours(
    border: np.ndarray, colours: np.ndarray, tolerance: int, need: float
) -> np.ndarray:
    """The ``colours`` that may have ``need`` border pixels within ``tolerance``: those whose
    3 x 3 x 3 cells of the coarse grid hold that many."""
    cell = max(tolerance, 16)
    side = 256 // cell + 3  # one empty cell on each side: neighbours never wrap
    cells = border // cell + 1
    counts = np.zeros((side, side, side), dtype=np.int64)
    np.add.at(counts, (cells[:, 0], cells[:, 1], cells[:, 2]), 1)
    around = np.zeros_like(counts)
    for shift in np.ndindex(3, 3, 3):
        around += np.roll(counts, tuple(d - 1 for d in shift), axis=(0, 1, 2))
    own = colours // cell + 1
    return colours[around[own[:, 0], own[:, 1], own[:, 2]] >= need]


def unblend(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Undo a flattening on ``background`` as far as the pixels allow ("colour to alpha"):
    each opaque pixel q becomes the most transparent colour c, alpha a that gives q again
    over the background (q = a c + (1 - a) background, c within 0..255), transparent pixels
    stay so. Exact for art whose partly transparent pixels are as saturated as can be (a glow
    fading from white on black); for others it is the nearest guess the pixels allow, closer
    to the original than the blends are, so its feature vector finds candidates that the
    flattened view misses (the matcher verifies them on the flat colour itself)."""
    arr = np.asarray(img.convert("RGBA"), dtype=np.float32)
    rgb, alpha = arr[..., :3], arr[..., 3:] / 255.0
    bg = np.array(background, dtype=np.float32)
    room = np.where(rgb >= bg, 255.0 - bg, bg)  # how far each channel can move from it
    need = np.where(room > 0, np.abs(rgb - bg) / np.maximum(room, 1.0), 0.0)
    a = np.clip(need.max(axis=-1, keepdims=True), 0.0, 1.0) * alpha
    colour = np.where(a > 0, bg + (rgb - bg) / np.maximum(a, 1e-6), 0.0)
    out = np.concatenate([np.clip(colour, 0, 255), a * 255.0], axis=-1)
    return Image.fromarray(_clear_hidden(np.rint(out).astype(np.uint8)))


def composite(img: Image.Image, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """RGBA -> RGB over a fixed background colour (``convert('RGB')`` would turn it black)."""
    base = Image.new("RGBA", img.size, (*background, 255))
    return Image.alpha_composite(base, img.convert("RGBA")).convert("RGB")


def to_square(
    img: Image.Image, size: int, background: tuple[int, int, int] = BACKGROUND
) -> Image.Image:
    """Nearest-neighbour scale so the longer side fills ``size``, centred on ``background``.

    Nearest, never bilinear: pixel edges stay sharp and no new colours appear. Filling the
    square (rather than the largest integer factor that fits) was measured better for crops
    on the quality benchmark (crop recall@1 0.80 against 0.58) and no worse elsewhere."""
    rgb = composite(img, background)
    w, h = rgb.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    rgb = rgb.resize((nw, nh), Image.Resampling.NEAREST)
    canvas = Image.new("RGB", (size, size), background)
    canvas.paste(rgb, ((size - nw) // 2, (size - nh) // 2))
    return canvas


def normalise(rgb: Image.Image) -> np.ndarray:
    """RGB image -> float32 CHW with ImageNet mean/std (what the extractors were trained on)."""
    x = np.asarray(rgb, dtype=np.float32) / 255.0
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def prepare_canonical(canon: Image.Image, size: int) -> np.ndarray:
    """Model input from an already canonical image (region search canonicalises itself)."""
    return normalise(to_square(canon, size))


def prepare(img: Image.Image, size: int) -> np.ndarray:
    """The model input for any image: ``canonical`` -> grey composite -> nearest square."""
    return prepare_canonical(canonical(img), size)


def flip(img: Image.Image) -> Image.Image:
    return ImageOps.mirror(img)


def pixel_hash(canon: Image.Image) -> str:
    """sha256 of the canonical RGBA pixels and size: equal for exact copies, upscales and
    flattenings of one image (what ``images.canonical_sha256`` holds)."""
    arr = np.ascontiguousarray(np.asarray(canon.convert("RGBA"), dtype=np.uint8))
    h = hashlib.sha256(f"{arr.shape[1]}x{arr.shape[0]}:".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def structure_hash(canon: Image.Image) -> str | None:
    """sha256 of the colour-index pattern: each pixel replaced by the order in which its RGBA
    colour first appears. Equal for any one-to-one recolouring (hue shifts, palette swaps).
    None for images with fewer than 3 colours, whose pattern says too little to match on."""
    arr = np.asarray(canon.convert("RGBA"), dtype=np.uint8)
    flat = arr.reshape(-1, 4).view(np.uint32).ravel()
    # np.unique's return_index needs a stable sort, twice as slow: first places by np.minimum
    _, inverse = np.unique(flat, return_inverse=True)
    first = np.full(int(inverse.max()) + 1, flat.size, dtype=np.int64)
    np.minimum.at(first, inverse.ravel(), np.arange(flat.size))
    if first.size < 3:
        return None
    rank = np.empty_like(first)
    rank[np.argsort(first)] = np.arange(first.size)
    labels = rank[inverse].astype(np.uint32)
    h = hashlib.sha256(f"{arr.shape[1]}x{arr.shape[0]}:{first.size}:".encode())
    h.update(labels.tobytes())
    return h.hexdigest()
