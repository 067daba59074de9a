"""The one interface every vector store sits behind, and the checks all of them share.

Vectors are keyed by the catalog's image id (``images.id``), so the index never needs a table
of its own to map results back: a hit's id *is* the row to show. Each vector carries one flag,
``is_tile``, because "whole images only" / "tiles only" is the one filter the search needs at
the vector level (licence and the rest are filtered in the catalog, after the neighbours come
back).

Scores are cosine similarities in [-1, 1], best first. The embedder L2-normalises its vectors;
the backends use a cosine metric anyway, so a vector that is off by a rounding error still
scores right.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import numpy as np
import numpy.typing as npt

TileFilter = Literal["only", "exclude"] | None
Hit = tuple[int, float]

# Milvus' hard limit on topk; the embedded index uses it too so both backends behave alike.
MAX_K = 16_384


class VectorIndexError(Exception):
    """Base class of the vector index's own errors."""


class IndexMismatchError(VectorIndexError):
    """The stored index was built for another model or vector size than the one asked for."""


class IndexConflictError(VectorIndexError):
    """Another process saved the embedded index since this one loaded it."""


class VectorIndex(ABC):
    """Approximate nearest-neighbour index of image vectors, keyed by catalog image id.

    ``add`` is an upsert: adding an id that is already there replaces its vector and flag.
    Nothing is durable before ``flush``; a stage that records "indexed" in the catalog must
    flush first, so a kill can only leave vectors the catalog does not know about yet (which
    the next run re-adds, harmlessly), never the reverse.
    """

    dim: int
    model: str

    @abstractmethod
    def add(
        self,
        ids: npt.ArrayLike,
        vectors: npt.ArrayLike,
        is_tile: npt.ArrayLike,
    ) -> None:
        """Insert or replace the vectors of ``ids`` (int64, >= 0), shape (n, dim) float32."""

    @abstractmethod
    def remove(self, ids: npt.ArrayLike) -> None:
        """Delete ``ids``; ids that are not in the index are ignored."""

    @abstractmethod
    def search(self, queries: npt.ArrayLike, k: int, tiles: TileFilter = None) -> list[list[Hit]]:
        """For each query row, up to ``k`` ``(id, cosine similarity)`` pairs, best first.

        ``tiles="only"`` returns tiles only, ``"exclude"`` whole images only, ``None`` both;
        a filtered search still returns ``k`` hits when that many vectors pass the filter.
        """

    @abstractmethod
    def ids(self) -> np.ndarray:
        """All live ids, sorted (int64): for checking the index against the catalog."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of live vectors."""

    @abstractmethod
    def flush(self) -> None:
        """Make every change so far durable."""

    @abstractmethod
    def close(self) -> None:
        """Flush what is pending and release files, memory and connections."""

    def refresh(self) -> bool:
        """Pick up changes another process has persisted; True if anything was reloaded.

        A server-backed index always sees the server's state, so the default does nothing.
        """
        return False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- argument checks shared by the backends -------------------------------------------

    def _check_ids(self, ids: npt.ArrayLike) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError(f"ids must be one-dimensional, got shape {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"ids must be integers, got {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        if arr.size and arr.min() < 0:
            raise ValueError("ids must be >= 0 (catalog image ids)")
        return arr

    def _check_vectors(self, vectors: npt.ArrayLike, what: str = "vectors") -> np.ndarray:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ValueError(f"{what} must have shape (n, {self.dim}), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} contain NaN or infinity")
        return np.ascontiguousarray(arr)

    def _check_add(
        self, ids: npt.ArrayLike, vectors: npt.ArrayLike, is_tile: npt.ArrayLike
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validate an ``add`` and keep only the last row of an id given twice."""
        id_arr = self._check_ids(ids)
        vec = self._check_vectors(vectors)
        tile = np.asarray(is_tile, dtype=bool).reshape(-1)
        if not (len(id_arr) == len(vec) == len(tile)):
            raise ValueError(
                f"ids, vectors and is_tile differ in length: {len(id_arr)}, {len(vec)}, {len(tile)}"
            )
        # Last occurrence wins, as if the rows had been added one after the other.
        rev_unique, rev_pos = np.unique(id_arr[::-1], return_index=True)
        if len(rev_unique) != len(id_arr):
            keep = np.sort(len(id_arr) - 1 - rev_pos)
            id_arr, vec, tile = id_arr[keep], vec[keep], tile[keep]
        return id_arr, vec, tile

    @staticmethod
    def _check_search(k: int, tiles: TileFilter) -> None:
        if not isinstance(k, int | np.integer) or k < 0:
            raise ValueError(f"k must be a non-negative integer, got {k!r}")
        if k > MAX_K:
            raise ValueError(f"k must be at most {MAX_K}, got {k}")
        if tiles not in (None, "only", "exclude"):
            raise ValueError(f"tiles must be None, 'only' or 'exclude', got {tiles!r}")


def is_milvus_uri(uri: str) -> bool:
    """True for what ``open_index`` sends to Milvus: a server URL or a Milvus Lite ``.db`` file."""
    lowered = uri.lower()
    return lowered.startswith(("milvus://", "http://", "https://", "tcp://", "unix:")) or (
        lowered.endswith(".db")
    )


def open_index(uri: str | None, data_dir: Path, dim: int, model: str) -> VectorIndex:
    """Open (or create) the vector index that ``uri`` names, for vectors of ``model``.

    - ``None``: the embedded HNSW index in ``data_dir/"vectors"`` (the default);
    - ``milvus://host:port``, ``http(s)://host:port``: a Milvus server or cluster;
    - a path ending in ``.db``: a Milvus Lite file (needs the ``milvus-lite`` package).

    A folder path (without ``.db``) opens an embedded index in that folder. Raises
    ``IndexMismatchError`` when the stored index holds another model's or size's vectors.
    """
    if dim <= 0:
        raise ValueError(f"dim must be positive, got {dim}")
    if not model:
        raise ValueError("model must be named: the index is only valid for one model")
    if uri is None or not uri.strip():
        from ogasearch.index.hnsw import HnswIndex

        return HnswIndex(Path(data_dir) / "vectors", dim=dim, model=model)
    uri = uri.strip()
    if "://" in uri and not is_milvus_uri(uri):
        raise ValueError(
            f"unknown vector index URI {uri!r}: use milvus://host:port, http(s)://host:port, "
            "a Milvus Lite file path ending in .db, or a folder for the embedded index"
        )
    if is_milvus_uri(uri):
        from ogasearch.index.milvus import MilvusIndex

        return MilvusIndex(uri, dim=dim, model=model)
    from ogasearch.index.hnsw import HnswIndex

    return HnswIndex(Path(uri), dim=dim, model=model)
