"""End to end: ``ogasearch update`` against the local OGA site, compared with its manifest.

Real parts only: the CLI in a subprocess, real HTTP over loopback, real archives, SQLite and
PostgreSQL catalogs.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ogasearch.localsite import Manifest, RunningSite, build_site, serve_site
from support.catalog_dump import count_duplicates, dump_catalog
from support.runs import cli_args, cli_env, run_cli, sqlite_url, update_args


@pytest.fixture(scope="module")
def site() -> Iterator[RunningSite]:
    with serve_site(build_site()) as running:
        yield running


def _rows(url: str, query: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query))]
    finally:
        engine.dispose()


def assert_catalog_matches(url: str, manifest: Manifest) -> None:
    """Every page, file, member and image the site serves is in the catalog, and nothing else."""
    dump = dump_catalog(url)

    pages = {row[0]: row for row in dump["pages"]}
    assert set(pages) == {p.slug for p in manifest.pages}
    for page in manifest.pages:
        row = pages[page.slug]
        assert row[3] == page.title, page.slug
        assert row[2] == page.node_id, page.slug
        assert row[10] == "fetched", page.slug
    licences = Counter((slug, name) for slug, name, *_ in dump["licenses"])
    assert licences == Counter((p.slug, name) for p in manifest.pages for name in p.licences)
    tags = Counter((slug, name) for slug, name, _ in dump["tags"])
    assert tags == Counter((p.slug, t) for p in manifest.pages for t in p.tags)
    authors = {(slug, role): name for slug, name, _, role, _ in dump["authors"]}
    for page in manifest.pages:
        if page.author is not None:
            assert authors[(page.slug, "author")] == page.author.name, page.slug

    files = {(row[0], row[1]): row for row in dump["files"]}
    assert set(files) == {(f.page_slug, f.url) for f in manifest.files}
    for f in manifest.files:
        _, _, name, _, kind, _, _, present, state, sha256, size = files[(f.page_slug, f.url)]
        assert (name, kind, present) == (f.name, f.kind, True), f.url
        assert state == f.expected_state, (f.url, state, f.reason)
        if f.expected_state != "gone":
            assert (sha256, size) == (f.sha256, f.size), f.url

    members = {(row[0], row[1]): row for row in dump["members"]}
    assert set(members) == {(m.file_url, m.path) for m in manifest.members}
    for m in manifest.members:
        row = members[(m.file_url, m.path)]
        assert (row[2], row[5]) == (m.kind, m.expected_state), (m.file_url, m.path, row[6])

    whole = [row for row in dump["images"] if row[2] == ""]
    got = Counter((r[0], r[1], r[3], r[7], r[8], r[9]) for r in whole)
    want = Counter(
        (i.file_url, i.archive_path, i.sha256, i.width, i.height, i.frames) for i in manifest.images
    )
    assert got == want
    assert count_duplicates(url) == {"pages": 0, "files": 0, "members": 0, "images": 0}


@pytest.mark.slow  # the CLI end to end; the fast tier crawls in test_crawler
def test_update_catalogs_everything_the_site_serves(tmp_path: Path, site: RunningSite) -> None:
    run_cli(tmp_path, site.base_url, *update_args())
    assert_catalog_matches(sqlite_url(tmp_path), site.manifest())
    # Every failure is recorded with the item and a reason.
    failures = _rows(sqlite_url(tmp_path), "SELECT stage, item, reason FROM failures")
    failed_files = [f for f in site.manifest().files if f.expected_state != "done"]
    for f in failed_files:
        assert any(f.url in item for _, item, _ in failures), f.url
    assert all(reason for *_, reason in failures)


@pytest.mark.postgres
def test_update_on_postgresql(tmp_path: Path, site: RunningSite, pg_url: str) -> None:
    run_cli(tmp_path, site.base_url, *update_args(), catalog=pg_url)
    assert_catalog_matches(pg_url, site.manifest())


@pytest.mark.slow
def test_rerun_makes_only_conditional_requests_and_picks_up_new_pages(tmp_path: Path) -> None:
    with serve_site(build_site()) as running:
        run_cli(tmp_path, running.base_url, *update_args())
        before = dump_catalog(sqlite_url(tmp_path))

        running.clear_requests()
        run_cli(tmp_path, running.base_url, *update_args())
        requests = [r for r in running.requests() if r.path != "/robots.txt"]
        assert requests, "the re-run made no request at all"
        unconditional = [
            r.target
            for r in requests
            if not (r.header("if-none-match") or r.header("if-modified-since"))
        ]
        assert unconditional == []
        assert {r.status for r in requests} == {304}
        assert dump_catalog(sqlite_url(tmp_path)) == before

        png = running.site.file(running.manifest().images[0].file_url.rsplit("/", 1)[1])
        running.site.add_page("A brand new sprite", files={"brand new.png": png.data})
        run_cli(tmp_path, running.base_url, *update_args())
        after = dump_catalog(sqlite_url(tmp_path))
        new_slugs = {row[0] for row in after["pages"]} - {row[0] for row in before["pages"]}
        assert len(new_slugs) == 1
        assert_catalog_matches(sqlite_url(tmp_path), running.manifest())


def _wait_then_kill(proc: subprocess.Popen[str], ready: callable, timeout: float = 120) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; False if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            return True
        time.sleep(0.005)
    proc.kill()
    raise AssertionError("update neither finished nor reached the kill point in time")


def _count(url: str, query: str) -> int:
    try:
        return int(_rows(url, query)[0][0])
    except Exception:  # the catalog may not exist yet
        return 0


@pytest.mark.slow
def test_sigkill_at_any_point_then_rerun_equals_uninterrupted_run(tmp_path: Path) -> None:
    with serve_site(build_site()) as running:
        clean = tmp_path / "clean"
        run_cli(clean, running.base_url, *update_args())
        expected = dump_catalog(sqlite_url(clean))

        data = tmp_path / "killed"
        url = sqlite_url(data)
        n_requests = len(running.requests())
        # Kill points spread over every stage: listing, pages, downloads, extraction.
        kill_points = [
            ("listing", lambda: len(running.requests()) - n_requests >= 2),
            ("pages", lambda: _count(url, "SELECT COUNT(*) FROM pages WHERE state='fetched'") >= 5),
            ("more pages", lambda: _count(url, "SELECT COUNT(*) FROM files") >= 30),
            ("download", lambda: _count(url, "SELECT COUNT(*) FROM blobs") >= 3),
            ("more downloads", lambda: _count(url, "SELECT COUNT(*) FROM blobs") >= 20),
            ("extract", lambda: _count(url, "SELECT COUNT(*) FROM members") >= 1),
            ("more extract", lambda: _count(url, "SELECT COUNT(*) FROM images") >= 40),
        ]
        killed = []
        for name, ready in kill_points:
            n_requests = len(running.requests())
            proc = subprocess.Popen(
                cli_args(data, running.base_url, *update_args()),
                env=cli_env(OGASEARCH_DELAY="0.01"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            if _wait_then_kill(proc, ready):
                killed.append(name)
            assert count_duplicates(url) == {"pages": 0, "files": 0, "members": 0, "images": 0}
        assert len(killed) >= 5, f"too few runs were killed mid-way: {killed}"
        run_cli(data, running.base_url, *update_args())
        assert dump_catalog(url) == expected
