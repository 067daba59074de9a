"""How vectors are stored in the catalog's ``embeddings`` table: little-endian float16 bytes.

The catalog holds the copy of record of every vector; the vector index (``ogasearch.index``) is
rebuilt from it. Writers (the embed stage) encode, readers (the index stage, the search service,
``check``) decode.
"""

from __future__ import annotations

import numpy as np

VECTOR_DTYPE = np.dtype("<f2")


def encode_vector(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=VECTOR_DTYPE).tobytes()


def decode_vectors(blobs: list[bytes], dim: int) -> np.ndarray:
    """float16 bytes -> (n, dim) float32, re-normalised."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    arr = np.frombuffer(b"".join(blobs), dtype=VECTOR_DTYPE).reshape(len(blobs), dim)
    arr = arr.astype(np.float32)
    return arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)
