"""How a copy differs from the original: the edit a moderator should look for.

The matcher says which of its paths found a candidate (``match.matching.Match.path``); the
catalog rows of the two images (hashes, size, format, tile parent) say which edit it was.
"""

from __future__ import annotations

from typing import Any

HOWS = (
    "exact",  # the same pixels (the same file, or re-saved without loss)
    "upscaled",  # the same canonical pixels at another scale
    "flipped",  # found through the mirror image
    "recoloured",  # the same colour-index pattern (hue shift, palette swap)
    "cut from a sheet",  # one side is a tile cut from the other page's sheet
    "re-compressed",  # a lossy re-encoding (JPEG) of the same picture
    "cropped",  # pixel-verified inside a larger or smaller picture
    "edited",  # pixel-verified, no single edit explains it
)
LOSSY = frozenset({"JPEG", "WEBP"})


def how_copied(a: Any, b: Any, path: str) -> str:
    """The edit between images ``a`` and ``b`` (catalog rows with ``sha256``,
    ``pixel_sha256``, ``canonical_sha256``, ``structure_sha256``, ``width``, ``height``,
    ``format`` and ``parent_id``), found by the matcher's ``path`` ("exact" or "near")."""
    if (a.parent_id is None) != (b.parent_id is None):
        return "cut from a sheet"
    same_size = (a.width, a.height) == (b.width, b.height)
    if path == "exact":
        if a.sha256 == b.sha256 or (a.pixel_sha256 and a.pixel_sha256 == b.pixel_sha256):
            return "exact"
        if a.canonical_sha256 != b.canonical_sha256:
            return "flipped"  # equal only through a mirrored view of the query
        return "exact" if same_size else "upscaled"
    if a.structure_sha256 and a.structure_sha256 == b.structure_sha256:
        return "recoloured"
    if {(a.format or "").upper(), (b.format or "").upper()} & LOSSY:
        return "re-compressed"
    return "edited" if same_size else "cropped"
