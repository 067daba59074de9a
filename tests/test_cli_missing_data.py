"""The read-only commands on a data folder that is missing or holds no catalog: one clear
line, a non-zero exit, and nothing created (no folder, no catalog, no exported model). ``serve``
still starts: its page says nothing is indexed, ``/api/stats`` answers ``"empty": true`` and
searches answer 503 ``no_index``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ogasearch.catalog import open_catalog
from ogasearch.settings import load_settings
from ogasearch.web.app import create_app


@pytest.fixture
def sprite(tmp_path: Path) -> Path:
    path = tmp_path / "query" / "sprite.png"
    path.parent.mkdir()
    Image.new("RGBA", (16, 16), (200, 30, 30, 255)).save(path)
    return path


def _run(cwd: Path, models: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OGASEARCH_")}
    env["OGASEARCH_MODELS"] = str(models)  # an export would show up here
    return subprocess.run(
        [sys.executable, "-m", "ogasearch", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


COMMANDS = [
    ("search", "SPRITE"),
    ("search", "--text", "slime"),
    ("stats",),
    ("check",),
    ("check", "--no-repair"),
]


@pytest.mark.parametrize("where", ["default", "missing", "empty"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_read_only_commands_refuse_and_create_nothing(
    tmp_path: Path, sprite: Path, where: str, command: tuple[str, ...]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    models = tmp_path / "models"
    args = [str(sprite) if a == "SPRITE" else a for a in command]
    if where == "missing":
        args += ["--data", str(tmp_path / "nonexistent")]
    elif where == "empty":
        (work / "empty").mkdir()
        args += ["--data", "empty"]
    before = _tree(tmp_path)
    proc = _run(work, models, *args)
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    expected = "no catalog at" if where == "empty" else "no data folder"
    assert expected in lines[0] and "ogasearch update" in lines[0], lines[0]
    assert proc.stdout == ""
    assert _tree(tmp_path) == before  # no data folder, catalog or model was created


def test_search_on_a_catalog_with_nothing_indexed_says_so(tmp_path: Path, sprite: Path) -> None:
    data = tmp_path / "data"
    open_catalog(f"sqlite:///{data / 'catalog.sqlite'}").dispose()
    before = _tree(tmp_path)
    proc = _run(tmp_path, tmp_path / "models", "search", str(sprite), "--data", str(data))
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("Error: nothing is indexed"), proc.stderr
    assert _tree(tmp_path) == before


def test_serve_on_a_missing_data_folder_warns_and_creates_nothing(tmp_path: Path) -> None:
    settings = load_settings(data=tmp_path / "nonexistent", models=tmp_path / "models")
    with TestClient(create_app(settings)) as client:
        stats = client.get("/api/stats")
        assert stats.status_code == 200
        body = stats.json()
        assert body["empty"] is True and body["indexed"] == 0
        assert "no data folder" in body["message"]
        page = client.get("/")
        assert page.status_code == 200 and "Nothing is indexed yet" in page.text
        assert "no data folder" in page.text
        search = client.get("/api/search/text", params={"q": "slime"})
        assert search.status_code == 503 and search.json()["error"] == "no_index"
    assert list(tmp_path.iterdir()) == []


def test_serve_cli_warns_on_a_missing_data_folder(tmp_path: Path) -> None:
    """The command itself says so before it starts serving (stopped once it has said it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OGASEARCH_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ogasearch", "serve", "--data", "nope", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
    finally:
        proc.kill()
        proc.wait(30)
    assert first.startswith("warning: no data folder nope"), first
    assert list(tmp_path.iterdir()) == []
