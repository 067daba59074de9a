"""The crawl stage end to end: a small OGA-like site over loopback, a real SQLite catalog.

The site below serves the markup of test_markup.py with ETags, Drupal's pager (which answers a
page number past the end with the last page) and absolute https://opengameart.org file hrefs,
as a local mirror of the real site would.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest
from sqlalchemy import Engine, create_engine, func, select, update
from sqlalchemy.exc import OperationalError

from ogasearch.catalog.db import open_catalog
from ogasearch.catalog.schema import (
    authors,
    failures,
    files,
    http_validators,
    licenses,
    meta,
    metadata,
    page_authors,
    page_licenses,
    page_tags,
    pages,
    tags,
)
from ogasearch.crawl.http import PoliteClient
from ogasearch.crawl.stage import CrawlStats, crawl
from ogasearch.crawl.walk import FULL_WALK_DONE_KEY, WALK_KEY
from ogasearch.settings import Settings
from test_http import LoopbackSite, Reply, make_client
from test_markup import FileSpec, PageSpec, content_html, listing_html

ROBOTS = b"User-agent: *\nDisallow: /search/\nDisallow: /?q=search/\n"


class OgaModel:
    """A mutable little OpenGameArt: submissions newest first, ``per_page`` to a listing page."""

    def __init__(self, per_page: int = 4) -> None:
        self.per_page = per_page
        self.order: list[str] = []  # slugs, newest first
        self.specs: dict[str, PageSpec] = {}
        self.faults: dict[str, Reply] = {}  # path (without query) or "listing:N" -> reply

    def add(self, slug: str, spec: PageSpec, newest: bool = True) -> None:
        self.specs[slug] = spec
        if newest:
            self.order.insert(0, slug)
        else:
            self.order.append(slug)

    def remove(self, slug: str) -> None:
        self.order.remove(slug)
        del self.specs[slug]

    def handle(self, raw_path: str, headers: dict[str, str]) -> Reply | None:
        parts = urlsplit(raw_path)
        if parts.path == "/robots.txt":
            return Reply(200, ROBOTS)
        if parts.path == "/art-search-advanced":
            page = int(parse_qs(parts.query).get("page", ["0"])[0])
            last = max(0, (len(self.order) - 1) // self.per_page)
            fault = self.faults.get(f"listing:{page}")
            if fault is not None:
                return fault
            page = min(page, last)  # Drupal shows the last page for a page past the end
            chunk = self.order[page * self.per_page : (page + 1) * self.per_page]
            entries = [(quote(slug), self.specs[slug].title) for slug in chunk]
            body = listing_html(
                entries, page=page, last_page=last, total=len(self.order), per_page=self.per_page
            )
            return _with_etag(body.encode(), headers)
        if parts.path in self.faults:
            return self.faults[parts.path]
        if parts.path.startswith("/content/"):
            slug = unquote(parts.path.removeprefix("/content/"))
            if slug not in self.specs:
                return Reply(404, b"<html>Page not found</html>")
            return _with_etag(content_html(self.specs[slug]).encode(), headers)
        return None


def _with_etag(body: bytes, headers: dict[str, str]) -> Reply:
    etag = '"' + hashlib.sha1(body).hexdigest() + '"'
    if headers.get("if-none-match") == etag:
        return Reply(304, headers={"ETag": etag}, length=False)
    return Reply(200, body, {"ETag": etag, "Content-Type": "text/html; charset=utf-8"})


def spec(n: int, **changes: Any) -> PageSpec:
    base = PageSpec(
        title=f"Sprites {n}",
        node_id=1000 + n,
        author=(f"artist{n % 3}", f"/users/artist{n % 3}"),
        tags=["pixel art", f"set {n}"],
        licenses=["CC0"] if n % 2 else ["CC-BY 3.0", "CC-BY-SA 3.0"],
        previews=[f"preview{n}.png"],
        files=[FileSpec(f"sheet%20{n}.png", f"sheet {n}.png", 100 + n, 500 + n, "image/png")],
    )
    return replace(base, **changes)


@pytest.fixture
def oga() -> Iterator[tuple[OgaModel, LoopbackSite]]:
    model = OgaModel()
    for n in range(1, 11):  # slug-10 is the newest
        model.add(f"slug-{n}", spec(n))
    with LoopbackSite() as server:
        server.handler = model.handle
        yield model, server


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    yield engine
    engine.dispose()


def run(
    engine: Engine, site_url: str, full: bool = False, **kwargs: Any
) -> tuple[CrawlStats, PoliteClient]:
    retries = kwargs.pop("retries", 2)
    settings = Settings(site=site_url, delay=0.0, retries=retries, recheck_days=0.0)
    client = make_client(site_url, retries=retries, **kwargs)
    with client:
        return crawl(engine, settings, client, full=full), client


def snapshot(engine: Engine, ignore: frozenset[str] = frozenset()) -> dict[str, list[tuple]]:
    """Every row of every crawl table, sorted, without the ``table.column`` names in ignore."""
    out: dict[str, list[tuple]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            columns = [c for c in table.c if f"{table.name}.{c.name}" not in ignore]
            rows = conn.execute(select(*columns)).all()
            out[table.name] = sorted(tuple(map(repr, row)) for row in rows)
    return out


def page_row(engine: Engine, slug: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(pages).where(pages.c.slug == slug)).one()


def page_files(engine: Engine, slug: str) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(
            select(files)
            .join(pages, pages.c.id == files.c.page_id)
            .where(pages.c.slug == slug)
            .order_by(files.c.kind, files.c.position)
        ).all()


# --------------------------------------------------------------------------------------------


def test_first_run_populates_the_catalog(
    oga: tuple[OgaModel, LoopbackSite], engine: Engine
) -> None:
    _, site = oga
    stats, client = run(engine, site.url)
    assert (stats.listed, stats.fetched, stats.new, stats.changed) == (10, 10, 10, 0)
    assert (stats.gone, stats.failed, stats.not_modified) == (0, 0, 0)
    assert stats.listing_pages == 3  # 4 + 4 + 2 entries
    assert stats.requests == client.request_count == 1 + 3 + 10

    row = page_row(engine, "slug-7")
    assert (row.state, row.title, row.node_id, row.art_type) == (
        "fetched",
        "Sprites 7",
        1007,
        "2D Art",
    )
    assert row.url == f"{site.url}/content/slug-7"
    assert row.post_date.year == 2014 and row.post_date_text.startswith("Thursday")
    assert row.favorites == 12 and row.files_unavailable is False
    assert row.etag and row.record_sha256 and row.attempts == 0
    assert row.description.startswith("A booth for markets.")

    stored = page_files(engine, "slug-7")
    files_root = "https://opengameart.org/sites/default/files"  # hrefs kept as given
    assert [(f.kind, f.url, f.name, f.state, f.present) for f in stored] == [
        ("file", f"{files_root}/sheet%207.png", "sheet 7.png", "pending", True),
        ("preview", f"{files_root}/preview7.png", "preview7.png", "pending", True),
    ]
    assert (stored[0].fid, stored[0].declared_size, stored[0].link_text) == (
        507,
        107,
        "sheet 7.png",
    )

    with engine.connect() as conn:
        roles = conn.execute(
            select(authors.c.name, authors.c.url, page_authors.c.role)
            .join(page_authors, page_authors.c.author_id == authors.c.id)
            .where(page_authors.c.page_id == row.id)
            .order_by(page_authors.c.position)
        ).all()
        licence_names = (
            conn.execute(
                select(licenses.c.name)
                .join(page_licenses, page_licenses.c.license_id == licenses.c.id)
                .where(page_licenses.c.page_id == row.id)
            )
            .scalars()
            .all()
        )
        tag_names = (
            conn.execute(
                select(tags.c.name)
                .join(page_tags, page_tags.c.tag_id == tags.c.id)
                .where(page_tags.c.page_id == row.id)
                .order_by(page_tags.c.position)
            )
            .scalars()
            .all()
        )
        assert conn.execute(select(meta.c.value).where(meta.c.key == FULL_WALK_DONE_KEY)).scalar()
        assert conn.execute(select(meta.c.value).where(meta.c.key == WALK_KEY)).scalar() is None
        assert conn.execute(select(func.count()).select_from(http_validators)).scalar() == 3
        assert conn.execute(select(func.count()).select_from(authors)).scalar() == 3
    assert [tuple(r) for r in roles] == [
        ("artist1", f"{site.url}/users/artist1", "author"),
        ("artist1", f"{site.url}/users/artist1", "submitter"),
    ]
    assert licence_names == ["CC0"]
    assert tag_names == ["pixel art", "set 7"]


def test_second_run_on_an_unchanged_site_only_revalidates(
    oga: tuple[OgaModel, LoopbackSite], engine: Engine
) -> None:
    _, site = oga
    run(engine, site.url)
    before = snapshot(engine, frozenset({"pages.checked_at"}))
    checked_before = {r.slug: r.checked_at for r in _all_pages(engine)}

    stats, client = run(engine, site.url)

    assert (stats.listed, stats.fetched, stats.new, stats.changed) == (0, 0, 0, 0)
    assert (stats.not_modified, stats.gone, stats.failed, stats.listing_pages) == (10, 0, 0, 1)
    requests = [r for r in client.log if r.kind != "robots"]
    assert len(requests) == 11
    assert all(r.conditional and r.status == 304 for r in requests)
    assert snapshot(engine, frozenset({"pages.checked_at"})) == before
    assert all(r.checked_at > checked_before[r.slug] for r in _all_pages(engine))


def _all_pages(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(select(pages)).all()


def test_site_on_another_port_keeps_working(
    oga: tuple[OgaModel, LoopbackSite], engine: Engine
) -> None:
    """A local site restarted on another port: stored page URLs follow the configured root."""
    model, site = oga
    run(engine, site.url)
    with LoopbackSite() as moved:
        moved.handler = model.handle
        stats, client = run(engine, moved.url)
    assert (stats.not_modified, stats.failed, stats.listing_pages) == (10, 0, 1)
    assert all(r.url.startswith(moved.url) for r in client.log)


def test_new_page_is_picked_up_by_the_incremental_walk(
    oga: tuple[OgaModel, LoopbackSite], engine: Engine
) -> None:
    model, site = oga
    run(engine, site.url)
    model.add("café-sprites", spec(11, title="Café sprites"))
    model.add("slug-12", spec(12))

    stats, client = run(engine, site.url)

    assert (stats.listed, stats.new, stats.not_modified) == (2, 2, 10)
    assert stats.listing_pages == 2  # page 0 had new entries, page 1 was all known: stop
    row = page_row(engine, "café-sprites")
    assert row.state == "fetched" and row.title == "Café sprites"
    assert row.url == f"{site.url}/content/caf%C3%A9-sprites"
    listing_requests = [r.url for r in client.log if "art-search" in r.url]
    assert [parse_qs(urlsplit(u).query)["page"] for u in listing_requests] == [["0"], ["1"]]


def test_changed_page_is_updated(oga: tuple[OgaModel, LoopbackSite], engine: Engine) -> None:
    model, site = oga
    run(engine, site.url)
    old_sheet = page_files(engine, "slug-3")[0]
    model.specs["slug-3"] = spec(
        3,
        title="Sprites 3 (remastered)",
        tags=["remaster"],
        licenses=["OGA-BY 3.0"],
        author=("Painter", "https://example.com/painter"),
        submitter=("artist0", "/users/artist0"),
        files=[FileSpec("new%20sheet.zip", "new sheet.zip", 9999, 77)],
        previews=["preview3.png"],
    )

    stats, _ = run(engine, site.url)

    assert (stats.fetched, stats.changed, stats.new, stats.not_modified) == (1, 1, 0, 9)
    row = page_row(engine, "slug-3")
    assert row.title == "Sprites 3 (remastered)"
    stored = {f.url.rsplit("/", 1)[-1]: f for f in page_files(engine, "slug-3")}
    assert stored["sheet%203.png"].present is False
    assert stored["sheet%203.png"].id == old_sheet.id
    assert stored["new%20sheet.zip"].present is True
    assert stored["new%20sheet.zip"].state == "pending"
    assert stored["new%20sheet.zip"].name == "new sheet.zip"
    assert stored["preview3.png"].present is True
    with engine.connect() as conn:
        people = conn.execute(
            select(authors.c.name, page_authors.c.role)
            .join(page_authors, page_authors.c.author_id == authors.c.id)
            .where(page_authors.c.page_id == row.id)
            .order_by(page_authors.c.position)
        ).all()
        tag_names = (
            conn.execute(
                select(tags.c.name)
                .join(page_tags, page_tags.c.tag_id == tags.c.id)
                .where(page_tags.c.page_id == row.id)
            )
            .scalars()
            .all()
        )
        licence_names = (
            conn.execute(
                select(licenses.c.name)
                .join(page_licenses, page_licenses.c.license_id == licenses.c.id)
                .where(page_licenses.c.page_id == row.id)
            )
            .scalars()
            .all()
        )
    assert [tuple(p) for p in people] == [("Painter", "author"), ("artist0", "submitter")]
    assert tag_names == ["remaster"]
    assert licence_names == ["OGA-BY 3.0"]


def test_removed_page_becomes_gone(oga: tuple[OgaModel, LoopbackSite], engine: Engine) -> None:
    model, site = oga
    run(engine, site.url)
    model.remove("slug-5")

    stats, _ = run(engine, site.url)

    assert (stats.gone, stats.not_modified, stats.failed) == (1, 9, 0)
    row = page_row(engine, "slug-5")
    assert row.state == "gone" and "404" in row.error
    assert all(f.present is False for f in page_files(engine, "slug-5"))
    assert all(f.present for f in page_files(engine, "slug-4"))
    stats, _ = run(engine, site.url)
    assert (stats.gone, stats.not_modified) == (0, 9)  # gone pages are not asked for again


def test_files_withdrawn_for_licensing(oga: tuple[OgaModel, LoopbackSite], engine: Engine) -> None:
    model, site = oga
    run(engine, site.url)
    model.specs["slug-2"] = spec(2, unavailable=True)
    stats, _ = run(engine, site.url)
    assert stats.changed == 1
    assert page_row(engine, "slug-2").files_unavailable is True
    assert sorted((f.kind, f.present) for f in page_files(engine, "slug-2")) == [
        ("file", False),
        ("preview", True),
    ]


def test_failed_pages_are_recorded_and_retried_up_to_three_times(
    oga: tuple[OgaModel, LoopbackSite], engine: Engine
) -> None:
    model, site = oga
    model.faults["/content/slug-6"] = Reply(500, b"oops")
    model.faults["/content/slug-8"] = Reply(
        200, b"<html><body>Site under maintenance</body></html>"
    )

    stats, _ = run(engine, site.url)
    assert (stats.failed, stats.new) == (2, 8)
    row = page_row(engine, "slug-6")
    assert (row.state, row.attempts) == ("failed", 1)
    assert "HTTP 500" in row.error
    assert "not a content page" in page_row(engine, "slug-8").error
    with engine.connect() as conn:
        logged = conn.execute(select(failures.c.stage, failures.c.item, failures.c.reason)).all()
    assert ("crawl", f"page {site.url}/content/slug-6") in [(f.stage, f.item) for f in logged]

    for attempt in (2, 3):
        stats, _ = run(engine, site.url)
        assert stats.failed == 2
        assert page_row(engine, "slug-6").attempts == attempt
    requests_before = len([s for s in site.seen if s.path == "/content/slug-6"])
    stats, _ = run(engine, site.url)  # three failures: no more attempts
    assert stats.failed == 0
    assert len([s for s in site.seen if s.path == "/content/slug-6"]) == requests_before

    del model.faults["/content/slug-8"]
    with engine.begin() as conn:  # an operator resets the attempts
        conn.execute(update(pages).where(pages.c.slug == "slug-8").values(attempts=0))
    stats, _ = run(engine, site.url)
    assert stats.new == 1
    assert page_row(engine, "slug-8").state == "fetched"


def test_interrupted_listing_walk_resumes_where_it_stopped(
    oga: tuple[OgaModel, LoopbackSite], engine: Engine
) -> None:
    model, site = oga
    model.faults["listing:2"] = Reply(503, b"busy")
    stats, _ = run(engine, site.url)
    assert stats.listed == 8 and stats.failed == 1
    with engine.connect() as conn:
        walk = json.loads(conn.execute(select(meta.c.value).where(meta.c.key == WALK_KEY)).scalar())
        assert walk == {"mode": "full", "next_page": 2}
        assert (
            conn.execute(select(meta.c.value).where(meta.c.key == FULL_WALK_DONE_KEY)).scalar()
            is None
        )

    del model.faults["listing:2"]
    model.add("slug-11", spec(11))  # shifts everything by one: slug-3 moves to page 2
    stats, client = run(engine, site.url)

    pages_asked = [
        parse_qs(urlsplit(r.url).query)["page"][0] for r in client.log if "art-search" in r.url
    ]
    assert pages_asked == ["2", "0", "1"]  # resume at 2, then look for new ones from the top
    assert stats.listed == 3  # slug-2, slug-1 from page 2, and the new slug-11
    assert len(_all_pages(engine)) == 11
    with engine.connect() as conn:
        assert conn.execute(select(meta.c.value).where(meta.c.key == WALK_KEY)).scalar() is None
        assert conn.execute(select(meta.c.value).where(meta.c.key == FULL_WALK_DONE_KEY)).scalar()


def test_full_walk_reads_every_listing_page(
    oga: tuple[OgaModel, LoopbackSite], engine: Engine
) -> None:
    model, site = oga
    run(engine, site.url)
    model.add("old-one", spec(20), newest=False)  # an entry the incremental feed cannot see
    stats, _ = run(engine, site.url)
    assert stats.listed == 0
    stats, _ = run(engine, site.url, full=True)
    assert stats.listed == 1 and stats.new == 1
    assert stats.listing_pages == 3


def test_page_listed_again_after_being_gone_is_fetched_again(
    oga: tuple[OgaModel, LoopbackSite], engine: Engine
) -> None:
    model, site = oga
    run(engine, site.url)
    model.remove("slug-10")
    run(engine, site.url)
    assert page_row(engine, "slug-10").state == "gone"
    model.add("slug-10", spec(10, title="Back again"))
    stats, _ = run(engine, site.url)
    row = page_row(engine, "slug-10")
    assert (row.state, row.title) == ("fetched", "Back again")
    assert stats.changed == 1
    assert all(f.present for f in page_files(engine, "slug-10"))


@pytest.mark.slow
def test_sigkill_at_any_moment_loses_and_duplicates_nothing(
    oga: tuple[OgaModel, LoopbackSite], tmp_path: Path
) -> None:
    """Kill a crawl process again and again; the catalog ends equal to an uninterrupted run."""
    model, site = oga
    model.per_page = 6
    for n in range(11, 61):
        model.add(f"slug-{n}", spec(n))
    reference = open_catalog(f"sqlite:///{tmp_path / 'reference.sqlite'}")
    run(reference, site.url)

    victim_path = tmp_path / "victim.sqlite"
    script = (
        "import sys\n"
        "from ogasearch.catalog.db import open_catalog\n"
        "from ogasearch.crawl.stage import crawl\n"
        "from ogasearch.crawl.http import PoliteClient\n"
        "from ogasearch.settings import Settings\n"
        "s = Settings(site=sys.argv[1], delay=0.02, retries=2, recheck_days=1.0)\n"
        "with PoliteClient(s) as c:\n"
        "    crawl(open_catalog('sqlite:///' + sys.argv[2]), s, c)\n"
    )
    env = {**os.environ, "OGASEARCH_PROGRESS": "0"}

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", script, site.url, str(victim_path)], env=env)

    def kill_when(query: Any, at_least: int) -> None:
        """SIGKILL the crawl as soon as the catalog shows ``query`` >= ``at_least``."""
        proc = start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if victim_path.exists():
                probe = create_engine(f"sqlite:///{victim_path}")
                try:
                    with probe.connect() as conn:
                        if (conn.execute(query).scalar() or 0) >= at_least:
                            break
                except OperationalError:
                    pass  # tables not created yet
                finally:
                    probe.dispose()
            time.sleep(0.01)
        assert proc.poll() is None, "the crawl ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    # In the middle of the listing walk, then in the middle of the content pages.
    kill_when(select(func.count()).select_from(meta).where(meta.c.key == WALK_KEY), 1)
    kill_when(select(func.count()).select_from(pages).where(pages.c.state == "fetched"), 20)
    rng = random.Random(1234)
    for _ in range(40):  # then at random moments until a run completes
        proc = start()
        try:
            proc.wait(timeout=rng.uniform(0.7, 2.0))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            continue
        assert proc.returncode == 0
        break
    else:
        pytest.fail("the crawl never finished")

    victim = open_catalog(f"sqlite:///{victim_path}")
    volatile = frozenset(
        {
            "pages.listed_at",
            "pages.fetched_at",
            "pages.checked_at",
            "meta.value",
            "http_validators.fetched_at",
        }
    )
    assert snapshot(victim, volatile) == snapshot(reference, volatile)
    with victim.connect() as conn:
        assert conn.execute(select(func.count()).select_from(failures)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(pages)).scalar() == 60
        assert set(conn.execute(select(pages.c.state)).scalars()) == {"fetched"}
    reference.dispose()
    victim.dispose()


@pytest.mark.postgres
def test_crawl_on_postgresql(oga: tuple[OgaModel, LoopbackSite], pg_url: str) -> None:
    """Same stage on PostgreSQL: upserts, SKIP LOCKED claims, timestamps with time zones."""
    model, site = oga
    engine = open_catalog(pg_url)
    try:
        stats, _ = run(engine, site.url)
        assert (stats.listed, stats.new, stats.failed) == (10, 10, 0)
        before = snapshot(engine, frozenset({"pages.checked_at"}))
        stats, _ = run(engine, site.url)
        assert (stats.not_modified, stats.fetched) == (10, 0)
        assert snapshot(engine, frozenset({"pages.checked_at"})) == before
        model.add("slug-11", spec(11))
        model.specs["slug-1"] = spec(1, tags=["changed"])
        model.remove("slug-2")
        stats, _ = run(engine, site.url)
        assert (stats.listed, stats.new, stats.changed, stats.gone) == (1, 1, 1, 1)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# Against the project's local copy of OGA (ogasearch.localsite), checked against its manifest


@pytest.fixture
def local_oga() -> Iterator[Any]:
    from ogasearch.localsite import build_site, serve_site

    with serve_site(build_site()) as running:
        yield running


def run_local(engine: Engine, running: Any, **kwargs: Any) -> tuple[CrawlStats, PoliteClient]:
    kwargs.setdefault("retry_after_cap", 0.05)
    return run(engine, running.base_url, **kwargs)


def assert_catalog_matches(engine: Engine, manifest: Any) -> None:
    """Every page of the manifest is in the catalog as the site shows it, with its files."""
    with engine.connect() as conn:
        live = {r.slug: r for r in conn.execute(select(pages).where(pages.c.state == "fetched"))}
        assert set(live) == {p.slug for p in manifest.pages}
        for expected in manifest.pages:
            row = live[expected.slug]
            assert row.url == expected.url
            assert (row.title, row.node_id, row.art_type) == (
                expected.title,
                expected.node_id,
                expected.art_type,
            )
            shown = expected.post_date.replace(second=0, microsecond=0, tzinfo=None)
            assert row.post_date.replace(tzinfo=None) == shown  # the page shows minutes
            assert row.post_date_text == expected.post_date_text
            assert (row.description or "") == expected.description
            assert row.attribution == expected.attribution
            assert row.favorites == expected.favorites
            assert row.files_unavailable == expected.files_unavailable
            people = conn.execute(
                select(authors.c.name, authors.c.url, page_authors.c.role)
                .join(page_authors, page_authors.c.author_id == authors.c.id)
                .where(page_authors.c.page_id == row.id)
                .order_by(page_authors.c.position)
            ).all()
            wanted = [(expected.author.name, expected.author.url, "author")]
            wanted += [(expected.submitter.name, expected.submitter.url, "submitter")]
            wanted += [(c.name, c.url, "collaborator") for c in expected.collaborators]
            assert [tuple(p) for p in people] == wanted, expected.slug
            licence_rows = conn.execute(
                select(licenses.c.name, licenses.c.url)
                .join(page_licenses, page_licenses.c.license_id == licenses.c.id)
                .where(page_licenses.c.page_id == row.id)
                .order_by(page_licenses.c.position)
            ).all()
            assert [tuple(x) for x in licence_rows] == list(
                zip(expected.licences, expected.licence_urls, strict=True)
            )
            tag_names = conn.execute(
                select(tags.c.name)
                .join(page_tags, page_tags.c.tag_id == tags.c.id)
                .where(page_tags.c.page_id == row.id)
                .order_by(page_tags.c.position)
            ).scalars()
            assert list(tag_names) == list(expected.tags)
            present = conn.execute(
                select(files).where(files.c.page_id == row.id, files.c.present.is_(True))
            ).all()
            truth = manifest.files_of(expected.slug)
            assert sorted((f.kind, f.position, f.url, f.name) for f in present) == sorted(
                (f.kind, f.position, f.url, f.name) for f in truth
            )
            by_url = {f.url: f for f in present}
            for f in truth:
                if f.kind == "file":  # previews show no fid, size or link text on OGA
                    got = by_url[f.url]
                    assert (got.fid, got.declared_size, got.link_text) == (
                        f.fid,
                        f.declared_size,
                        f.link_text,
                    )


def test_localsite_crawl_matches_its_manifest(local_oga: Any, engine: Engine) -> None:
    stats, _ = run_local(engine, local_oga)
    manifest = local_oga.manifest()
    assert (stats.listed, stats.new, stats.failed) == (len(manifest.pages), len(manifest.pages), 0)
    assert_catalog_matches(engine, manifest)
    assert not any("dlcounter" in r.path for r in local_oga.requests())

    local_oga.clear_requests()
    before = snapshot(engine, frozenset({"pages.checked_at"}))
    stats, _ = run_local(engine, local_oga)
    assert (stats.not_modified, stats.fetched) == (len(manifest.pages), 0)
    served = [r for r in local_oga.requests() if r.path != "/robots.txt"]
    assert all(r.header("if-none-match") or r.header("if-modified-since") for r in served)
    assert {r.status for r in served} == {304}
    assert snapshot(engine, frozenset({"pages.checked_at"})) == before


def test_localsite_changes_are_followed(local_oga: Any, engine: Engine, crawl_tiles: Path) -> None:
    run_local(engine, local_oga)
    site = local_oga.site
    slugs = [p.slug for p in site.pages()]
    data = (crawl_tiles / "main.png").read_bytes()
    site.add_page("Brand new sheet", {"brand new sheet.png": data}, tags=("new",))
    site.change_page(slugs[3], title="Retitled submission")
    site.add_file_to_page(slugs[-1], "extra frames.zip", b"PK\x05\x06" + b"\0" * 18)
    site.remove_page(slugs[5])

    stats, _ = run_local(engine, local_oga)

    assert (stats.listed, stats.new, stats.changed, stats.gone) == (1, 1, 2, 1)
    assert stats.not_modified == len(slugs) - 3
    assert_catalog_matches(engine, local_oga.manifest())
    assert page_row(engine, slugs[5]).state == "gone"
    assert not any(f.present for f in page_files(engine, slugs[5]))


def test_localsite_faults_are_retried(local_oga: Any, engine: Engine) -> None:
    from ogasearch.localsite import Fault

    local_oga.faults.add(r"^/content/", Fault.error(503, retry_after=30), times=2)
    local_oga.faults.add(r"^/content/", Fault.truncate(0.3), times=1)
    local_oga.faults.add(r"^/content/", Fault.drop(), times=1)
    local_oga.faults.add(r"^/art-search-advanced", Fault.error(500), times=1)
    stats, client = run_local(engine, local_oga, retries=5)  # 4 faults in a row
    with engine.connect() as conn:
        assert conn.execute(select(failures.c.item, failures.c.reason)).all() == []
    assert stats.failed == 0
    assert_catalog_matches(engine, local_oga.manifest())
    statuses = [r.status for r in client.log if r.kind == "page"]
    assert statuses.count(503) == 2 and statuses.count(500) == 1 and None in statuses
    pages_log = [r for r in client.log if r.kind == "page"]
    after_503 = [b.waited for a, b in itertools.pairwise(pages_log) if a.status == 503]
    assert after_503 == [0.05, 0.05]  # Retry-After: 30, capped at 0.05 s in this test


def test_localsite_failures_are_recorded(local_oga: Any, engine: Engine) -> None:
    from ogasearch.localsite import Fault

    victim = local_oga.site.pages()[2].slug
    local_oga.faults.add(rf"^/content/{victim}$", Fault.error(500), times=None)
    stats, _ = run_local(engine, local_oga)
    assert stats.failed == 1
    row = page_row(engine, victim)
    assert (row.state, row.attempts) == ("failed", 1)
    with engine.connect() as conn:
        items = conn.execute(select(failures.c.item, failures.c.reason)).all()
    assert [(i.item, "HTTP 500" in i.reason) for i in items] == [
        (f"page {local_oga.base_url}/content/{victim}", True)
    ]
