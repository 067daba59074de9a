"""The catalog's side of compact vectors: fitting the codec, re-encoding, refitting.

Life of a data folder (``embed.codec`` holds the codec itself):

1. Until the catalog holds ``Settings.codec_min_vectors`` vectors, there is no codec: the embed
   stage stores full vectors (float16) and the index holds them (a fresh folder's first update
   of a small site stays there; a codec fitted on fewer vectors would not generalise).
2. At the end of the embed stage (``pipeline.run_embed``), once there are enough,
   ``fit_from_catalog`` fits the codec on a random sample of the stored full vectors and
   stores it in the catalog (a codec another worker stored first wins); ``reencode`` then
   replaces every full vector by its code (batch by batch, one transaction each, with
   progress: a kill resumes where it stopped) and marks the image not indexed, so the index
   stage builds the index of the new vector space. A data folder from before compact vectors
   takes the same path on its next ``update``: nothing is crawled, downloaded or embedded
   again.
3. ``refit`` (``ogasearch vectors --refit``) fits a new codec. Codes cannot be refitted (the
   directions they dropped are gone), so it re-embeds a sample of images from the blob store
   for full vectors; the new codec's name differs from the one stored with every vector, so
   the next embed run re-embeds every image (from the blob store, no re-crawl).

A ``serve`` started before a codec is fitted keeps the previous vector space (its index is in
memory) until it is restarted; ``compaction_problem`` is what it says when it starts on a
catalog whose vectors are not in the form it searches.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

import numpy as np
from sqlalchemy import ColumnElement, Engine, Row, bindparam, func, select, text, update
from sqlalchemy.engine import Connection

from ogasearch.catalog.dialect import insert_ignore
from ogasearch.catalog.runner import Pending, run
from ogasearch.catalog.schema import codecs, embeddings, images
from ogasearch.catalog.vectors import decode_vectors, encode_vector
from ogasearch.embed.codec import LOOKUP, CodedExtractor, VectorCodec, fit_codec
from ogasearch.embed.extractors import FeatureExtractor
from ogasearch.embed.signatures import prepare_image
from ogasearch.extract.images import ImageRejected
from ogasearch.extract.pixels import PixelCache, pixel_rows, tile_box
from ogasearch.progress import progress
from ogasearch.settings import Settings
from ogasearch.store.blobs import BlobStore

log = logging.getLogger(__name__)

FIT_SAMPLE = 20_000  # vectors a codec is fitted on at most (960 x 20k: ~1 s of SVD)
BATCH = 2_000


def _full(model: FeatureExtractor) -> ColumnElement[bool]:
    """Rows holding ``model``'s full vectors."""
    return (embeddings.c.model == model.name) & (embeddings.c.dim == model.dim)


def full_vectors(engine: Engine, model: FeatureExtractor) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(_full(model))).scalar_one())


def load_codec(engine: Engine, model: str, kind: str = LOOKUP) -> VectorCodec | None:
    """The catalog's codec of ``model``'s vectors of ``kind``; None when none is fitted yet."""
    with engine.connect() as conn:
        payload = conn.execute(
            select(codecs.c.payload).where(codecs.c.model == model, codecs.c.kind == kind)
        ).scalar()
    if payload is None:
        return None
    return VectorCodec.from_bytes(bytes(payload), f"the {kind} codec of {model} in the catalog")


def save_codec(engine: Engine, codec: VectorCodec, replace: bool) -> VectorCodec:
    """Store ``codec``; unless ``replace``, a codec another worker stored first is kept.
    Return the codec the catalog holds now (the one everybody projects with)."""
    values = {"model": codec.model, "kind": codec.kind, "payload": codec.to_bytes()}
    with engine.begin() as conn:
        if not insert_ignore(conn, codecs, values, ["model", "kind"]) and replace:
            conn.execute(
                update(codecs)
                .where(codecs.c.model == codec.model, codecs.c.kind == codec.kind)
                .values(payload=values["payload"])
            )
    stored = load_codec(engine, codec.model, codec.kind)
    assert stored is not None
    return stored


def fit_from_catalog(
    engine: Engine, model: FeatureExtractor, settings: Settings
) -> VectorCodec | None:
    """Fit and store a codec on a sample of the catalog's full vectors of ``model``; None
    (and nothing stored) while there are fewer than ``settings.codec_min_vectors``."""
    count = full_vectors(engine, model)
    needed = max(settings.codec_min_vectors, settings.codec_dim + 1)
    if count < needed:
        log.info("%d full vectors: a vector codec is fitted from %d on", count, needed)
        return None
    with engine.connect() as conn:
        blobs = list(
            conn.execute(
                select(embeddings.c.vector)
                .where(_full(model))
                .order_by(func.random())
                .limit(FIT_SAMPLE)
            ).scalars()
        )
    codec = fit_codec(decode_vectors(blobs, model.dim), model.name, dim=settings.codec_dim)
    codec = save_codec(engine, codec, replace=False)
    log.info("vector codec %s fitted on %d vectors", codec.ident, codec.fitted_on)
    return codec


def reencode(engine: Engine, coded: CodedExtractor) -> int:
    """Replace every full vector of ``coded.inner`` by its code; the images leave the index
    (the index stage adds them to the new space's). Return how many were re-encoded."""
    query = (
        select(embeddings.c.image_id, embeddings.c.vector)
        .where(_full(coded.inner))
        .order_by(embeddings.c.image_id)
    )
    pending = Pending(query, embeddings)
    total = pending.count(engine)
    if not total:
        return 0

    def process(conn: Connection, rows: Sequence[Row]) -> None:
        codes = coded.codec.project(decode_vectors([r.vector for r in rows], coded.inner.dim))
        ids = [int(r.image_id) for r in rows]
        conn.execute(
            update(embeddings)
            .where(embeddings.c.image_id == bindparam("ident"))
            .values(model=coded.name, dim=coded.dim, vector=bindparam("code")),
            [{"ident": i, "code": encode_vector(c)} for i, c in zip(ids, codes, strict=True)],
        )
        conn.execute(update(images).where(images.c.id.in_(ids)).values(indexed=False))

    done = run(
        engine, pending, process, desc="compact vectors", unit="vec", batch=BATCH, total=total
    )
    if engine.dialect.name == "sqlite":  # give the freed pages back: the file shrinks
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM"))
    return done


def refit(
    engine: Engine,
    settings: Settings,
    store: BlobStore,
    model: FeatureExtractor,
    sample: int = FIT_SAMPLE,
) -> VectorCodec:
    """Fit a new codec on full vectors of a random sample of embedded images, embedded again
    from the blob store, and save it; the next embed run re-embeds every image with it."""
    with engine.connect() as conn:
        rows = conn.execute(
            pixel_rows().where(images.c.embed_state == "done").order_by(func.random()).limit(sample)
        ).all()
    cache = PixelCache(store, settings.limits)
    vectors: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    with progress(len(rows), "embed sample", unit="img") as bar:
        for n, row in enumerate(rows, 1):
            # an image that cannot be embedded: the embed stage records why; a sample skips it
            with contextlib.suppress(ImageRejected, OSError, ValueError):
                pixels = cache.load(row.blob, tile_box(row))
                batch.append(prepare_image(pixels, model.input_size).array)
            if len(batch) == settings.embed_batch or (n == len(rows) and batch):
                vectors.append(model.embed(np.stack(batch)))
                batch = []
            bar.update(1)
    full = np.concatenate(vectors) if vectors else np.zeros((0, model.dim), np.float32)
    codec = save_codec(engine, fit_codec(full, model.name, dim=settings.codec_dim), replace=True)
    log.info("vector codec %s refitted on %d images", codec.ident, codec.fitted_on)
    return codec


def compaction_problem(
    engine: Engine, extractor: FeatureExtractor, model: FeatureExtractor, settings: Settings
) -> str | None:
    """One line when stored vectors are not those ``extractor`` searches (an update left to
    do), else None."""
    with engine.connect() as conn:
        other = int(
            conn.execute(
                select(func.count()).where(embeddings.c.model != extractor.name)
            ).scalar_one()
        )
    if other:
        return (
            f"{other} stored vectors are not in the form this ogasearch searches"
            f" ({extractor.name}, {extractor.dim}-d): run `ogasearch update` to re-encode them"
        )
    if extractor is model and full_vectors(engine, model) >= settings.codec_min_vectors:
        return "the vectors are not compacted yet: run `ogasearch update` to fit the codec"
    return None
