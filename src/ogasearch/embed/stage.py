"""Embed stage: every image and tile -> canonical hashes, patch fingerprints, one
L2-normalised lookup vector and one kind vector ("more like this").

Claims ``images.embed_state = 'pending'`` rows in batches; for each batch, decodes the pixels
(tiles are cropped from their sheet), canonicalises them and takes their hashes
(``embed.signatures.prepare_image``), runs the feature extractor, and writes the vectors
(``embeddings.vector`` and ``kind_vectors.vector``, float16; the lookup vector compact once a
codec is fitted: ``embed.compact``), the fingerprints (``embeddings.patches``, one blob per
image: ``catalog.fingerprints``) and the hashes with
``embed_state = 'done'`` in one transaction. Undecodable images become ``failed`` with the
reason, and the batch goes on. Images whose vectors are of another model, or that have no
kind vector of the current recipe (a data folder from before kind vectors), are embedded again
from the blob store.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, Row, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from ogasearch.catalog.db import record_failure
from ogasearch.catalog.fingerprints import encode_fingerprints
from ogasearch.catalog.kinds import note_kind_change
from ogasearch.catalog.runner import Pending, run
from ogasearch.catalog.schema import embeddings, images, kind_vectors
from ogasearch.catalog.vectors import encode_vector
from ogasearch.embed.codec import CodedExtractor
from ogasearch.embed.compact import reencode
from ogasearch.embed.extractors import FeatureExtractor, get_extractor
from ogasearch.embed.signatures import Prepared, prepare_image
from ogasearch.extract.images import ImageRejected
from ogasearch.extract.pixels import PixelCache, pixel_rows, tile_box
from ogasearch.settings import Limits, Settings
from ogasearch.store.blobs import BlobStore


@dataclass
class EmbedStats:
    embedded: int = 0
    failed: int = 0


def _pending() -> Pending:
    """Images and tiles to embed, tiles next to their sheet (one decode per sheet)."""
    query = (
        pixel_rows()
        .where(images.c.embed_state == "pending")
        .order_by(func.coalesce(images.c.parent_id, images.c.id), images.c.id)
    )
    return Pending(query, images)  # an embedded or failed row is no longer pending


Job = tuple[int, str, tuple[int, int, int, int] | None]  # image id, blob, tile box


class _Preparer:
    """Decode -> canonicalise -> hashes + model input, for one image: what ``--workers``
    processes do in parallel (picklable; each process keeps its own sheet cache)."""

    def __init__(self, store_dir: Path, limits: Limits, size: int) -> None:
        self.store_dir = store_dir
        self.limits = limits
        self.size = size
        self._cache: PixelCache | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": None}

    def __call__(self, job: Job) -> tuple[int, Prepared | str]:
        ident, blob, box = job
        if self._cache is None:
            self._cache = PixelCache(BlobStore(self.store_dir), self.limits)
        try:
            return ident, prepare_image(self._cache.load(blob, box), self.size)
        except (ImageRejected, OSError, ValueError) as exc:
            return ident, f"cannot embed: {exc}"


def _pool(workers: int) -> ProcessPoolExecutor | None:
    if workers <= 1:
        return None
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))


def embed(
    engine: Engine,
    settings: Settings,
    store: BlobStore,
    extractor: FeatureExtractor | None = None,
) -> EmbedStats:
    """Embed every pending image and tile, ``settings.embed_batch`` per transaction."""
    stats = EmbedStats()
    extractor = extractor or get_extractor(settings.extractor, settings.models_dir)
    if isinstance(extractor, CodedExtractor):  # full vectors stored before the codec: encode
        reencode(engine, extractor)
    _requeue_stale(engine, extractor)
    pending = _pending()
    total = pending.count(engine)
    if total == 0:
        return stats
    prepare = _Preparer(store.root, settings.limits, extractor.input_size)
    pool = _pool(settings.workers)

    def process(conn: Connection, rows: Sequence[Row]) -> None:
        jobs = [(r.id, r.blob, tile_box(r)) for r in rows]
        if pool is None:
            prepared = [prepare(job) for job in jobs]
        else:  # rows come sorted by sheet: contiguous chunks keep sheets together
            chunk = max(1, len(jobs) // settings.workers)
            prepared = list(pool.map(prepare, jobs, chunksize=chunk))
        done: list[tuple[int, Prepared]] = []
        for ident, result in prepared:
            if isinstance(result, str):
                _record_failed(conn, ident, result)
                stats.failed += 1
            else:
                done.append((ident, result))
        if done:
            _record_embedded(conn, extractor, done)
            stats.embedded += len(done)

    try:
        run(
            engine,
            pending,
            process,
            desc="embed",
            unit="img",
            batch=settings.embed_batch,
            total=total,
        )
    finally:
        if pool is not None:
            pool.shutdown()
    return stats


def _requeue_stale(engine: Engine, extractor: FeatureExtractor) -> None:
    """Vectors of another model (or another version of it) are stale, and so is an embedded
    image without a current kind vector: embed those again."""
    current_kind = select(kind_vectors.c.image_id).where(
        (kind_vectors.c.model == extractor.kind_name) & (kind_vectors.c.dim == extractor.kind_dim)
    )
    with engine.begin() as conn:
        stale = select(embeddings.c.image_id).where(
            (embeddings.c.model != extractor.name)
            | (embeddings.c.dim != extractor.dim)
            | embeddings.c.image_id.not_in(current_kind)
        )
        conn.execute(
            update(images)
            .where(images.c.id.in_(stale))
            .values(embed_state="pending", indexed=False)
        )


def _record_failed(conn: Connection, ident: int, reason: str) -> None:
    conn.execute(
        update(images).where(images.c.id == ident).values(embed_state="failed", error=reason)
    )
    record_failure(conn, "embed", f"image {ident}", reason)


def _record_embedded(
    conn: Connection, extractor: FeatureExtractor, done: list[tuple[int, Prepared]]
) -> None:
    """Write the batch's vectors, patch fingerprints and hashes, and mark the images done."""
    vectors, kinds = extractor.embed_with_kind(np.stack([prepared.array for _, prepared in done]))
    ids = [ident for ident, _ in done]
    conn.execute(delete(embeddings).where(embeddings.c.image_id.in_(ids)))
    conn.execute(delete(kind_vectors).where(kind_vectors.c.image_id.in_(ids)))
    conn.execute(
        insert(kind_vectors),
        [
            {
                "image_id": ident,
                "model": extractor.kind_name,
                "dim": extractor.kind_dim,
                "vector": encode_vector(vec),
            }
            for ident, vec in zip(ids, kinds, strict=True)
        ],
    )
    note_kind_change(conn)
    conn.execute(
        insert(embeddings),
        [
            {
                "image_id": ident,
                "model": extractor.name,
                "dim": extractor.dim,
                "vector": encode_vector(vec),
                "patches": encode_fingerprints(prepared.hashes.patches),
            }
            for (ident, prepared), vec in zip(done, vectors, strict=True)
        ],
    )
    for ident, prepared in done:
        hashes = prepared.hashes
        conn.execute(
            update(images)
            .where(images.c.id == ident)
            .values(
                embed_state="done",
                indexed=False,
                canonical_sha256=hashes.canonical_sha256,
                structure_sha256=hashes.structure_sha256,
            )
        )
