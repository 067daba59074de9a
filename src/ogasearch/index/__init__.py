"""Vector index keyed by the catalog's image id: embedded HNSW by default, Milvus by URI.

Use ``open_index(settings.vectors, settings.data, dim, model)``; see ``base.VectorIndex`` for
the interface every backend implements.
"""

from ogasearch.index.base import (
    MAX_K,
    Hit,
    IndexConflictError,
    IndexMismatchError,
    TileFilter,
    VectorIndex,
    VectorIndexError,
    open_index,
)
from ogasearch.index.hnsw import HnswIndex

__all__ = [
    "MAX_K",
    "Hit",
    "HnswIndex",
    "IndexConflictError",
    "IndexMismatchError",
    "TileFilter",
    "VectorIndex",
    "VectorIndexError",
    "open_index",
]
