"""The words of results (``match.labels``) and the filter check (``Filters.validate``): pure
functions, the same for the UI, the CLI and the API."""

from __future__ import annotations

import pytest

from ogasearch.match.labels import describe, label, ordered_edits, plural, score_percent
from ogasearch.search.results import Filters, UnknownFilter


@pytest.mark.parametrize(
    ("match", "edits", "words"),
    [
        ("exact", [], "exact copy"),
        ("exact", ["flipped", "upscaled"], "edited copy (upscaled, flipped)"),
        ("near", [], "edited copy"),
        ("near", ["recompressed", "cropped"], "edited copy (cropped, re-compressed)"),
        ("near", ["recoloured"], "edited copy (recoloured)"),
        ("region", [], "found in your picture"),
        ("vector", [], "similar"),
        ("text", [], "keyword match"),
    ],
)
def test_labels(match: str, edits: list[str], words: str) -> None:
    assert describe(match, edits) == words
    assert label(match, edits) == words.split(" (")[0]


def test_edits_are_ordered_and_known_only() -> None:
    assert ordered_edits(["cropped", "bogus", "upscaled", "cropped"]) == ["upscaled", "cropped"]


@pytest.mark.parametrize(
    ("match", "score", "percent"),
    [
        ("exact", 1.0, None),
        ("text", 7.5, None),
        ("vector", 0.806, 81),
        ("near", 0.999, 100),
        ("region", 0.0, None),
        ("vector", 1.2, 100),
    ],
)
def test_score_percent(match: str, score: float, percent: int | None) -> None:
    assert score_percent(match, score) == percent


def test_plural() -> None:
    assert [plural(n, "result") for n in (0, 1, 2)] == ["0 results", "1 result", "2 results"]
    assert plural(1, "page") == "1 page" and plural(3, "page") == "3 pages"
    assert plural(2, "match", "matches") == "2 matches"


def test_filters_validate() -> None:
    Filters().validate((), ())
    Filters(license="CC0", tiles="only", art_type="2D Art").validate(["CC0"], ["2D Art"])
    with pytest.raises(UnknownFilter) as found:
        Filters(license="bogus").validate(["CC0", "CC-BY 3.0"], [])
    assert (found.value.name, found.value.value) == ("license", "bogus")
    assert found.value.valid == ["CC-BY 3.0", "CC0"]
    assert str(found.value) == "unknown license 'bogus'; valid: 'CC-BY 3.0', 'CC0'"
    with pytest.raises(UnknownFilter, match="unknown art_type 'pixel'; valid: '2D Art'"):
        Filters(art_type="pixel").validate([], ["2D Art"])
    with pytest.raises(UnknownFilter, match="valid: 'exclude', 'only'"):
        Filters(tiles="some").validate([], [])  # type: ignore[arg-type]
    with pytest.raises(UnknownFilter, match="valid: none yet"):
        Filters(license="CC0").validate([], [])
