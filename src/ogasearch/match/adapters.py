"""The catalog and the vector index behind the matcher's interfaces (``match.matching``).

* ``CatalogHashes``: ``HashLookup`` (image ids by canonical or structure hash from the catalog,
  and by patch fingerprint from the memory-mapped patch table, ``index.patches``);
* ``CatalogPixels``: ``PixelSource`` (canonical pixels of candidates, read from the store);
* ``RefreshingIndex``: ``VectorSearch`` over the workspace's vector index, re-read when
  another process (``update``) has saved a newer one.

Each works on a ``Workspace`` (engine, store, index, patch table) and reads the catalog only
through ``match.lookups`` (the queries the search and the provenance stage share). The vector
index and the patch table are re-read (at most every ``REFRESH_SECONDS``) when ``update`` has
saved a newer generation.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

import numpy.typing as npt

from ogasearch.embed.preprocess import Canonical, canonicalise
from ogasearch.extract.images import ImageRejected
from ogasearch.extract.pixels import PixelCache, tile_box
from ogasearch.index import Hit, TileFilter, VectorIndex
from ogasearch.match import lookups
from ogasearch.workspace import Workspace

REFRESH_SECONDS = 1.0  # how often the index is checked for a newer saved generation


class _Every:
    """True at most once every ``seconds`` (thread-safe): when to look for a newer
    generation on disk."""

    def __init__(self, seconds: float = REFRESH_SECONDS) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self._last = 0.0

    def due(self) -> bool:
        with self.lock:
            now = time.monotonic()
            if now - self._last <= self.seconds:
                return False
            self._last = now
            return True


class CatalogHashes:
    """``HashLookup``: image ids by canonical or structure hash (catalog), and by patch
    fingerprint (the workspace's patch table, re-read when a newer one was saved)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._refresh = _Every()

    def lookup(self, kind: str, value: str) -> list[int]:
        with self.ws.engine.connect() as conn:
            return lookups.ids_by_hash(conn, kind, value)

    def lookup_patches(self, hashes: Sequence[int]) -> list[tuple[int, int]]:
        table = self.ws.patches
        if self._refresh.due():
            with self._refresh.lock:
                table.refresh()
        return table.lookup(hashes)


class CatalogPixels:
    """``PixelSource`` over the catalog: canonical pixels of candidates, for the matcher's
    pixel verification (a tile is its box cut from its sheet; each sheet decoded once).

    ``keep``: how many canonical images to keep between calls (least recently used out),
    for a caller that matches many images of one catalog in turn (the provenance stage),
    whose candidates recur; 0 (the search) keeps none."""

    def __init__(self, ws: Workspace, keep: int = 0) -> None:
        self.ws = ws
        self.keep = keep
        self._kept: OrderedDict[int, Canonical] = OrderedDict()

    def canonical_images(self, ids: Sequence[int]) -> dict[int, Canonical]:
        out = {i: self._kept[i] for i in ids if i in self._kept}
        for ident in out:
            self._kept.move_to_end(ident)
        with self.ws.engine.connect() as conn:
            rows = lookups.pixel_rows_of(conn, [i for i in ids if i not in out])
        cache = PixelCache(self.ws.store, self.ws.settings.limits)
        for row in rows:
            try:
                out[int(row.id)] = canonicalise(cache.load(row.blob, tile_box(row)))
            except (ImageRejected, OSError, ValueError):
                continue  # a candidate that cannot be read is simply not verified
            if self.keep:
                self._kept[int(row.id)] = out[int(row.id)]
        while len(self._kept) > self.keep:
            self._kept.popitem(last=False)
        return out


class RefreshingIndex:
    """``VectorSearch`` over the workspace's vector index, which ``index()`` re-reads (at
    most every ``REFRESH_SECONDS``) when another process has saved a newer generation."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._refresh = _Every()

    def index(self) -> VectorIndex:
        index = self.ws.index
        if self._refresh.due():
            with self._refresh.lock:
                index.refresh()
        return index

    def search(self, queries: npt.ArrayLike, k: int, tiles: TileFilter = None) -> list[list[Hit]]:
        return self.index().search(queries, k, tiles)
