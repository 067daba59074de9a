"""Compact vectors: the codec itself, and a data folder of full vectors upgraded by ``update``
(fitted, re-encoded, re-indexed, nothing crawled or embedded again), then refitted."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import create_engine, text

from ogasearch.catalog import open_catalog
from ogasearch.embed.codec import CodecError, CodedExtractor, VectorCodec, fit_codec
from ogasearch.embed.compact import load_codec, save_codec
from ogasearch.localsite import RunningSite, build_site, serve_site
from ogasearch.search.service import SearchService
from ogasearch.settings import load_settings
from support.runs import run_cli, sqlite_url, update_args

MODEL = "effnet-lite0-128"


def _clustered(rng: np.random.Generator, n: int, dim: int = 96, rank: int = 12) -> np.ndarray:
    """Unit vectors near a ``rank``-dimensional subspace, like image embeddings."""
    basis = rng.standard_normal((rank, dim))
    x = rng.standard_normal((n, rank)) @ basis + 0.05 * rng.standard_normal((n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class _Fixed:
    """A stand-in extractor: returns the rows it is given (``embed`` of vectors)."""

    name = "fixed"
    dim = 96
    input_size = 8
    kind_name = "fixed/kind"
    kind_dim = 8

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return batch

    def embed_with_kind(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return batch, batch[:, : self.kind_dim]


def test_codec_round_trip_keeps_neighbours_and_refit_changes_its_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = _clustered(rng, 400)
    codec = fit_codec(vectors[:300], "fixed", dim=24)
    engine = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    assert load_codec(engine, "fixed") is None
    assert save_codec(engine, codec, replace=False).ident == codec.ident
    loaded = load_codec(engine, "fixed")
    assert loaded is not None and loaded.ident == codec.ident and loaded.dim == 24
    np.testing.assert_array_equal(loaded.components, codec.components)
    held_out = vectors[300:]
    codes = loaded.project(held_out)
    assert codes.shape == (100, 24)
    np.testing.assert_allclose(np.linalg.norm(codes, axis=1), 1.0, rtol=1e-5)
    stored = codes.astype(np.float16).astype(np.float32)  # as the catalog keeps them
    full_nn = np.argsort(-(held_out @ held_out.T), axis=1)[:, 1]
    code_nn = np.argsort(-(codes @ stored.T), axis=1)[:, 1]
    assert np.mean(full_nn == code_nn) >= 0.95
    coded = CodedExtractor(_Fixed(), loaded)
    assert coded.name == f"fixed+{codec.ident}" and coded.dim == 24
    np.testing.assert_allclose(coded.embed(held_out), codes, atol=1e-6)
    refitted = fit_codec(_clustered(np.random.default_rng(1), 300), "fixed", dim=24)
    assert refitted.ident != codec.ident
    # a worker that fitted second keeps the first codec; a refit replaces it
    assert save_codec(engine, refitted, replace=False).ident == codec.ident
    assert save_codec(engine, refitted, replace=True).ident == refitted.ident
    engine.dispose()


def test_codec_refuses_what_it_cannot_do() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(CodecError, match="more than 24 vectors"):
        fit_codec(_clustered(rng, 20), "fixed", dim=24)
    other = fit_codec(_clustered(rng, 100), "another", dim=24)
    with pytest.raises(CodecError, match="refit"):
        CodedExtractor(_Fixed(), other)
    with pytest.raises(CodecError, match="not a vector codec"):
        VectorCodec.from_bytes(b"not a codec", "here")


# -- a data folder of full vectors, upgraded -------------------------------------------------

SMALL = {"OGASEARCH_CODEC_DIM": "48", "OGASEARCH_CODEC_MIN_VECTORS": "64"}
NEVER = {"OGASEARCH_CODEC_MIN_VECTORS": "1000000"}  # as before compact vectors: full only


@pytest.fixture(scope="module")
def site() -> Iterator[RunningSite]:
    with serve_site(build_site()) as running:
        yield running


def _rows(data: Path, query: str) -> list[tuple]:
    engine = create_engine(sqlite_url(data))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query))]
    finally:
        engine.dispose()


def _codec(data: Path) -> VectorCodec | None:
    engine = create_engine(sqlite_url(data))
    try:
        return load_codec(engine, MODEL)
    finally:
        engine.dispose()


def _finds_itself(data: Path, ids: list[int]) -> list[int]:
    """The ids whose own pixels, as a query, do not come back first."""
    service = SearchService(load_settings(data=data, codec_dim=48, codec_min_vectors=64))
    try:
        assert service.index_outdated() is None
        misses = []
        for image_id in ids:
            image = Image.open(io.BytesIO(service.image_png(image_id)))
            if image_id not in service.by_image(image, k=5).results[0].group_ids:
                misses.append(image_id)
        return misses
    finally:
        service.close()


@pytest.mark.slow
def test_full_vectors_are_compacted_by_the_next_update_then_refitted(
    site: RunningSite, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    stages = ("crawl", "download", "extract", "tiles", "embed", "index")
    run_cli(data, site.base_url, *update_args(stages), timeout=900, **NEVER)
    before = _rows(data, "SELECT image_id, model, dim, length(vector) FROM embeddings")
    assert {(m, d, n) for _, m, d, n in before} == {(MODEL, 960, 1920)}
    assert (data / "vectors" / f"{MODEL}-960").is_dir()
    pages = _rows(data, "SELECT id, fetched_at FROM pages")
    service = SearchService(load_settings(data=data, codec_dim=48, codec_min_vectors=64))
    assert "not compacted yet" in (service.index_outdated() or "")
    service.close()

    proc = run_cli(data, site.base_url, *update_args(stages), timeout=900, **SMALL)
    assert '"embedded": 0' in proc.stdout  # re-encoded, not embedded again
    codec = _codec(data)
    assert codec is not None and codec.dim == 48
    coded = f"{MODEL}+{codec.ident}"
    after = _rows(data, "SELECT image_id, model, dim, length(vector) FROM embeddings")
    assert sorted(i for i, *_ in after) == sorted(i for i, *_ in before)
    assert {(m, d, n) for _, m, d, n in after} == {(coded, 48, 96)}
    assert _rows(data, "SELECT count(*) FROM images WHERE embed_state = 'done' AND NOT indexed")[
        0
    ] == (0,)
    assert _rows(data, "SELECT id, fetched_at FROM pages") == pages  # nothing re-crawled
    assert not (data / "vectors" / f"{MODEL}-960").exists()
    assert (data / "vectors" / f"{coded}-48").is_dir()
    ids = [i for (i,) in _rows(data, "SELECT id FROM images WHERE indexed ORDER BY id")]
    assert _finds_itself(data, ids[::3]) == []

    proc = run_cli(data, site.base_url, "vectors", "--refit", timeout=900, **SMALL)
    refitted = _codec(data)
    assert refitted is not None and refitted.ident != codec.ident
    assert refitted.ident in proc.stdout
    models = _rows(data, "SELECT DISTINCT model FROM embeddings")
    assert models == [(f"{MODEL}+{refitted.ident}",)]
    assert _finds_itself(data, ids[::3]) == []
