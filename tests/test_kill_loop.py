"""Data safety: SIGKILL at random points of every stage, then re-run (issue: hardening).

For each stage, from a snapshot of a clean run just before that stage: run the stage, kill
it with SIGKILL at a random moment after it starts, run it again to the end, and prove the
catalog equals a clean run's after that stage and ``ogasearch check`` is clean. 24 iterations
in all (4 per stage), random but seeded so a failure can be replayed.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ogasearch.localsite import build_site, serve_site
from support.catalog_dump import count_duplicates, dump_catalog
from support.runs import cli_args, cli_env, run_cli, sqlite_url, update_args

STAGES = ("crawl", "download", "extract", "tiles", "embed", "index")
# How long after a stage starts a kill may land: at most this share of the stage's length in
# the clean run (measured, so that faster code or a quieter machine still gets killed inside
# the stage), and never later than these bounds (roughly the stage's length on the sample).
WINDOW = {"crawl": 0.4, "download": 1.0, "extract": 1.0, "tiles": 2.0, "embed": 10.0, "index": 0.3}
WINDOW_SHARE = 0.8
PER_STAGE = 4
SEED = int(os.environ.get("OGASEARCH_KILL_SEED", "20261124"))


def _stage_seconds(args: list[str], stage: str) -> float:
    """Run ``args`` to the end; how long it ran after logging that ``stage`` started."""
    proc = subprocess.Popen(
        args, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    started: float | None = None
    for line in proc.stderr:
        if started is None and f"stage {stage}" in line:
            started = time.monotonic()
    assert proc.wait(600) == 0, f"the clean run of {stage} failed"
    ended = time.monotonic()
    return ended - (started if started is not None else ended)


def _kill_during(args: list[str], stage: str, delay: float) -> str:
    """Run ``args``; SIGKILL it ``delay`` s after it logs that ``stage`` started."""
    # A small request delay stretches the network stages so kills land inside them.
    proc = subprocess.Popen(
        args,
        env=cli_env(OGASEARCH_DELAY="0.02"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = threading.Event()

    def watch() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if f"stage {stage}" in line:
                started.set()
        started.set()  # ended without reaching the stage: stop waiting

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started.wait(120)
    time.sleep(delay)
    outcome = "finished" if proc.poll() is not None else "killed"
    if outcome == "killed":
        proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    watcher.join(10)
    return outcome


@pytest.mark.slow
def test_sigkill_at_random_points_of_every_stage(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    with serve_site(build_site()) as running:
        site = running.base_url
        # Clean run, stage by stage, keeping a snapshot of the data folder after each stage.
        clean = tmp_path / "clean"
        snapshots = {"start": tmp_path / "snap-start"}
        snapshots["start"].mkdir()
        expected = {}
        window = {}
        for stage in STAGES:
            seconds = _stage_seconds(cli_args(clean, site, *update_args((stage,)), "-v"), stage)
            window[stage] = min(WINDOW[stage], WINDOW_SHARE * seconds)
            expected[stage] = dump_catalog(sqlite_url(clean))
            snapshots[stage] = tmp_path / f"snap-{stage}"
            shutil.copytree(clean, snapshots[stage])
        outcomes = []
        before = "start"
        for stage in STAGES:
            for i in range(PER_STAGE):
                data = tmp_path / f"{stage}-{i}"
                shutil.copytree(snapshots[before], data)
                delay = rng.uniform(0.0, window[stage])
                args = cli_args(data, site, *update_args((stage,)), "-v")
                outcomes.append((stage, round(delay, 3), _kill_during(args, stage, delay)))
                url = sqlite_url(data)
                assert count_duplicates(url) == {"pages": 0, "files": 0, "members": 0, "images": 0}
                run_cli(data, site, *update_args((stage,)))
                assert dump_catalog(url) == expected[stage], (stage, i, delay)
                if stage in ("embed", "index"):
                    run_cli(data, site, "check", "--no-repair")
                shutil.rmtree(data)
            before = stage
        killed = [o for o in outcomes if o[2] == "killed"]
        assert len(outcomes) >= 20
        assert len(killed) >= 18, outcomes  # nearly every run was really cut short
        for stage in STAGES:
            assert any(o[0] == stage for o in killed), (stage, outcomes)
