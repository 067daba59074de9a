"""Kind vectors ("more like this"): a palette swap stays near its original, the embed stage
stores one per image, ``similar`` ranks by them, and a data folder from before them gets them
on the next ``update``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import Engine, func, select, text, update

from ogasearch.catalog import open_catalog
from ogasearch.catalog.kinds import read_kind_vectors
from ogasearch.catalog.schema import SCHEMA_VERSION, embeddings, images, kind_vectors, meta
from ogasearch.embed.extractors import OnnxEfficientNet
from ogasearch.embed.preprocess import prepare
from ogasearch.search.service import SearchService
from support.datasets import CRAWL_TILES
from support.search_data import SearchData, search_data

pytest.importorskip("torch", reason="torch (the 'model' extra) exports the ONNX model once")
pytestmark = pytest.mark.usefixtures("crawl_tiles")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SearchData:
    return search_data(tmp_path_factory)


def _engine(data: SearchData) -> Engine:
    return open_catalog(f"sqlite:///{data.settings.data / 'catalog.sqlite'}", create=False)


def _hue_rotated(img: Image.Image, turn: int) -> Image.Image:
    """A palette swap: every colour's hue turned (HSV), alpha and lightness kept."""
    rgba = np.asarray(img.convert("RGBA"))
    hsv = np.asarray(Image.fromarray(rgba[..., :3]).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + turn) % 256
    channels = [Image.fromarray(np.ascontiguousarray(hsv[..., c])) for c in range(3)]
    rgb = np.asarray(Image.merge("HSV", channels).convert("RGB"))
    return Image.fromarray(np.dstack([rgb, rgba[..., 3]]))


def test_a_palette_swap_is_nearest_to_its_original_in_kind_space(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    extractor = OnnxEfficientNet("lite0", 128, models_dir=tmp_path_factory.mktemp("models"))
    atlas = Image.open(CRAWL_TILES.path / "player.png").convert("RGBA")
    sprites = [atlas.crop((x, y, x + 32, y + 32)) for x, y in [(0, 0), (32, 0), (64, 32)]]
    sprites += [
        Image.open(CRAWL_TILES.path / "main.png").convert("RGBA").crop((x, 0, x + 32, 32))
        for x in (0, 64, 128)
    ]
    swaps = [_hue_rotated(s, 85) for s in sprites]  # about 120 degrees
    batch = np.stack([prepare(s, 128) for s in sprites + swaps])
    lookup, kind = extractor.embed_with_kind(batch)
    assert kind.shape == (len(batch), extractor.kind_dim) and kind.dtype == np.float32
    assert extractor.kind_dim * 2 <= 512  # stored as float16: at most 512 bytes per image
    assert np.allclose(np.linalg.norm(kind, axis=1), 1.0, atol=1e-5)
    assert np.allclose(lookup, extractor.embed(batch), atol=1e-6)
    n = len(sprites)
    kind_sims = kind[n:] @ kind[:n].T  # swap i against every original
    assert (kind_sims.argmax(axis=1) == np.arange(n)).all()
    assert np.diag(kind_sims).min() > 0.8  # 0.83 measured for these six sprites
    # the lookup vector (pixels, thumbnail) is further from the swap than the kind vector
    assert np.diag(lookup[n:] @ lookup[:n].T).mean() < np.diag(kind_sims).mean()


def test_kind_vectors_are_stored_and_rank_more_like_this(
    data: SearchData, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(data)
    with engine.connect() as conn:
        embedded = conn.execute(select(func.count()).select_from(embeddings)).scalar_one()
        model = conn.execute(select(kind_vectors.c.model).distinct()).scalars().all()
        seed = conn.execute(
            select(images.c.id)
            .where(images.c.parent_id.is_(None), images.c.embed_state == "done")
            .order_by(images.c.id)
            .limit(1)
        ).scalar_one_or_none()
        kinds = read_kind_vectors(conn, model[0])
        some = read_kind_vectors(conn, ids=[int(i) for i in kinds.ids[:3]] + [10**9])
    engine.dispose()
    assert (
        embedded > 20
        and len(kinds.ids) == embedded
        and model == ["effnet-lite0-128/kind-stage5-avg"]
    )
    assert seed is not None
    assert some.ids.tolist() == kinds.ids[:3].tolist()  # the catalog's recipe; unknown ids left out
    assert np.array_equal(some.vectors, kinds.vectors[:3])
    want = kinds.vectors @ kinds.vectors[int(np.searchsorted(kinds.ids, seed))]
    service = SearchService(data.settings)
    try:
        # "more like this" never asks the lookup vector's index
        monkeypatch.setattr(service.vectors, "search", pytest.fail)
        results = service.similar(seed, k=10).results
        assert len(results) == 10
        assert results[0].image_id == seed or seed in {c.image_id for c in results[0].copies}
        row = {int(ident): i for i, ident in enumerate(kinds.ids)}
        for r in results[1:]:  # each neighbour's score is its kind cosine to the seed
            assert r.score == pytest.approx(float(want[row[r.image_id]]), abs=2e-3)
    finally:
        service.close()


def test_a_folder_from_before_kind_vectors_gets_them_on_update(
    data: SearchData, tmp_path: Path
) -> None:
    from ogasearch.pipeline import update as run_update
    from ogasearch.workspace import Workspace

    old = tmp_path / "old"
    shutil.copytree(data.settings.data, old)
    settings = data.settings.model_copy(update={"data": old})
    url = f"sqlite:///{old / 'catalog.sqlite'}"
    engine = open_catalog(url, create=False)
    with engine.begin() as conn:  # what version 2 looked like: no kind_vectors table
        conn.execute(text("DROP TABLE kind_vectors"))
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="2"))
    engine.dispose()

    service = SearchService(settings)  # opening upgrades the schema: an empty table
    try:
        assert "without a kind vector" in (service.index_outdated() or "")
        seed = 1
        assert service.similar(seed, k=5).results  # falls back on the lookup vector
    finally:
        service.close()
    with Workspace(settings) as ws:
        stats = run_update(ws, stages=["embed", "index"])
    assert stats["embed"].embedded > 20
    engine = open_catalog(url, create=False)
    with engine.connect() as conn:
        version = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version"))
        assert version.scalar_one() == str(SCHEMA_VERSION)
        missing = conn.execute(
            select(func.count())
            .select_from(embeddings)
            .where(embeddings.c.image_id.not_in(select(kind_vectors.c.image_id)))
        ).scalar_one()
        assert missing == 0
    engine.dispose()
    service = SearchService(settings)
    try:
        assert service.index_outdated() is None
    finally:
        service.close()
