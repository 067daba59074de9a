"""The README's benchmark table is what the recorded results give (``bench/readme_figures.py``):
verdicts computed from the numbers and targets, stale figures marked from git history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "readme_figures.py"


@pytest.fixture(scope="module")
def figures() -> ModuleType:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import readme_figures
    finally:
        sys.path.pop(0)
    return readme_figures


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT
    )


def test_readme_table_is_what_the_results_give() -> None:
    shallow = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--is-shallow-repository"],
        capture_output=True,
        text=True,
    )
    if shallow.returncode != 0 or shallow.stdout.strip() != "false":
        pytest.skip("needs the repository's full git history (staleness is read from it)")
    proc = run("--check")
    assert proc.returncode == 0, proc.stderr


def test_check_fails_in_one_line_when_the_readme_differs(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    readme.write_text(
        text.replace("<!-- figures:end -->", "| typed | by hand |\n<!-- figures:end -->")
    )
    proc = run("--check", "--readme", str(readme))
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "differ" in proc.stderr
    assert run("--readme", str(readme)).returncode == 0  # regenerating fixes it
    assert readme.read_text(encoding="utf-8") == text


def footprint(stored: int) -> dict[str, Any]:
    return {
        "numbers": {
            "catalog_vector_bytes": stored,
            "index_vector_bytes": 3840,
            "dim": 960,
            "prototype_vector_bytes": 16384,
        },
        "targets": {"vector_bytes": 1024},
    }


def test_verdicts_are_computed_from_numbers_and_targets(figures: ModuleType) -> None:
    assert figures.footprint_rows(footprint(1920))[0][3].endswith(": not met")
    assert figures.footprint_rows(footprint(1000))[0][3].endswith(": met")
    query = {
        "numbers": {"by_vectors": {"100000": {"image_p50_ms": 25.0, "image_p99_ms": 90.0}}},
        "targets": {"p50_ms": 30.0, "p99_ms": 100.0, "at_vectors": 1_000_000},
    }
    # a run below the target's size is never reported as meeting it
    assert "not measured at 1,000,000; at 100,000: met" in figures.query_rows(query)[0][3]


def test_reduced_runs_say_so(figures: ModuleType) -> None:
    parts = [("images", "size", "full_size")]
    assert figures.reduced({"size": 600, "full_size": 2000}, parts) == (
        "reduced: 600 images (full run: 2,000)"
    )
    assert figures.reduced({"size": 2000, "full_size": 2000}, parts) is None


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def commit(repo: Path, path: str, text: str, message: str) -> str:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git(repo, "add", path)
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


def test_a_figure_older_than_its_code_is_stale(figures: ModuleType, tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    measured = commit(tmp_path, "src/search.py", "v1", "search v1")
    result = {"commit": measured, "uncommitted": [], "depends": ["src/search.py"]}
    assert figures.staleness(result, tmp_path) is None
    commit(tmp_path, "docs/notes.md", "notes", "notes")  # not a dependency
    assert figures.staleness(result, tmp_path) is None
    change = commit(tmp_path, "src/search.py", "v2", "search v2")
    commit(tmp_path, "src/search.py", "v3", "search v3")
    assert figures.staleness(result, tmp_path) == f"stale: measured before {change[:7]} search v2"
    unknown = {**result, "commit": "0" * 40}
    assert "not in this history" in figures.staleness(unknown, tmp_path)
    dirty = {**result, "uncommitted": ["src/search.py"]}
    assert "uncommitted" in figures.staleness(dirty, tmp_path)


def test_every_recorded_result_names_its_commit_and_sources() -> None:
    for path in sorted((ROOT / "docs" / "results").glob("*.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        assert result["bench"] == path.stem
        assert result["commit"] and result["date"] and result["command"]
        assert f"bench/{path.stem}.py" in result["depends"]
