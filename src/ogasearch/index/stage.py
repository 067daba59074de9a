"""Index stage and consistency check between the catalog, the vector index and the patch
table.

The index stage adds every embedded, not yet indexed image to the vector index, flushes the
index, then marks the rows ``indexed`` (flush first: a kill can only leave vectors the catalog
does not know about yet, which the next run re-adds harmlessly). Each batch also counts one
change of the fingerprints the index holds (``catalog.fingerprints.note_patch_change``); at the
end, when the patch table (``index.patches``) was built from an older count, it is rebuilt
from the catalog's fingerprints of every indexed image, so vectors and patches agree after
every run (a run killed before that point leaves the table behind the counter: the next run
rebuilds it). A catalog from before version 2 has its fingerprint rows moved first
(``catalog.migrate``). ``check`` finds and repairs any mismatch in either direction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Engine, Row, select, update
from sqlalchemy.engine import Connection

from ogasearch.catalog.fingerprints import KEY_DTYPE, note_patch_change, patch_changes
from ogasearch.catalog.migrate import move_legacy_patches
from ogasearch.catalog.runner import Pending, ProcessBatch, run
from ogasearch.catalog.schema import embeddings, images
from ogasearch.catalog.vectors import decode_vectors
from ogasearch.index.base import VectorIndex
from ogasearch.index.patches import PatchArrays, PatchTable

BATCH = 2048


@dataclass
class IndexStats:
    indexed: int = 0
    fingerprints_moved: int = 0  # images whose version-1 fingerprint rows were moved
    patch_table: int | None = None  # generation written by this run (None: it was current)


@dataclass
class CheckReport:
    """What ``check`` found; ``clean`` when nothing was wrong."""

    indexed_in_catalog: int = 0
    in_index: int = 0
    missing_from_index: list[int] = field(default_factory=list)  # catalog says indexed
    unknown_in_index: list[int] = field(default_factory=list)  # no such embedded image
    unmarked_in_index: list[int] = field(default_factory=list)  # in index, catalog says not
    embedded_without_vector: list[int] = field(default_factory=list)
    patch_table_stale: str | None = None  # why the patch table differs from the catalog
    repaired: bool = False

    @property
    def clean(self) -> bool:
        return not (
            self.missing_from_index
            or self.unknown_in_index
            or self.unmarked_in_index
            or self.embedded_without_vector
            or self.patch_table_stale
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


def index_vectors(engine: Engine, index: VectorIndex, patches: PatchTable) -> IndexStats:
    """Add every embedded, not yet indexed image to ``index``, flushed, then mark it; then
    bring ``patches`` in step with the catalog."""
    stats = IndexStats(fingerprints_moved=move_legacy_patches(engine))
    pending = _pending(index.model)
    total = pending.count(engine)
    if total:
        process = _indexer(index, stats)
        run(engine, pending, process, desc="index", unit="vec", batch=BATCH, total=total)
    if sync_patches(engine, patches):
        stats.patch_table = patches.generation
    return stats


def _indexer(index: VectorIndex, stats: IndexStats) -> ProcessBatch:
    """One batch: vectors into the index, flushed, then the rows marked (one transaction)."""

    def process(conn: Connection, rows: Sequence[Row]) -> None:
        ids = np.array([r.id for r in rows], dtype=np.int64)
        vectors = decode_vectors([r.vector for r in rows], index.dim)
        is_tile = np.array([r.parent_id is not None for r in rows], dtype=bool)
        index.add(ids, vectors, is_tile)
        index.flush()
        conn.execute(update(images).where(images.c.id.in_(ids.tolist())).values(indexed=True))
        note_patch_change(conn)
        stats.indexed += len(rows)

    return process


def sync_patches(engine: Engine, patches: PatchTable) -> bool:
    """Rebuild the patch table from the catalog when it was built from an older change count
    (or is missing); True if a new generation was written."""
    with engine.connect() as conn:
        changes = patch_changes(conn)
    return patches.rebuild(changes, lambda: catalog_patches(engine))


def catalog_patches(engine: Engine) -> tuple[PatchArrays, int]:
    """The patch table of every indexed image's fingerprints, and the change count read first
    (so the table is at least as new as the count it records)."""
    ids: list[int] = []
    blobs: list[bytes] = []
    with engine.connect() as conn:
        changes = patch_changes(conn)
        query = (
            select(embeddings.c.image_id, embeddings.c.patches)
            .join(images, images.c.id == embeddings.c.image_id)
            .where(images.c.indexed.is_(True), embeddings.c.patches.is_not(None))
        )
        for ident, blob in conn.execution_options(yield_per=10_000).execute(query):
            ids.append(int(ident))
            blobs.append(bytes(blob))
    counts = np.fromiter((len(b) // KEY_DTYPE.itemsize for b in blobs), np.int64)
    values = np.frombuffer(b"".join(blobs), dtype=KEY_DTYPE).astype(np.uint32)
    return PatchArrays.build(np.array(ids, dtype=np.int64), counts, values), changes


def check(
    engine: Engine, index: VectorIndex, patches: PatchTable, repair: bool = False
) -> CheckReport:
    """Compare the catalog's ``indexed`` flags and embeddings with the index's ids, and the
    patch table with the catalog's fingerprints of the indexed images."""
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
    patches.refresh()
    expected = catalog_patches(engine)[0]
    if patches.problem is not None and (len(expected) or not patches.missing):
        report.patch_table_stale = patches.problem  # (none yet and none needed is clean)
    elif not patches.arrays.equals(expected):
        report.patch_table_stale = f"the patch table in {patches.folder} differs from the catalog"
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
            note_patch_change(conn)  # fewer indexed images: the patch table is behind
        index_vectors(engine, index, patches)  # the change counted above: table rebuilt
        report.repaired = True
    return report
