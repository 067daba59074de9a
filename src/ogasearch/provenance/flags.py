"""A copy's page compared with the original's: who made it and under which licence.

Flags, as the catalog and the API spell them:

* ``different-author``: no author of the copy's page is an author of the original's;
* ``same-author``: they share an author (usually fine: an artist re-posting their own art in a
  pack or a collection), listed apart from the others;
* ``licence-conflict``: the copy carries a licence that does not follow from the original's
  (``provenance.licences``), e.g. CC0 on a copy of CC-BY-SA art.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ogasearch.provenance.licences import conflicting

FLAGS = ("different-author", "licence-conflict", "same-author")


@dataclass(frozen=True)
class PageFacts:
    """What the flags compare: a page's authors (by name) and licences (catalog names)."""

    authors: frozenset[str]
    licences: tuple[str, ...]


def copy_flags(original: PageFacts, copy: PageFacts) -> list[str]:
    """The flags of ``copy`` against ``original``, in ``FLAGS`` order."""
    out: list[str] = []
    if original.authors and copy.authors:
        out.append("same-author" if original.authors & copy.authors else "different-author")
    if conflicting(original.licences, copy.licences):
        out.append("licence-conflict")
    return sorted(out, key=FLAGS.index)


def join_flags(flags: Sequence[str]) -> str:
    """The stored form: comma-separated, in ``FLAGS`` order, each once."""
    return ",".join(sorted(set(flags), key=FLAGS.index))
