"""Which licences a copy of art may carry, given the licences of the original.

The names are the catalog's (``licenses.name``, as the crawler reads them from OGA's licence
field). A page with several licences offers each of them: a copy conflicts when one of its
licences is not permitted by any of the original's, since a user of the copy may pick that
one. A licence this table does not know (on either side) never raises a flag: the report
only flags what it can argue. The reasons are in docs/provenance.md.
"""

from __future__ import annotations

from collections.abc import Iterable

_BY = ("CC-BY 3.0", "CC-BY 4.0", "OGA-BY 3.0", "OGA-BY 4.0")
_SA = ("CC-BY-SA 3.0", "CC-BY-SA 4.0")
_GPL = ("GPL 2.0", "GPL 3.0", "LGPL 2.1", "LGPL 3.0")

# original licence -> the licences a copy of it may carry (the original's own included).
PERMITTED: dict[str, frozenset[str]] = {
    # CC0 waives every right: a copy may carry any licence.
    "CC0": frozenset(("CC0", *_BY, *_SA, *_GPL)),
    # Attribution licences: a copy keeps an attribution requirement (any BY, SA or GPL
    # licence does; GPL 3.0 section 7(b) admits attribution notices), never CC0.
    "CC-BY 3.0": frozenset((*_BY, *_SA, *_GPL)),
    "CC-BY 4.0": frozenset(("CC-BY 4.0", "OGA-BY 4.0", "CC-BY-SA 4.0", "GPL 3.0", "LGPL 3.0")),
    "OGA-BY 3.0": frozenset((*_BY, *_SA, *_GPL)),
    "OGA-BY 4.0": frozenset(("CC-BY 4.0", "OGA-BY 4.0", "CC-BY-SA 4.0", "GPL 3.0", "LGPL 3.0")),
    # Share-alike: the same licence or a later version (BY-SA 3.0 section 4(b)); BY-SA 4.0
    # may go one way to GPL 3.0 (Creative Commons' compatibility declaration, 2015).
    "CC-BY-SA 3.0": frozenset(("CC-BY-SA 3.0", "CC-BY-SA 4.0")),
    "CC-BY-SA 4.0": frozenset(("CC-BY-SA 4.0", "GPL 3.0")),
    # GPL: the same licence, or 3.0 for 2.0 (OGA's GPL 2.0 is "or later" on most pages, and
    # the report does not flag what it cannot argue). LGPL may become GPL (LGPL 2.1 section 3).
    "GPL 2.0": frozenset(("GPL 2.0", "GPL 3.0")),
    "GPL 3.0": frozenset(("GPL 3.0",)),
    "LGPL 2.1": frozenset(("LGPL 2.1", "LGPL 3.0", "GPL 2.0", "GPL 3.0")),
    "LGPL 3.0": frozenset(("LGPL 3.0", "GPL 3.0")),
}


def permitted(original: Iterable[str]) -> frozenset[str] | None:
    """Every licence a copy of art under ``original`` may carry; None when one of the
    original's licences is unknown here (or it has none): nothing can be argued then."""
    names = list(original)
    if not names or any(name not in PERMITTED for name in names):
        return None
    return frozenset().union(*(PERMITTED[name] for name in names))


def conflicting(original: Iterable[str], copy: Iterable[str]) -> list[str]:
    """The copy's licences that do not follow from the original's (empty: no conflict)."""
    allowed = permitted(original)
    if allowed is None:
        return []
    return [name for name in copy if name in PERMITTED and name not in allowed]
