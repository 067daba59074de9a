"""Embed stage: every image and tile -> canonical hashes + one L2-normalised vector.

Claims ``images.embed_state = 'pending'`` rows in batches; for each batch, decodes the pixels
(tiles are cropped from their sheet), canonicalises them (``embed.preprocess``), runs the
feature extractor, and writes the vectors (``embeddings``, float16) and hashes with
``embed_state = 'done'`` in one transaction. Undecodable images become ``failed`` with the
reason, and the batch goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.orm import aliased

from ogasearch.catalog import claim, record_failure
from ogasearch.catalog.schema import embeddings, images
from ogasearch.embed.extractors import FeatureExtractor, get_extractor
from ogasearch.embed.preprocess import canonicalise, pixel_hash, prepare_canonical, structure_hash
from ogasearch.extract.images import ImageRejected
from ogasearch.progress import progress
from ogasearch.settings import Settings
from ogasearch.store.blobs import BlobStore
from ogasearch.store.pixels import PixelCache

VECTOR_DTYPE = np.dtype("<f2")


@dataclass
class EmbedStats:
    embedded: int = 0
    failed: int = 0


def open_extractor(settings: Settings) -> FeatureExtractor:
    return get_extractor(settings.extractor, settings.models_dir)


def encode_vector(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=VECTOR_DTYPE).tobytes()


def decode_vectors(blobs: list[bytes], dim: int) -> np.ndarray:
    """float16 bytes -> (n, dim) float32, re-normalised."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    arr = np.frombuffer(b"".join(blobs), dtype=VECTOR_DTYPE).reshape(len(blobs), dim)
    arr = arr.astype(np.float32)
    return arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)


def _pending_query():  # type: ignore[no-untyped-def]
    parent = aliased(images)
    blob = func.coalesce(parent.c.sha256, images.c.sha256)
    return (
        select(
            images.c.id,
            images.c.parent_id,
            blob.label("blob"),
            images.c.tile_x,
            images.c.tile_y,
            images.c.tile_w,
            images.c.tile_h,
        )
        .select_from(images.outerjoin(parent, parent.c.id == images.c.parent_id))
        .where(images.c.embed_state == "pending")
        .order_by(func.coalesce(images.c.parent_id, images.c.id), images.c.id)
    )


def embed(
    engine: Engine,
    settings: Settings,
    store: BlobStore,
    extractor: FeatureExtractor | None = None,
) -> EmbedStats:
    stats = EmbedStats()
    extractor = extractor or open_extractor(settings)
    with engine.begin() as conn:
        # Vectors of another model (or another version of it) are stale: embed those again.
        stale = select(embeddings.c.image_id).where(
            (embeddings.c.model != extractor.name) | (embeddings.c.dim != extractor.dim)
        )
        conn.execute(
            update(images)
            .where(images.c.id.in_(stale))
            .values(embed_state="pending", indexed=False)
        )
        total = conn.execute(
            select(func.count()).where(images.c.embed_state == "pending")
        ).scalar_one()
    if total == 0:
        return stats
    size = extractor.input_size
    pixels_of = PixelCache(store, settings.limits)
    with progress(total, "embed", "img") as bar:
        while True:
            with claim(engine, _pending_query(), settings.embed_batch, images) as (conn, rows):
                if not rows:
                    break
                done: list[tuple[int, str, str | None]] = []
                inputs: list[np.ndarray] = []
                for row in rows:
                    box = (
                        None
                        if row.parent_id is None
                        else (row.tile_x, row.tile_y, row.tile_w, row.tile_h)
                    )
                    try:
                        pixels = pixels_of.load(row.blob, box)
                        canon = canonicalise(pixels).image
                        inputs.append(prepare_canonical(canon, size))
                        done.append((row.id, pixel_hash(canon), structure_hash(canon)))
                    except (ImageRejected, OSError, ValueError) as exc:
                        reason = f"cannot embed: {exc}"
                        conn.execute(
                            update(images)
                            .where(images.c.id == row.id)
                            .values(embed_state="failed", error=reason)
                        )
                        record_failure(conn, "embed", f"image {row.id}", reason)
                        stats.failed += 1
                if done:
                    vectors = extractor.embed(np.stack(inputs))
                    ids = [d[0] for d in done]
                    conn.execute(delete(embeddings).where(embeddings.c.image_id.in_(ids)))
                    conn.execute(
                        insert(embeddings),
                        [
                            {
                                "image_id": ident,
                                "model": extractor.name,
                                "dim": extractor.dim,
                                "vector": encode_vector(vec),
                            }
                            for ident, vec in zip(ids, vectors, strict=True)
                        ],
                    )
                    for ident, canonical_sha, structure_sha in done:
                        conn.execute(
                            update(images)
                            .where(images.c.id == ident)
                            .values(
                                embed_state="done",
                                indexed=False,
                                canonical_sha256=canonical_sha,
                                structure_sha256=structure_sha,
                            )
                        )
                    stats.embedded += len(done)
                bar.update(len(rows))
    return stats
