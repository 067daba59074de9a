"""Search filters checked against the catalog: an unknown value is answered 422 with the
valid ones, instead of a search that filters everything away.

The valid licences and art types are read from the catalog and kept for a minute; a value
not among them makes one early re-read (an ``update`` may just have added it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ogasearch.catalog.stats import art_types
from ogasearch.search.results import Filters, TileFilter
from ogasearch.search.service import SearchService
from ogasearch.web.query_images import QueryError

KEEP_SECONDS = 60.0
REREAD_SECONDS = 5.0
TILES = ("only", "exclude")


class _Values:
    """A list read from the catalog, kept for a while."""

    def __init__(self, read: Callable[[], list[str]]) -> None:
        self._read = read
        self._values: list[str] = []
        self._read_at = -float("inf")
        self._lock = threading.Lock()

    def get(self, wanted: str | None = None) -> list[str]:
        """The values; read again when old, or when ``wanted`` is missing and the last read
        is not recent."""
        with self._lock:
            age = time.monotonic() - self._read_at
            if age > KEEP_SECONDS or (
                wanted is not None and wanted not in self._values and age > REREAD_SECONDS
            ):
                self._values = self._read()
                self._read_at = time.monotonic()
            return self._values


class FilterValues:
    """The filter values a search may use, for one service."""

    def __init__(self, service: SearchService) -> None:
        self.licenses = _Values(service.licenses)
        self.art_types = _Values(lambda: art_types(service.ws.engine))

    def check(
        self, license: str | None, tiles: str | None = None, art_type: str | None = None
    ) -> Filters:
        """``Filters`` of these values, or QueryError 422 naming the valid ones."""
        _check("license", license, self.licenses)
        _check("art_type", art_type, self.art_types)
        if tiles is not None and tiles not in TILES:
            raise _unknown("tiles", tiles, list(TILES))
        chosen: TileFilter = tiles  # type: ignore[assignment]
        return Filters(license=license or None, tiles=chosen, art_type=art_type or None)


def _check(name: str, value: str | None, known: _Values) -> None:
    if value and value not in known.get(value):
        raise _unknown(name, value, known.get())


def _unknown(name: str, value: str, valid: list[str]) -> QueryError:
    listed = ", ".join(repr(v) for v in valid) or "none (the catalog is empty)"
    return QueryError(422, "invalid_parameters", f"unknown {name} {value!r}; valid: {listed}")
