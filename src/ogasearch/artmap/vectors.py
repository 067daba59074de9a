"""What the map is laid out from: one vector per image, read through ``layout_vectors`` only."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Engine

from ogasearch.catalog.kinds import read_kind_vectors

BATCH = 5_000  # ids per query


def layout_vectors(engine: Engine, image_ids: list[int]) -> np.ndarray:
    """The vectors the map places ``image_ids`` by, one row per id in order (float32).

    The catalog's kind vectors (``catalog.kinds``: the kind of art, what "more like this"
    ranks by), of the catalog's current recipe; every id must have one."""
    found: dict[int, np.ndarray] = {}
    with engine.connect() as conn:
        for start in range(0, len(image_ids), BATCH):
            kinds = read_kind_vectors(conn, ids=image_ids[start : start + BATCH])
            found.update(zip(kinds.ids.tolist(), kinds.vectors, strict=True))
    missing = [i for i in image_ids if i not in found]
    if missing:
        raise KeyError(f"no kind vector for images {missing[:5]}")
    if not image_ids:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([found[i] for i in image_ids]).astype(np.float32)
