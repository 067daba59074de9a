"""Index stage and consistency check between the catalog and the vector index.

The index stage adds every embedded, not yet indexed image to the vector index, flushes the
index, then marks the rows ``indexed`` (flush first: a kill can only leave vectors the catalog
does not know about yet, which the next run re-adds harmlessly). ``check`` finds and repairs
any mismatch in either direction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Engine, Row, select, update
from sqlalchemy.engine import Connection

from ogasearch.catalog.runner import Pending, run
from ogasearch.catalog.schema import embeddings, images
from ogasearch.catalog.vectors import decode_vectors
from ogasearch.index.base import VectorIndex

BATCH = 2048


@dataclass
class IndexStats:
    indexed: int = 0


@dataclass
class CheckReport:
    """What ``check`` found; ``clean`` when nothing was wrong."""

    indexed_in_catalog: int = 0
    in_index: int = 0
    missing_from_index: list[int] = field(default_factory=list)  # catalog says indexed
    unknown_in_index: list[int] = field(default_factory=list)  # no such embedded image
    unmarked_in_index: list[int] = field(default_factory=list)  # in index, catalog says not
    embedded_without_vector: list[int] = field(default_factory=list)
    repaired: bool = False

    @property
    def clean(self) -> bool:
        return not (
            self.missing_from_index
            or self.unknown_in_index
            or self.unmarked_in_index
            or self.embedded_without_vector
        )


def _pending(model: str) -> Pending:
    """Embedded images (with a vector of ``model``) not in the index yet."""
    query = (
        select(images.c.id, images.c.parent_id, embeddings.c.vector)
        .join(embeddings, embeddings.c.image_id == images.c.id)
        .where(
            images.c.embed_state == "done",
            images.c.indexed.is_(False),
            embeddings.c.model == model,
        )
        .order_by(images.c.id)
    )
    return Pending(query, images)  # an indexed row is no longer pending: no cursor needed


def index_vectors(engine: Engine, index: VectorIndex) -> IndexStats:
    """Add every embedded, not yet indexed image to ``index``, flushed, then mark it."""
    stats = IndexStats()
    pending = _pending(index.model)
    total = pending.count(engine)
    if total == 0:
        return stats

    def process(conn: Connection, rows: Sequence[Row]) -> None:
        ids = np.array([r.id for r in rows], dtype=np.int64)
        vectors = decode_vectors([r.vector for r in rows], index.dim)
        is_tile = np.array([r.parent_id is not None for r in rows], dtype=bool)
        index.add(ids, vectors, is_tile)
        index.flush()
        conn.execute(update(images).where(images.c.id.in_(ids.tolist())).values(indexed=True))
        stats.indexed += len(rows)

    run(engine, pending, process, desc="index", unit="vec", batch=BATCH, total=total)
    return stats


def check(engine: Engine, index: VectorIndex, repair: bool = False) -> CheckReport:
    """Compare the catalog's ``indexed`` flags and embeddings with the index's ids."""
    report = CheckReport()
    in_index = set(index.ids().tolist())
    with engine.connect() as conn:
        marked = set(conn.execute(select(images.c.id).where(images.c.indexed.is_(True))).scalars())
        embedded = set(
            conn.execute(
                select(images.c.id)
                .join(embeddings, embeddings.c.image_id == images.c.id)
                .where(images.c.embed_state == "done", embeddings.c.model == index.model)
            ).scalars()
        )
        done = set(
            conn.execute(select(images.c.id).where(images.c.embed_state == "done")).scalars()
        )
    report.indexed_in_catalog = len(marked)
    report.in_index = len(in_index)
    report.missing_from_index = sorted(marked - in_index)
    report.unknown_in_index = sorted(in_index - embedded)
    report.unmarked_in_index = sorted((in_index & embedded) - marked)
    report.embedded_without_vector = sorted(done - embedded)
    if repair and not report.clean:
        if report.unknown_in_index:
            index.remove(np.array(report.unknown_in_index, dtype=np.int64))
            index.flush()
        with engine.begin() as conn:
            # Vectors the catalog does not know were indexed: re-added by the next index run.
            for ids, values in (
                (report.missing_from_index, {"indexed": False}),
                (report.unmarked_in_index, {"indexed": False}),
                (report.embedded_without_vector, {"embed_state": "pending", "indexed": False}),
            ):
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    conn.execute(update(images).where(images.c.id.in_(chunk)).values(**values))
        index_vectors(engine, index)
        report.repaired = True
    return report
