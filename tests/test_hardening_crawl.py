"""Hardening of the crawl and download stages against a hostile or failing site.

Everything runs through the real crawler and download stage against the local OGA copy
(``ogasearch.localsite``) over 127.0.0.1, with faults injected by the site itself: statuses
with and without Retry-After, timeouts, resets, truncated bodies, redirects to another host,
hand-broken markup (missing and duplicated fields, other charsets, invalid UTF-8), robots.txt
rules and Crawl-delay (measured on the site's request log), and a page that disappears between
runs. Each failure must be recorded with the item it belongs to, and nothing else may be lost.

Cases already covered elsewhere are not repeated here: 500/503-with-Retry-After, truncation and
a clean drop on content pages (test_crawler::test_localsite_faults_are_retried), a permanent
500 (test_crawler::test_localsite_failures_are_recorded), pages changed, added and removed
(test_crawler::test_localsite_changes_are_followed), and the client alone
(test_http.py).
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import Engine, select

from ogasearch.catalog.db import open_catalog
from ogasearch.catalog.schema import (
    authors,
    failures,
    files,
    images,
    licenses,
    page_authors,
    page_licenses,
    page_tags,
    pages,
    tags,
)
from ogasearch.crawl.http import PoliteClient
from ogasearch.crawl.stage import crawl
from ogasearch.extract.stage import extract
from ogasearch.localsite import Fault, RunningSite, build_site, serve_site
from ogasearch.settings import Settings
from ogasearch.store.blobs import BlobStore
from ogasearch.store.stage import download
from test_crawler import assert_catalog_matches, page_files, page_row


@pytest.fixture
def site() -> Iterator[RunningSite]:
    with serve_site(build_site()) as running:
        yield running


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    yield engine
    engine.dispose()


def settings_for(site: RunningSite, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"delay": 0.0, "retries": 3, "timeout": 5.0, "recheck_days": 0.0}
    values.update(overrides)
    return Settings(data=tmp_path / "data", site=site.base_url, **values)


def client_for(settings: Settings) -> PoliteClient:
    return PoliteClient(settings, backoff_base=0.01, retry_after_cap=0.05)


def run_crawl(engine: Engine, settings: Settings) -> tuple[Any, PoliteClient]:
    with client_for(settings) as client:
        return crawl(engine, settings, client), client


def failure_rows(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(failures.c.stage, failures.c.item, failures.c.reason))
        return [tuple(r) for r in rows]


def people_and_tags(engine: Engine, slug: str) -> tuple[list[str], ...]:
    """The page's author names, licence names and tags, in page order."""
    page_id = page_row(engine, slug).id
    found = []
    with engine.connect() as conn:
        for named, link, key in (
            (authors, page_authors, "author_id"),
            (licenses, page_licenses, "license_id"),
            (tags, page_tags, "tag_id"),
        ):
            query = (
                select(named.c.name)
                .join(link, link.c[key] == named.c.id)
                .where(link.c.page_id == page_id)
                .order_by(link.c.position)
            )
            found.append(list(conn.execute(query).scalars()))
    return tuple(found)


def content_html(site: RunningSite, slug: str) -> str:
    """The page as the site serves it (no fault rules are live when this is called)."""
    import httpx

    response = httpx.get(site.url(f"/content/{slug}"), timeout=10)
    response.raise_for_status()
    return response.text


def only_pages(site: RunningSite, keep: int) -> list[str]:
    """Unpublish all but the ``keep`` newest pages (a short crawl); return the kept slugs."""
    slugs = [p.slug for p in site.site.pages()]
    for slug in slugs[keep:]:
        site.site.remove_page(slug)
    return slugs[:keep]


# --------------------------------------------------------------------------------------------
# Statuses, timeouts and resets


def test_429_503_timeouts_and_resets_are_retried_to_a_complete_catalog(
    site: RunningSite, engine: Engine, tmp_path: Path
) -> None:
    site.faults.add(r"^/content/", Fault.error(429, retry_after=1), times=1)
    site.faults.add(r"^/content/", Fault.error(503), times=1)  # no Retry-After: backoff
    site.faults.add(r"^/content/", Fault.slow(1.0), times=1)  # over the client's timeout
    site.faults.add(r"^/content/", Fault.drop(reset=True), times=1)
    site.faults.add(r"^/art-search-advanced", Fault.error(429, retry_after=2), times=1)
    settings = settings_for(site, tmp_path, retries=5, timeout=0.4)
    stats, client = run_crawl(engine, settings)

    assert stats.failed == 0 and failure_rows(engine) == []
    assert_catalog_matches(engine, site.manifest())
    log = [r for r in client.log if r.kind == "page"]
    assert [r.status for r in log].count(429) == 2
    assert [r.status for r in log].count(503) == 1
    errors = [r.error or "" for r in log if r.status is None]
    assert any("timeout" in e for e in errors) and len(errors) == 2  # the slow one, the reset
    after = {a.status: b.waited for a, b in itertools.pairwise(log) if a.status in (429, 503)}
    assert after[429] == 0.05  # Retry-After honoured, capped for the test
    assert 0.0 < after[503] < 0.05  # exponential backoff from 0.01 s, with jitter


def test_a_page_that_keeps_timing_out_is_recorded_by_name(
    site: RunningSite, engine: Engine, tmp_path: Path
) -> None:
    victim = site.site.pages()[3].slug
    site.faults.add(rf"^/content/{victim}$", Fault.slow(0.6), times=None)
    settings = settings_for(site, tmp_path, retries=2, timeout=0.2)
    stats, _ = run_crawl(engine, settings)

    assert stats.failed == 1
    row = page_row(engine, victim)
    assert (row.state, row.attempts) == ("failed", 1)
    assert "timeout" in row.error and "after 2 attempts" in row.error
    assert failure_rows(engine) == [("crawl", f"page {site.url('/content/' + victim)}", row.error)]
    with engine.connect() as conn:
        fetched = conn.execute(select(pages.c.slug).where(pages.c.state == "fetched")).scalars()
        assert set(fetched) == {p.slug for p in site.site.pages()} - {victim}


def test_download_faults_are_retried_and_every_byte_is_right(
    site: RunningSite, engine: Engine, tmp_path: Path
) -> None:
    settings = settings_for(site, tmp_path, retries=7, timeout=0.4)  # 6 faults in a row
    run_crawl(engine, settings)
    files_path = r"^/sites/default/files/[^/]+$"
    site.faults.add(files_path, Fault.truncate(0.4), times=1)
    site.faults.add(files_path, Fault.drop(reset=True), times=1)
    site.faults.add(files_path, Fault.error(503), times=1)
    site.faults.add(files_path, Fault.error(429, retry_after=1), times=1)
    site.faults.add(files_path, Fault.slow(1.0), times=1)
    site.faults.add(files_path, Fault.truncate(0.0), times=1)
    store = BlobStore(settings.store_dir)
    with client_for(settings) as client:
        stats = download(engine, settings, client, store)

    manifest = site.manifest()
    with engine.connect() as conn:
        rows = {r.url: r for r in conn.execute(select(files))}
    for truth in manifest.files:
        row = rows[truth.url]
        if truth.expected_state == "gone":
            assert row.state == "gone", truth.name
            continue
        assert (row.state, row.sha256, row.size) == ("stored", truth.sha256, truth.size), truth.name
        assert store.path(row.sha256).read_bytes() == site.site.file(truth.name).data
    assert stats.failed == 0
    assert [r for r in failure_rows(engine) if not r[2].startswith("gone")] == []
    assert list((store.root / "tmp").iterdir()) == []


# --------------------------------------------------------------------------------------------
# Redirects


def test_redirects_to_another_host_are_refused_and_named(
    site: RunningSite, engine: Engine, tmp_path: Path
) -> None:
    pages_ = site.site.pages()
    victim, followed = pages_[2].slug, pages_[4]
    file_name = "hero.png"
    with serve_site(build_site()) as elsewhere:
        site.faults.add(
            rf"^/content/{victim}$", Fault.redirect(elsewhere.url(f"/content/{victim}")), None
        )
        # a redirect within the site (to the node URL, which redirects back) is followed
        site.faults.add(
            rf"^/content/{followed.slug}$", Fault.redirect(f"/node/{followed.node_id}", 301), 1
        )
        site.faults.add(
            rf"^/sites/default/files/{file_name}$",
            Fault.redirect(elsewhere.url(f"/sites/default/files/{file_name}")),
            None,
        )
        settings = settings_for(site, tmp_path)
        run_crawl(engine, settings)
        with client_for(settings) as client:
            download(engine, settings, client, BlobStore(settings.store_dir))
        assert elsewhere.requests() == []

    row = page_row(engine, victim)
    assert row.state == "failed"
    assert f"redirect to {elsewhere.base_url}/content/{victim}" in row.error
    assert "not on the site" in row.error
    assert page_row(engine, followed.slug).state == "fetched"
    with engine.connect() as conn:
        hero = conn.execute(select(files).where(files.c.name == file_name)).one()
        stored = conn.execute(select(files.c.state).where(files.c.name != file_name)).scalars()
        assert "failed" not in set(stored)
    assert hero.state == "failed" and "not on the site" in hero.error
    logged = {(stage, item) for stage, item, _ in failure_rows(engine)}
    assert ("crawl", f"page {site.url('/content/' + victim)}") in logged
    assert ("download", f"file {hero.url}") in logged


# --------------------------------------------------------------------------------------------
# Hand-broken markup, served raw


def _without(markup: str, *field_names: str) -> str:
    soup = BeautifulSoup(markup, "lxml")
    for name in field_names:
        for tag in soup.select(f".field-name-{name}"):
            tag.decompose()
    return str(soup)


def _doubled(markup: str, lists: tuple[str, ...], blocks: tuple[str, ...]) -> str:
    """Each item of the ``lists`` fields twice in a row, then each field block twice."""
    soup = BeautifulSoup(markup, "lxml")
    for name in lists:
        for item in soup.select(f".field-name-{name} .field-item"):
            item.insert_after(_copy(item, ".field-item"))
    for name in lists + blocks:
        for block in soup.select(f".field-name-{name}"):
            block.insert_after(_copy(block, f".field-name-{name}"))
    return str(soup)


def _copy(tag: Any, selector: str) -> Any:
    return BeautifulSoup(str(tag), "lxml").select_one(selector)


def test_missing_fields_keep_what_the_page_has(
    site: RunningSite, engine: Engine, tmp_path: Path
) -> None:
    victim = next(p for p in site.site.pages() if len(p.files) >= 2)
    broken = _without(
        content_html(site, victim.slug),
        "author-submitter",
        "field-art-licenses",
        "field-art-tags",
        "field-art-files",
        "field-art-preview",
        "favorites",
    )
    site.faults.add(rf"^/content/{victim.slug}$", Fault.raw(broken.encode()), times=None)
    stats, _ = run_crawl(engine, settings_for(site, tmp_path))

    assert stats.failed == 0
    row = page_row(engine, victim.slug)
    assert (row.state, row.title, row.node_id) == ("fetched", victim.clean_title, victim.node_id)
    assert row.favorites is None
    assert page_files(engine, victim.slug) == []
    assert people_and_tags(engine, victim.slug) == ([], [], [])
    with engine.connect() as conn:
        fetched = conn.execute(select(pages.c.slug).where(pages.c.state == "fetched")).scalars()
        assert set(fetched) == {p.slug for p in site.site.pages()}


def test_duplicated_fields_give_the_same_catalog(
    site: RunningSite, engine: Engine, tmp_path: Path
) -> None:
    for page in site.site.pages():
        original = content_html(site, page.slug)
        doubled = _doubled(
            original,
            lists=(
                "field-art-licenses",
                "field-art-tags",
                "field-art-files",
                "field-art-preview",
                "field-collaborators",
            ),
            blocks=("title", "author-submitter", "field-copyright-notice", "favorites"),
        )
        assert doubled.count("field-item") > original.count("field-item")
        site.faults.add(rf"^/content/{page.slug}$", Fault.raw(doubled.encode()), times=None)
    stats, _ = run_crawl(engine, settings_for(site, tmp_path))
    assert stats.failed == 0 and failure_rows(engine) == []
    assert_catalog_matches(engine, site.manifest())


ACCENTED = {"title": "Café crème sprites", "author": "Zoë_Ørsted", "tag": "naïve"}


def _accented_page(site: RunningSite) -> str:
    from test_archives import png_bytes

    page = site.site.add_page(
        ACCENTED["title"],
        {"crème.png": png_bytes((10, 200, 30, 255))},
        author=ACCENTED["author"],
        tags=(ACCENTED["tag"], "pixel"),
        description="Déjà vu: «tiles» for a café.",
        slug="cafe-creme",
    )
    return page.slug


@pytest.mark.parametrize(
    "where", ["meta-and-header", "header-only"], ids=["declared", "header-only"]
)
def test_a_page_in_windows_1252_reads_the_same(
    site: RunningSite, engine: Engine, tmp_path: Path, where: str
) -> None:
    slug = _accented_page(site)
    markup = content_html(site, slug)
    declared = 'content="text/html; charset=utf-8"'
    assert declared in markup
    if where == "meta-and-header":
        markup = markup.replace(declared, 'content="text/html; charset=windows-1252"')
    else:
        markup = re.sub(r"<meta http-equiv=\"Content-Type\"[^>]*>", "", markup)
    body = markup.encode("cp1252")
    assert b"\xe9" in body  # é as one byte: not UTF-8
    site.faults.add(rf"^/content/{slug}$", Fault.raw(body, "text/html; charset=windows-1252"), None)
    stats, _ = run_crawl(engine, settings_for(site, tmp_path))
    assert stats.failed == 0
    assert_catalog_matches(engine, site.manifest())


def test_invalid_utf8_bytes_spoil_only_themselves(
    site: RunningSite, engine: Engine, tmp_path: Path
) -> None:
    slug = _accented_page(site)
    body = content_html(site, slug).encode()
    spoilt = body.replace("Déjà vu".encode(), b"\xff\xfe\x81 " + "Déjà vu".encode(), 1)
    assert spoilt != body
    site.faults.add(rf"^/content/{slug}$", Fault.raw(spoilt), None)
    stats, _ = run_crawl(engine, settings_for(site, tmp_path))
    assert stats.failed == 0
    row = page_row(engine, slug)
    assert row.title == ACCENTED["title"]  # not mojibake: the rest of the page stays UTF-8
    assert "\ufffd" in row.description and "Déjà vu: «tiles» for a café." in row.description
    with engine.connect() as conn:
        others = conn.execute(select(pages.c.slug).where(pages.c.state == "fetched")).scalars()
        assert set(others) == {p.slug for p in site.site.pages()}
    assert people_and_tags(engine, slug) == (
        [ACCENTED["author"]] * 2,  # author and submitter
        ["CC0"],
        [ACCENTED["tag"], "pixel"],
    )


# --------------------------------------------------------------------------------------------
# robots.txt


def test_robots_disallow_and_crawl_delay_are_honoured(
    site: RunningSite, engine: Engine, tmp_path: Path
) -> None:
    kept = only_pages(site, 4)
    hidden_page = kept[1]
    shown = [f for p in site.site.pages() if p.slug != hidden_page for f in p.files]
    hidden_file = shown[0].name
    robots = (
        "User-agent: *\n"
        f"Disallow: /content/{hidden_page}\n"
        f"Disallow: /sites/default/files/{hidden_file}\n"
        "Crawl-delay: 0.25\n"
    )
    site.faults.add(r"^/robots\.txt$", Fault.raw(robots.encode(), "text/plain"), None)
    settings = settings_for(site, tmp_path, delay=0.0)
    with client_for(settings) as client:
        crawl(engine, settings, client)
        download(engine, settings, client, BlobStore(settings.store_dir))
        assert client.delay == 0.25

    asked = site.requests()
    assert [r.path for r in asked].count("/robots.txt") == 1
    assert not any(
        r.path in (f"/content/{hidden_page}", f"/sites/default/files/{hidden_file}") for r in asked
    )
    gaps = [b.monotonic - a.monotonic for a, b in itertools.pairwise(asked)]
    assert len(gaps) >= 6 and min(gaps) >= 0.24, gaps
    row = page_row(engine, hidden_page)
    assert row.state == "failed" and row.error == "disallowed by robots.txt"
    with engine.connect() as conn:
        hidden = conn.execute(select(files).where(files.c.name == hidden_file)).one()
    assert (hidden.state, hidden.error) == ("failed", "disallowed by robots.txt")
    assert {(s, i) for s, i, _ in failure_rows(engine)} == {
        ("crawl", f"page {site.url('/content/' + hidden_page)}"),
        ("download", f"file {hidden.url}"),
    }


# --------------------------------------------------------------------------------------------
# A page that disappears between runs


def test_a_page_gone_between_runs_loses_nothing_already_stored(
    site: RunningSite, engine: Engine, tmp_path: Path
) -> None:
    only_pages(site, 5)
    settings = settings_for(site, tmp_path)
    store = BlobStore(settings.store_dir)

    def ingest() -> None:
        with client_for(settings) as client:
            crawl(engine, settings, client)
            download(engine, settings, client, store)
        extract(engine, settings, store)

    ingest()
    victim = next(p.slug for p in site.site.pages() if p.files)
    with engine.connect() as conn:
        images_before = conn.execute(select(images.c.id, images.c.sha256)).all()
        files_before = conn.execute(select(files.c.id, files.c.sha256, files.c.state)).all()
    assert images_before
    site.site.remove_page(victim)
    ingest()

    row = page_row(engine, victim)
    assert row.state == "gone" and "404" in row.error
    assert row.title is not None  # what was read before is kept
    assert all(not f.present for f in page_files(engine, victim))
    with engine.connect() as conn:
        assert conn.execute(select(images.c.id, images.c.sha256)).all() == images_before
        assert conn.execute(select(files.c.id, files.c.sha256, files.c.state)).all() == files_before
    assert all(store.has(sha) for _, sha in images_before)
    others = [p.slug for p in site.site.pages()]
    assert all(page_row(engine, s).state == "fetched" for s in others)


# --------------------------------------------------------------------------------------------
# Failures are logged, naming the item


def test_failures_are_logged_with_their_item(
    site: RunningSite, engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    victim = site.site.pages()[1].slug
    site.faults.add(rf"^/content/{victim}$", Fault.error(500), times=None)
    with caplog.at_level(logging.WARNING):
        run_crawl(engine, settings_for(site, tmp_path, retries=1))
    item = f"page {site.url('/content/' + victim)}"
    assert any(item in r.getMessage() and "HTTP 500" in r.getMessage() for r in caplog.records)
