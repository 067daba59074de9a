"""In-memory versions of the matcher's interfaces (``match.matching``: ``VectorSearch``,
``PixelSource``, ``HashLookup``), for the quality benchmark, the tests and small corpora.

The patch lookup builds the same sorted arrays as the product's patch table
(``index.patches.PatchArrays``), so what the benchmark measures is what the server does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from ogasearch.embed.extractors import l2_normalise
from ogasearch.embed.preprocess import Canonical
from ogasearch.index.base import Hit, TileFilter
from ogasearch.index.patches import PatchArrays


class InMemoryVectors:
    """Exact (brute-force) cosine search over a matrix; same ``search`` as ``VectorIndex``."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._ids = np.zeros(0, dtype=np.int64)
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._tile = np.zeros(0, dtype=bool)

    def add(
        self, ids: npt.ArrayLike, vectors: npt.ArrayLike, is_tile: npt.ArrayLike | None = None
    ) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vectors = l2_normalise(np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim))
        tile = np.zeros(ids.size, bool) if is_tile is None else np.asarray(is_tile, dtype=bool)
        keep = ~np.isin(self._ids, ids)
        self._ids = np.concatenate([self._ids[keep], ids])
        self._vectors = np.concatenate([self._vectors[keep], vectors])
        self._tile = np.concatenate([self._tile[keep], tile])

    def __len__(self) -> int:
        return int(self._ids.size)

    def search(self, queries: npt.ArrayLike, k: int, tiles: TileFilter = None) -> list[list[Hit]]:
        q = l2_normalise(np.asarray(queries, dtype=np.float32).reshape(-1, self.dim))
        mask = np.ones(self._ids.size, bool)
        if tiles == "only":
            mask = self._tile
        elif tiles == "exclude":
            mask = ~self._tile
        ids, vectors = self._ids[mask], self._vectors[mask]
        if ids.size == 0:
            return [[] for _ in range(q.shape[0])]
        scores = q @ vectors.T
        k = min(k, ids.size)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out: list[list[Hit]] = []
        for row, cand in zip(scores, top, strict=True):
            order = cand[np.argsort(-row[cand], kind="stable")]
            out.append([(int(ids[j]), float(row[j])) for j in order])
        return out


class InMemoryPixels:
    """``PixelSource`` over a dictionary of canonical forms."""

    def __init__(self, images: dict[int, Canonical] | None = None) -> None:
        self.images = dict(images or {})

    def canonical_images(self, ids: Sequence[int]) -> dict[int, Canonical]:
        return {i: self.images[i] for i in ids if i in self.images}


class InMemoryHashes:
    """``HashLookup`` over dictionaries."""

    def __init__(self) -> None:
        self._maps: dict[str, dict[str, list[int]]] = {}
        self._patches: dict[int, list[int]] = {}  # image id -> its fingerprints
        self._table: PatchArrays | None = None

    def add(self, ident: int, kind: str, value: str | None) -> None:
        if value is not None:
            self._maps.setdefault(kind, {}).setdefault(value, []).append(ident)

    def add_many(self, ids: Iterable[int], kind: str, values: Sequence[str | None]) -> None:
        for ident, value in zip(ids, values, strict=True):
            self.add(ident, kind, value)

    def lookup(self, kind: str, value: str) -> list[int]:
        return list(self._maps.get(kind, {}).get(value, ()))

    def add_patches(self, ident: int, fingerprints: Iterable[int]) -> None:
        self._patches[ident] = [*self._patches.get(ident, ()), *fingerprints]
        self._table = None

    def lookup_patches(self, hashes: Sequence[int]) -> list[tuple[int, int]]:
        """From a patch table of the added fingerprints, as the product's (``index.patches``)."""
        if self._table is None:
            self._table = PatchArrays.of(self._patches)
        return self._table.owners_of(hashes)
