"""Patch fingerprints: exact local features for pixel art.

Pixel art survives being cropped, cut from a sheet or pasted into a screenshot with its pixels
intact: once the upscale is undone (``preprocess.canonicalise`` for an image, the paste grid
for a scene), every ``PATCH`` x ``PATCH`` patch (3 x 3) of the art is still there, byte for
byte, around it. A patch is hashed from its RGB values (64-bit, position-free), so the same
patch hashes alike in the indexed image and in the query wherever it sits.

Only informative patches count: fully opaque (no background in them) and of at least
``MIN_COLOURS`` colours (flat fills and two-colour edges recur in all art). Of those, a
patch is *sampled* when its hash falls in one residue class (1 in ``SAMPLE``): the rule
depends on the pixels only, so a patch sampled in an image is sampled in every copy of it,
which is what lets both sides keep a fraction of their patches and still meet. The index
keeps at most ``MAX_PER_IMAGE`` sampled hashes per image (the smallest: again a rule of the
pixels, so a query holding the whole image holds all of them); a query keeps all of its
sampled patches, with their positions, to place a candidate in it.

Measured on the quality benchmark: see docs/benchmarks.md (Quality).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

PATCH = 3
MIN_COLOURS = 3
SAMPLE = 8
MAX_PER_IMAGE = 64
COMMON = 100  # a fingerprint held by more images than this is too common to vote
MAX_PIXELS = 1 << 20  # larger pictures are not fingerprinted (a 1x scene beyond this: none)
_ROW_MUL = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93],
    dtype=np.uint64,
)
_COL_MUL = np.array(
    [0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9],
    dtype=np.uint64,
)


@dataclass(frozen=True)
class Patches:
    """Sampled patches of a picture: hashes (int64) and top-left positions (y, x)."""

    hashes: np.ndarray  # (n,) int64
    ys: np.ndarray  # (n,) int32
    xs: np.ndarray  # (n,) int32

    def __len__(self) -> int:
        return int(self.hashes.size)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit (uint64 wraps)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _packed(rgba: np.ndarray) -> np.ndarray:
    rgb = rgba[..., :3].astype(np.uint64)
    return (rgb[..., 0] << np.uint64(16)) | (rgb[..., 1] << np.uint64(8)) | rgb[..., 2]


def patches(rgba: np.ndarray) -> Patches:
    """Every sampled, informative patch of an (h, w, 4) uint8 picture (alpha 255 = opaque)."""
    h, w = rgba.shape[:2]
    if h < PATCH or w < PATCH or h * w > MAX_PIXELS:
        return Patches(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32))
    packed = _packed(rgba)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps
        rows = np.zeros((h, w - PATCH + 1), np.uint64)
        for j in range(PATCH):
            rows += _mix(packed[:, j : w - PATCH + 1 + j] + np.uint64(j + 1)) * _ROW_MUL[j]
        grid = np.zeros((h - PATCH + 1, w - PATCH + 1), np.uint64)
        for i in range(PATCH):
            grid += _mix(rows[i : h - PATCH + 1 + i] ^ _COL_MUL[i])
        hashes = _mix(grid)
    keep = (hashes >> np.uint64(40)) % np.uint64(SAMPLE) == 0
    opaque = sliding_window_view(rgba[..., 3] == 255, (PATCH, PATCH)).all(axis=(2, 3))
    keep &= opaque
    ys, xs = np.nonzero(keep)
    if ys.size:
        windows = sliding_window_view(packed, (PATCH, PATCH))[ys, xs].reshape(ys.size, -1)
        ordered = np.sort(windows, axis=1)
        colours = 1 + (np.diff(ordered, axis=1) != 0).sum(axis=1)
        rich = colours >= MIN_COLOURS
        ys, xs = ys[rich], xs[rich]
    return Patches(hashes[ys, xs].view(np.int64), ys.astype(np.int32), xs.astype(np.int32))


def image_patches(img: Image.Image) -> Patches:
    return patches(np.asarray(img.convert("RGBA"), dtype=np.uint8))


def fingerprints(canon: Image.Image) -> list[int]:
    """What the index keeps of a canonical image: its distinct sampled patch hashes, the
    ``MAX_PER_IMAGE`` smallest."""
    found = np.unique(image_patches(canon).hashes)
    return [int(v) for v in found[:MAX_PER_IMAGE]]
