"""How kind vectors ("more like this") are read from the catalog's ``kind_vectors`` table,
and the change counter that tells a reader its copy is stale.

The embed stage writes one row per image (float16 bytes, ``catalog.vectors``) and counts the
change in ``meta['kind_changes']`` in the same transaction; ``read_kind_vectors`` is the one
way to read them back, for a list of image ids or for all of them (the search's exact scan,
a map of all art: ``read_kind_vectors(conn, ids=[...]).vectors``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, Integer, Text, cast, func, select, update

from ogasearch.catalog.dialect import insert_ignore
from ogasearch.catalog.schema import images, kind_vectors, meta
from ogasearch.catalog.vectors import decode_vectors

CHANGES_KEY = "kind_changes"


@dataclass(frozen=True)
class KindVectors:
    """Kind vectors of one recipe: ``ids[i]`` (``is_tile[i]``) has row ``vectors[i]``."""

    ids: np.ndarray  # int64
    is_tile: np.ndarray  # bool
    vectors: np.ndarray  # (n, dim) float32, unit rows


def kind_recipe(conn: Connection) -> str | None:
    """The recipe most kind vectors have (the only one, but during an upgrade), or None."""
    column = kind_vectors.c.model
    query = select(column).group_by(column).order_by(func.count().desc(), column).limit(1)
    return conn.execute(query).scalar()


def read_kind_vectors(
    conn: Connection, model: str | None = None, ids: Sequence[int] | None = None
) -> KindVectors:
    """The kind vectors of recipe ``model`` (``FeatureExtractor.kind_name``; None: the
    catalog's, ``kind_recipe``) of ``ids`` (all when None), ordered by image id; ids without
    one are left out."""
    model = model if model is not None else kind_recipe(conn)
    query = (
        select(
            kind_vectors.c.image_id,
            images.c.parent_id.is_not(None).label("is_tile"),
            kind_vectors.c.dim,
            kind_vectors.c.vector,
        )
        .join(images, images.c.id == kind_vectors.c.image_id)
        .where(kind_vectors.c.model == model)
        .order_by(kind_vectors.c.image_id)
    )
    if ids is not None:
        query = query.where(kind_vectors.c.image_id.in_(list(ids)))
    rows = conn.execute(query).all()
    dim = int(rows[0].dim) if rows else 0
    return KindVectors(
        np.array([r.image_id for r in rows], dtype=np.int64),
        np.array([bool(r.is_tile) for r in rows], dtype=bool),
        decode_vectors([r.vector for r in rows], dim),
    )


def kind_changes(conn: Connection) -> int:
    value = conn.execute(select(meta.c.value).where(meta.c.key == CHANGES_KEY)).scalar()
    return int(value or 0)


def note_kind_change(conn: Connection) -> None:
    """Count one change of the kind vectors, in the caller's transaction."""
    bump = (
        update(meta)
        .where(meta.c.key == CHANGES_KEY)
        .values(value=cast(cast(meta.c.value, Integer) + 1, Text))
    )
    if conn.execute(bump).rowcount == 0:  # the first change in this catalog
        insert_ignore(conn, meta, {"key": CHANGES_KEY, "value": "0"}, ["key"])
        conn.execute(bump)
