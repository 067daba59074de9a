"""Pixel verification: does the query's canonical image appear in a candidate's canonical image?

Both sides are canonical (upscale undone, background removed, cropped), so a copy, a JPEG of
it, a crop of it or a sprite cut out of a screenshot sits in the candidate at scale 1, up to
a small shift. ``pixel_similarity`` slides the query over the candidate (shifts up to the
size difference plus a margin) and returns 1 - the mean absolute colour difference (on the
fixed grey background, so transparency counts) at the best shift, scaled by how much of the
candidate the query covers. It is cheap for sprites (both sides are a few dozen pixels) and
it tells apart the near-identical variants that feature vectors confuse.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from ogasearch.embed.preprocess import BACKGROUND, BORDER_TOLERANCE, Canonical, composite

MAX_SIDE = 64  # larger images are compared box-reduced to this size (both by one factor)
MARGIN = 2  # extra shift allowed around the candidate (bounding boxes moved by JPEG noise)
MIN_COVER = 0.5  # a query covering less of the candidate than this does not verify it
SCENE_SLACK = 6  # scene pixels searched around a cut-out's box
SIZE_RATIO = 0.6  # a candidate smaller than this share of the cut-out is not what was cut
PIXEL_TOLERANCE = 12.0  # mean channel difference of a pixel that still matches
MISMATCH_WEIGHT = 10.0
MIN_SCENE_PIXELS = 48  # art with fewer opaque pixels matches anywhere in a busy scene
SHIFT_SAMPLE = 256  # candidate pixels compared at every shift (then all at the best one)


Pixels = tuple[np.ndarray, np.ndarray]
_RECENT: OrderedDict[tuple[int, int], tuple[Image.Image, Pixels]] = OrderedDict()
_RECENT_LOCK = threading.Lock()  # the web server verifies in several threads
RECENT = 256  # images whose ``_pixels`` are remembered


def _pixels(img: Image.Image, factor: int) -> Pixels:
    """``_reduced``, remembered for the last ``RECENT`` images asked (by identity, holding
    the image so that its id is not reused; canonical images are not changed once made):
    one candidate is compared with every view of a query, and recurs across queries."""
    key = (id(img), factor)
    with _RECENT_LOCK:
        hit = _RECENT.get(key)
        if hit is not None and hit[0] is img:
            _RECENT.move_to_end(key)
            return hit[1]
    found = _reduced(img, factor)
    for arr in found:
        arr.flags.writeable = False
    with _RECENT_LOCK:
        _RECENT[key] = (img, found)
        while len(_RECENT) > RECENT:
            _RECENT.popitem(last=False)
    return found


def _reduced(img: Image.Image, factor: int) -> Pixels:
    """Colour on the grey background and the content mask, box-reduced by ``factor``."""
    rgba = img.convert("RGBA")
    if factor > 1:
        w, h = rgba.size
        rgba = rgba.resize((max(1, w // factor), max(1, h // factor)), Image.Resampling.BOX)
    rgb = np.asarray(composite(rgba), dtype=np.float32)
    return rgb, np.asarray(rgba.getchannel("A")) > 0


def flat_form(img: Image.Image, background: tuple[int, int, int]) -> Image.Image | None:
    """``img`` as it looks flattened on a flat ``background`` colour, with that colour made
    transparent again: RGBA, opaque where the flattened colour differs from the background
    by more than ``BORDER_TOLERANCE`` in some channel, clear elsewhere, cropped to that.

    Art with partly transparent pixels flattened on a colour keeps them as blends with that
    colour, which match nothing composited on another one. Put through this, the flattened
    copy and the transparent original give the same pixels (a lossless copy: equal), so the
    two compare at scale 1 whatever the colour was. Pixels of the art's own that are close to
    the background colour drop out of both sides alike. None when nothing is left: art all
    within the tolerance of the colour has nothing to compare."""
    rgb = np.asarray(composite(img, background), dtype=np.int16)
    content = np.abs(rgb - np.array(background, dtype=np.int16)).max(axis=-1) > BORDER_TOLERANCE
    rows, cols = np.flatnonzero(content.any(axis=1)), np.flatnonzero(content.any(axis=0))
    if rows.size == 0:
        return None
    out = np.zeros((*rgb.shape[:2], 4), dtype=np.uint8)
    out[content, :3] = rgb[content]
    out[content, 3] = 255
    return Image.fromarray(out[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


@dataclass(frozen=True)
class Placement:
    """The query placed where it differs least from the candidate: ``similarity`` (what
    ``pixel_similarity`` returns) and ``agreement``, the share of the pixels where either
    image has content whose mean channel difference is at most ``PIXEL_TOLERANCE`` there (a
    copy agrees almost everywhere; a texture of the same tones does not)."""

    similarity: float
    agreement: float


def place(query: Image.Image, candidate: Image.Image) -> Placement:
    """``Placement`` of the query in the candidate (zeros when it cannot be placed: it covers
    less than MIN_COVER of the candidate or is larger than it)."""
    none = Placement(0.0, 0.0)
    qw, qh = query.size
    cw, ch = candidate.size
    if qw > cw + 2 * MARGIN or qh > ch + 2 * MARGIN:
        return none
    cover = min(1.0, (qw * qh) / max(1, cw * ch))
    if cover < MIN_COVER:
        return none
    factor = max(1, -(-max(cw, ch) // MAX_SIDE))
    q, qa = _pixels(query, factor)
    c, ca = _pixels(candidate, factor)
    m = MARGIN
    c = np.pad(c, ((m, m), (m, m), (0, 0)), mode="constant")
    c[:m], c[-m:], c[:, :m], c[:, -m:] = BACKGROUND, BACKGROUND, BACKGROUND, BACKGROUND
    ca = np.pad(ca, ((m, m), (m, m)), mode="constant")
    if q.shape[0] > c.shape[0] or q.shape[1] > c.shape[1]:
        return none
    win = sliding_window_view(c, q.shape[:2], axis=(0, 1))  # (ny, nx, 3, hq, wq)
    win_a = sliding_window_view(ca, qa.shape, axis=(0, 1))  # (ny, nx, hq, wq)
    diff = np.abs(win - q.transpose(2, 0, 1)[None, None]).sum(axis=2) / 3.0  # (ny, nx, hq, wq)
    union = qa.sum() + win_a.sum(axis=(2, 3)) - (win_a & qa).sum(axis=(2, 3))
    mean = diff.sum(axis=(2, 3)) / np.maximum(union, 1)
    at = np.unravel_index(int(mean.argmin()), mean.shape)
    content = win_a[at] | qa
    agree = float(((diff[at] <= PIXEL_TOLERANCE) & content).sum() / max(1, int(content.sum())))
    similarity = (1.0 - float(mean[at]) / 255.0) * min(1.0, cover / 0.8)
    return Placement(similarity, agree)


NO_PLACEMENT = Placement(0.0, 0.0)


def _border_colour(img: Image.Image) -> tuple[int, int, int]:
    """The commonest colour of an opaque image's outermost pixels (its flat background)."""
    rgb = np.asarray(img.convert("RGB"))
    ring = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    colours, counts = np.unique(ring, axis=0, return_counts=True)
    r, g, b = (int(v) for v in colours[int(counts.argmax())])
    return r, g, b


def flattened_pairs(
    query: Canonical, candidate: Canonical
) -> list[tuple[Image.Image, Image.Image]]:
    """``(query form, candidate form)`` pairs that compare a picture flattened onto a flat
    background (a JPEG re-upload: its transparent and half-transparent pixels became that
    colour) with art that kept its transparency: the side with transparency composited onto
    the background the other side shows (the border colour of ``Canonical.kept``, the picture
    before ``canonicalise`` took a background off), and the flattened side cut to where it
    differs from that colour. ``place`` composites both sides onto grey, where such a pair
    disagrees on every pixel that was not opaque."""
    out = []
    for flat, art, flat_first in ((query, candidate, True), (candidate, query, False)):
        alpha = np.asarray(art.image.getchannel("A"))
        if flat.kept is None or alpha.min() == 255:
            continue
        colour = _border_colour(flat.kept)
        rgb = np.asarray(flat.kept.convert("RGB"), dtype=np.float32)
        ys, xs = np.nonzero(np.abs(rgb - colour).mean(axis=2) > PIXEL_TOLERANCE)
        if not len(ys):
            continue
        # the flattened picture where it differs from its background: the art's box
        shown_flat = flat.kept.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        onto = Image.new("RGBA", art.image.size, (*colour, 255))
        shown = Image.alpha_composite(onto, art.image.convert("RGBA"))
        out.append((shown_flat, shown) if flat_first else (shown, shown_flat))
    return out


def pixel_similarity(query: Image.Image, candidate: Image.Image) -> float:
    """Best 1 - mean|difference| / 255 over the pixels where either image has content, with
    the query placed in the candidate, times coverage (0.0 when the query covers less than
    MIN_COVER of the candidate or is larger than it)."""
    return place(query, candidate).similarity


@dataclass(frozen=True)
class SceneMatch:
    similarity: float  # 1 - mean|difference| / 255 over the candidate's opaque pixels
    # scene pixels the candidate explains: its opaque pixels that match, less
    # MISMATCH_WEIGHT for each that does not (art that a smaller candidate is part of, or a
    # variant differing in a few pixels, explains less)
    explained: float
    # where the candidate was placed: (top, bottom, left, right) in the reduced scene
    at: tuple[int, int, int, int] | None = None


NO_SCENE_MATCH = SceneMatch(0.0, 0.0)


def scene_similarity(
    candidate: Image.Image, scene: np.ndarray, box: tuple[int, int, int, int]
) -> SceneMatch:
    """Does ``candidate`` (canonical RGBA) appear in a reduced scene near ``box``?

    Template matching at scale 1: the candidate's opaque pixels are slid over the scene
    around the box (by up to SCENE_SLACK pixels beyond it), and the best 1 - mean|difference|
    / 255 over those pixels is returned. Unlike ``pixel_similarity`` this does not trust the
    cut-out's silhouette: the scene's own pixels around the art do not count."""
    rgba = np.asarray(candidate.convert("RGBA"))
    alpha = rgba[..., 3].astype(np.float32) / 255.0  # half-transparent edges count half
    if alpha.sum() < MIN_SCENE_PIXELS:
        return NO_SCENE_MATCH
    colour = rgba[..., :3].astype(np.float32)
    ch, cw = alpha.shape
    y0, y1, x0, x1 = box
    # the cut-out may have lost or gained a little around the art, not most of it
    for side, cut in ((ch, y1 - y0), (cw, x1 - x0)):
        if side > cut + 2 * SCENE_SLACK or side < SIZE_RATIO * cut:
            return NO_SCENE_MATCH
    sh, sw = scene.shape[:2]
    top, left = max(0, y0 - SCENE_SLACK), max(0, x0 - SCENE_SLACK)
    bottom = min(sh, max(y1 + SCENE_SLACK, top + ch))
    right = min(sw, max(x1 + SCENE_SLACK, left + cw))
    window = scene[top:bottom, left:right]
    if window.shape[0] < ch or window.shape[1] < cw:
        return NO_SCENE_MATCH
    # the best shift, found on a sample of the candidate's pixels (cheap for large art), then
    # the full comparison there
    ys, xs = np.nonzero(alpha > 0)
    if ys.size > SHIFT_SAMPLE:
        pick = np.linspace(0, ys.size - 1, SHIFT_SAMPLE).astype(np.intp)
        ys, xs = ys[pick], xs[pick]
    ny, nx = window.shape[0] - ch + 1, window.shape[1] - cw + 1
    shifted = window[np.arange(ny)[:, None, None] + ys, np.arange(nx)[None, :, None] + xs]
    sample = np.abs(shifted - colour[ys, xs]).mean(axis=-1)  # (ny, nx, points)
    y, x = np.unravel_index(int(np.argmin(sample @ alpha[ys, xs])), (ny, nx))
    diff = np.abs(window[y : y + ch, x : x + cw] - colour).mean(axis=-1)
    mean = float((diff * alpha).sum() / alpha.sum())
    same = diff <= PIXEL_TOLERANCE
    solid = alpha == 1.0  # a half-transparent pixel shows the scene through: not evidence
    explained = (solid & same).sum() - MISMATCH_WEIGHT * (solid & ~same).sum()
    at = (top + int(y), top + int(y) + ch, left + int(x), left + int(x) + cw)
    return SceneMatch(1.0 - mean / 255.0, float(explained), at)
