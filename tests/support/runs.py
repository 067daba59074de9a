"""Running the real ``ogasearch`` CLI in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

INGEST_STAGES = ("crawl", "download", "extract")


def cli_args(data: Path, site: str, *extra: str, catalog: str | None = None) -> list[str]:
    args = [sys.executable, "-m", "ogasearch", *extra, "--data", str(data), "--site", site]
    if catalog:
        args += ["--catalog", catalog]
    return args


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OGASEARCH_DELAY": "0", "OGASEARCH_PROGRESS": "0", **extra})
    return env


def run_cli(
    data: Path,
    site: str,
    *extra: str,
    catalog: str | None = None,
    timeout: float = 300,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cli_args(data, site, *extra, catalog=catalog),
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"ogasearch {' '.join(extra)} failed:\n{proc.stderr[-4000:]}"
    return proc


def update_args(stages: tuple[str, ...] = INGEST_STAGES) -> list[str]:
    args = ["update", "--recheck-days", "0"]
    for stage in stages:
        args += ["--stage", stage]
    return args


def sqlite_url(data: Path) -> str:
    return f"sqlite:///{(data / 'catalog.sqlite').resolve()}"
