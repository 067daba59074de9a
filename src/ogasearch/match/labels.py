"""The words people read about a result, the same in the web UI, the CLI and the JSON API.

The matcher says *how* it found an image (``SearchResult.match``: exact, near, vector, region,
text) and, where it knows, *which edits* separate the query from it (``SearchResult.edits``).
This module turns both into one label and a percentage:

==================  ==========================================================================
label               when
==================  ==========================================================================
exact copy          the same pixels (``exact`` with no edit known)
edited copy         the same picture changed: ``exact`` through an edit (upscaled, flipped) or
                    ``near`` (recoloured, cropped, re-compressed, or an edit it cannot name)
found in your       art found inside the query picture (a screenshot, a scene: ``region``)
picture
similar             looks alike (feature vectors: ``vector``)
keyword match       the page matches the keywords (``text``)
==================  ==========================================================================

Edits (``EDITS``) are only what the matcher measured: the upscale it undid, the mirror view
that matched, the colour-index pattern that matched (a recolouring), a match of the query
inside a larger image (a crop), a lossy (JPEG) query verified pixel by pixel. Anything else
is an "edited copy" without details.

Scores are shown as a whole percentage where the score is a similarity (cosine or pixel
similarity); an exact copy and a keyword match show none (the first is 100% by definition,
the second is a relevance rank, not a percentage). ``plural`` is the one way counts are
worded ("1 result", "2 results").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Edit = Literal["upscaled", "flipped", "recoloured", "cropped", "recompressed"]
# in the order they are listed to people
EDITS: tuple[Edit, ...] = ("upscaled", "recoloured", "flipped", "cropped", "recompressed")
# how each edit is written in a sentence ("re-compressed" reads better than the enum value)
EDIT_WORDS: dict[str, str] = {"recompressed": "re-compressed"}

Label = Literal["exact copy", "edited copy", "found in your picture", "similar", "keyword match"]
LABELS: tuple[Label, ...] = (
    "exact copy",
    "edited copy",
    "found in your picture",
    "similar",
    "keyword match",
)
_BY_PATH: dict[str, Label] = {
    "exact": "exact copy",
    "near": "edited copy",
    "region": "found in your picture",
    "vector": "similar",
    "text": "keyword match",
}
_NO_PERCENT = ("exact", "text")


def ordered_edits(edits: Iterable[str]) -> list[Edit]:
    """Known edits in their display order, each once (unknown values left out)."""
    given = set(edits)
    return [e for e in EDITS if e in given]


def label(match: str, edits: Iterable[str] = ()) -> Label:
    """The label of a result found by path ``match`` with ``edits`` (see the module table)."""
    if match == "exact" and ordered_edits(edits):
        return "edited copy"
    return _BY_PATH.get(match, "similar")


def describe(match: str, edits: Iterable[str] = ()) -> str:
    """The label with its edits, e.g. ``edited copy (upscaled, flipped)``."""
    known = ordered_edits(edits)
    text: str = label(match, known)
    if known:
        text += " (" + ", ".join(EDIT_WORDS.get(e, e) for e in known) + ")"
    return text


def score_percent(match: str, score: float) -> int | None:
    """The score as a whole percentage (0-100), or None where it is not a similarity."""
    if match in _NO_PERCENT or score <= 0:
        return None
    return max(0, min(100, round(score * 100)))


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 result``, ``2 results``, ``0 results`` (``nouns``: an irregular plural)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
