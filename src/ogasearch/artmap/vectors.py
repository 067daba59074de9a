"""What the map is laid out from: one vector per image, read through ``layout_vectors`` only."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Engine, select

from ogasearch.catalog.schema import embeddings
from ogasearch.catalog.vectors import decode_vectors

BATCH = 5_000  # ids per query


def layout_vectors(engine: Engine, image_ids: list[int]) -> np.ndarray:
    """The vectors the map places ``image_ids`` by, one row per id in order (float32).

    Today the catalog's lookup vectors (``catalog.vectors``); every id must have one."""
    found: dict[int, bytes] = {}
    dim = 0
    with engine.connect() as conn:
        for start in range(0, len(image_ids), BATCH):
            chunk = image_ids[start : start + BATCH]
            rows = conn.execute(
                select(embeddings.c.image_id, embeddings.c.dim, embeddings.c.vector).where(
                    embeddings.c.image_id.in_(chunk)
                )
            )
            for image_id, size, blob in rows:
                found[int(image_id)] = bytes(blob)
                dim = int(size)
    missing = [i for i in image_ids if i not in found]
    if missing:
        raise KeyError(f"no vector for images {missing[:5]}")
    return decode_vectors([found[i] for i in image_ids], dim)
