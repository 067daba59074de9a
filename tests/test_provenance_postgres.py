"""The provenance stage with two workers on one PostgreSQL catalog.

Two ``ogasearch provenance`` processes (as ``update`` runs the stage on two machines) match
the images of a planted site at the same time, claiming batches from one catalog. They must
not deadlock (each link insert references images the other worker may hold claimed), must
check every indexed image exactly once between them, and must leave the same links and groups
as one worker rebuilding everything afterwards.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import ImageOps
from sqlalchemy import create_engine, text

from ogasearch.localsite import RunningSite, serve_site
from ogasearch.localsite.imaging import rotate_channels, upscale
from ogasearch.localsite.kenney import sprite
from ogasearch.localsite.model import Site
from ogasearch.localsite.packing import Entry, png, zip_archive
from support.runs import cli_args, cli_env, run_cli, update_args

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SPRITES = [
    "alien/alienBlue_front.png",
    "space_shooter/playerShip1_green.png",
    "space_shooter/meteorGrey_big1.png",
    "items/keyRed.png",
]
BEFORE = ("crawl", "download", "extract", "tiles", "embed", "index")
WHEN = datetime(2024, 1, 2, tzinfo=UTC)


@pytest.fixture
def site() -> Iterator[RunningSite]:
    """Each sprite on its own page, and copies of every one (exact, upscaled in an archive,
    mirrored, recoloured) on pages by others, so most images link to several others: the
    workers' claimed batches (``provenance.stage.BATCH`` images each) link each other's
    images, which deadlocked them when a claim locked its rows ``FOR UPDATE``."""
    planted = Site([], [], name="provenance-workers")
    for n, name in enumerate(SPRITES):
        art = sprite(name)
        planted.add_page(f"Original {n}", {f"o{n}.png": png(art)}, author=f"artist{n}")
        big = Entry(f"pack/o{n}_x3.png", png(upscale(art, 3)))
        planted.add_page(f"Pack {n}", {f"p{n}.zip": zip_archive([big], WHEN)}, author=f"packer{n}")
        planted.add_page(
            f"Edits {n}",
            {
                f"same{n}.png": png(art),
                f"mirror{n}.png": png(ImageOps.mirror(art)),
                f"hue{n}.png": png(rotate_channels(art)),
            },
            author=f"editor{n}",
            licences=["CC0"],
        )
    with serve_site(planted) as running:
        yield running


def _state(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            links = conn.execute(
                text(
                    "SELECT a.sha256, b.sha256, l.how FROM copy_links l"
                    " JOIN images a ON a.id = l.low_id JOIN images b ON b.id = l.high_id"
                )
            ).all()
            members = conn.execute(
                text(
                    "SELECT g.id, p.title, m.position, m.how, m.flags FROM copy_group_members m"
                    " JOIN copy_groups g ON g.id = m.group_id JOIN pages p ON p.id = m.page_id"
                    " ORDER BY g.id, m.position"
                )
            ).all()
            checks = conn.execute(text("SELECT count(*) FROM copy_checks")).scalar_one()
            indexed = conn.execute(text("SELECT count(*) FROM images WHERE indexed")).scalar_one()
    finally:
        engine.dispose()
    groups: dict[int, list[tuple[str, int, str, str]]] = {}
    for gid, title, position, how, flags in members:
        groups.setdefault(gid, []).append((title, position, how, flags))
    return {
        "links": sorted(map(tuple, links)),
        "groups": sorted(groups.values()),
        "checks": checks,
        "indexed": indexed,
    }


def test_two_workers_build_the_groups_one_worker_builds(
    site: RunningSite, pg_url: str, tmp_path: Path
) -> None:
    run_cli(tmp_path, site.base_url, *update_args(BEFORE), catalog=pg_url, timeout=600)
    workers = [
        subprocess.Popen(
            cli_args(tmp_path, site.base_url, "provenance", catalog=pg_url),
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    started = time.monotonic()
    try:
        outputs = [worker.communicate(timeout=600) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, (
            f"a worker failed after {time.monotonic() - started:.0f} s:\n{stderr[-3000:]}"
        )
    checked = [json.loads(out.split("provenance: ", 1)[1])["checked"] for out, _ in outputs]
    together = _state(pg_url)
    assert sum(checked) == together["checks"] == together["indexed"]
    assert together["groups"], "the planted copies formed no group"
    assert len(together["groups"]) == len(SPRITES)
    run_cli(tmp_path, site.base_url, "provenance", "--rebuild", catalog=pg_url, timeout=600)
    alone = _state(pg_url)
    assert together["links"] == alone["links"]
    assert together["groups"] == alone["groups"]
