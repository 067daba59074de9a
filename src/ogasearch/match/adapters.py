"""The catalog and the vector index behind the matcher's interfaces (``match.matching``).

* ``CatalogHashes``: ``HashLookup`` (image ids by canonical or structure hash, and by patch
  fingerprint);
* ``CatalogPixels``: ``PixelSource`` (canonical pixels of candidates, read from the store);
* ``RefreshingIndex``: ``VectorSearch`` over the workspace's vector index, re-read when
  another process (``update``) has saved a newer one.

Each works on a ``Workspace`` (engine, store, index) and reads the catalog only through
``match.lookups`` (the queries the search and the provenance stage share).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy.typing as npt

from ogasearch.embed.preprocess import Canonical, canonicalise
from ogasearch.extract.images import ImageRejected
from ogasearch.extract.pixels import PixelCache, tile_box
from ogasearch.index import Hit, TileFilter, VectorIndex
from ogasearch.match import lookups
from ogasearch.workspace import Workspace

REFRESH_SECONDS = 1.0  # how often the index is checked for a newer saved generation


class CatalogHashes:
    """``HashLookup`` over the catalog: image ids by canonical or structure hash, and by
    patch fingerprint (``patches``)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def lookup(self, kind: str, value: str) -> list[int]:
        with self.ws.engine.connect() as conn:
            return lookups.ids_by_hash(conn, kind, value)

    def lookup_patches(self, hashes: Sequence[int]) -> list[tuple[int, int]]:
        with self.ws.engine.connect() as conn:
            return lookups.patch_owners(conn, hashes)


class CatalogPixels:
    """``PixelSource`` over the catalog: canonical pixels of candidates, for the matcher's
    pixel verification (a tile is its box cut from its sheet; each sheet decoded once)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def canonical_images(self, ids: Sequence[int]) -> dict[int, Canonical]:
        with self.ws.engine.connect() as conn:
            rows = lookups.pixel_rows_of(conn, ids)
        cache = PixelCache(self.ws.store, self.ws.settings.limits)
        out: dict[int, Canonical] = {}
        for row in rows:
            try:
                out[int(row.id)] = canonicalise(cache.load(row.blob, tile_box(row)))
            except (ImageRejected, OSError, ValueError):
                continue  # a candidate that cannot be read is simply not verified
        return out


class RefreshingIndex:
    """``VectorSearch`` over the workspace's vector index, which ``index()`` re-reads (at
    most every ``REFRESH_SECONDS``) when another process has saved a newer generation."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._lock = threading.Lock()
        self._refreshed = 0.0

    def index(self) -> VectorIndex:
        index = self.ws.index
        now = time.monotonic()
        if now - self._refreshed > REFRESH_SECONDS:
            with self._lock:
                index.refresh()
                self._refreshed = now
        return index

    def search(self, queries: npt.ArrayLike, k: int, tiles: TileFilter = None) -> list[list[Hit]]:
        return self.index().search(queries, k, tiles)
