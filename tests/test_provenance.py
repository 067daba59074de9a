"""The conflicts report: the same art on several pages, found by the provenance stage.

A small local site with planted re-uploads (a CC0 upscale of CC-BY-SA art inside an archive, a
re-post by the same author, a walk cycle whose frames sit on one page) is crawled and indexed
by the real pipeline; then the stored groups, the incremental rebuild, the API, the page and
the CLI are checked against what was planted.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import ImageOps
from sqlalchemy import select, text

from ogasearch.catalog.schema import copy_links, files, images
from ogasearch.localsite import RunningSite, serve_site
from ogasearch.localsite.imaging import upscale
from ogasearch.localsite.kenney import sprite, sprite_bytes
from ogasearch.localsite.model import Site
from ogasearch.localsite.packing import Entry, png, zip_archive
from ogasearch.pipeline import update
from ogasearch.provenance.flags import PageFacts, copy_flags
from ogasearch.provenance.licences import conflicting
from ogasearch.provenance.stage import ProvenanceStats, build_copy_groups
from ogasearch.settings import Settings
from ogasearch.workspace import Workspace
from support.runs import run_cli
from support.search_data import app_client

ALIEN = "alien/alienBlue_front.png"
WALK = "animated_characters/female_adventurer/femaleAdventurer_walk{}.png"


def test_licence_table_flags_what_does_not_follow() -> None:
    assert conflicting(["CC-BY-SA 3.0"], ["CC0"]) == ["CC0"]
    assert conflicting(["CC-BY-SA 3.0"], ["OGA-BY 3.0", "CC-BY-SA 4.0"]) == ["OGA-BY 3.0"]
    assert conflicting(["CC-BY-SA 3.0"], ["CC-BY-SA 4.0"]) == []
    assert conflicting(["GPL 2.0"], ["CC0", "GPL 3.0"]) == ["CC0"]
    assert conflicting(["CC0"], ["GPL 3.0", "CC-BY 4.0"]) == []
    assert conflicting(["CC-BY 3.0"], ["OGA-BY 3.0"]) == []
    # any of a dual-licensed original's licences may be the one a copy follows
    assert conflicting(["GPL 3.0", "CC-BY 3.0"], ["CC-BY-SA 3.0"]) == []
    # a licence the table does not know is never flagged, on either side
    assert conflicting(["Custom licence"], ["CC0"]) == []
    assert conflicting(["CC-BY-SA 3.0"], ["Custom licence"]) == []


def test_flags_compare_authors_and_licences() -> None:
    original = PageFacts(frozenset({"alice"}), ("CC-BY-SA 3.0",))
    assert copy_flags(original, PageFacts(frozenset({"mallory"}), ("CC0",))) == [
        "different-author",
        "licence-conflict",
    ]
    assert copy_flags(original, PageFacts(frozenset({"alice", "bob"}), ("CC-BY-SA 4.0",))) == [
        "same-author"
    ]


@dataclass
class Planted:
    site: Site
    running: RunningSite
    settings: Settings
    first: dict[str, object]  # the pipeline's stats of the first update


def _settings(data: Path, site: str) -> Settings:
    return Settings(
        data=data,
        site=site,
        catalog=None,
        vectors=None,
        delay=0.0,
        recheck_days=0.0,
        allow_private_urls=True,
    )


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planted]:
    alien = sprite(ALIEN)
    site = Site([], [], name="planted")
    site.add_page(
        "Blue alien", {"alien.png": png(alien)}, author="alice", licences=["CC-BY-SA 3.0"]
    )
    site.add_page(
        "Walk cycle",
        {f"walk{i}.png": sprite_bytes(WALK.format(i)) for i in range(4)},
        author="carol",
        licences=["CC-BY 3.0"],
    )
    when = datetime(2024, 1, 2, tzinfo=UTC)
    big = Entry("big/alien_x4.png", png(upscale(alien, 4)))
    site.add_page(
        "Free aliens", {"aliens.zip": zip_archive([big], when)}, author="mallory", licences=["CC0"]
    )
    site.add_page(
        "Alice's pack", {"alien_again.png": png(alien)}, author="alice", licences=["CC-BY-SA 4.0"]
    )
    with serve_site(site) as running:
        settings = _settings(tmp_path_factory.mktemp("planted"), running.base_url)
        with Workspace(settings) as ws:
            first = update(ws)
        yield Planted(site, running, settings, first)


def _group_rows(settings: Settings) -> list[tuple[object, ...]]:
    with Workspace(settings) as ws, ws.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT m.group_id, m.position, p.title, m.how, m.flags"
                    " FROM copy_group_members m JOIN pages p ON p.id = m.page_id"
                    " ORDER BY m.group_id, m.position"
                )
            )
        ]


def test_planted_copies_form_one_group_earliest_page_first(planted: Planted) -> None:
    rows = _group_rows(planted.settings)
    assert {r[0] for r in rows} == {rows[0][0]}, rows  # one group, no other
    assert [(r[2], r[3], r[4]) for r in rows] == [
        ("Blue alien", "original", ""),
        ("Free aliens", "upscaled", "different-author,licence-conflict"),
        ("Alice's pack", "exact", "same-author"),
    ]


def test_frames_on_one_page_are_never_linked(planted: Planted) -> None:
    with Workspace(planted.settings) as ws, ws.engine.connect() as conn:
        page_of = {i: p for i, p in conn.execute(select(images.c.id, files.c.page_id).join(files))}
        links = conn.execute(select(copy_links.c.low_id, copy_links.c.high_id)).all()
    assert links
    assert all(page_of[a] != page_of[b] for a, b in links)


def test_api_page_and_cli_show_the_group(planted: Planted) -> None:
    for client in app_client(planted.settings, timeout=60):
        body = client.get("/api/conflicts").json()
        assert body["total"] == 1
        group = body["groups"][0]
        assert group["original"]["title"] == "Blue alien"
        assert group["original"]["licenses"] == ["CC-BY-SA 3.0"]
        assert [(c["title"], c["how"], c["archive_path"]) for c in group["copies"]] == [
            ("Free aliens", "upscaled", "big/alien_x4.png")
        ]
        assert [c["title"] for c in group["same_author"]] == ["Alice's pack"]
        assert client.get("/api/conflicts", params={"license": "CC-BY 3.0"}).json()["total"] == 0
        assert client.get("/api/conflicts", params={"flag": "nonsense"}).status_code == 422
        page = client.get("/conflicts", params={"flag": "licence-conflict"})
        assert page.status_code == 200
        assert group["original"]["image_url"] in page.text
        assert group["copies"][0]["image_url"] in page.text
        assert "pixelated" in page.text
        empty = client.get("/conflicts", params={"license": "CC-BY 3.0"}).text
        assert "No groups with these filters" in empty
    site = planted.running.base_url
    data = planted.settings.data
    table = run_cli(data, site, "conflicts").stdout
    assert "1 group(s)" in table and "upscaled" in table
    rows = list(
        csv.DictReader(io.StringIO(run_cli(data, site, "conflicts", "--format", "csv").stdout))
    )
    assert [(r["position"], r["how"], r["flags"]) for r in rows] == [
        ("0", "original", ""),
        ("1", "upscaled", "different-author,licence-conflict"),
        ("2", "exact", "same-author"),
    ]
    out = json.loads(run_cli(data, site, "conflicts", "--format", "json").stdout)
    assert out["total"] == 1 and out["groups"][0]["copies"][0]["title"] == "Free aliens"


def test_update_matches_only_new_images_and_regroups_what_they_touch(planted: Planted) -> None:
    assert isinstance(planted.first["provenance"], ProvenanceStats)
    assert planted.first["provenance"].checked > 0
    mirrored = ImageOps.mirror(sprite(ALIEN))
    planted.site.add_page(
        "Mirrored alien", {"mirror.png": png(mirrored)}, author="eve", licences=["GPL 3.0"]
    )
    with Workspace(planted.settings) as ws:
        stats = update(ws)["provenance"]
    assert stats.checked == 1  # the new image only
    assert (stats.groups, stats.removed) == (1, 1)
    rows = _group_rows(planted.settings)
    assert ("Mirrored alien", "flipped", "different-author,licence-conflict") in [
        (r[2], r[3], r[4]) for r in rows
    ]
    with Workspace(planted.settings) as ws:
        again = build_copy_groups(ws)
        assert (again.checked, again.groups, again.removed) == (0, 0, 0)
        rebuilt = build_copy_groups(ws, rebuild=True)
    assert rebuilt.checked == planted.first["provenance"].checked + 1
    assert [r[2:] for r in _group_rows(planted.settings)] == [r[2:] for r in rows]
