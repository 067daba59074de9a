"""Keyword search on the local sample site: splitting and stemming, labelled queries of every
class, typo correction, the card image, the format upgrade of an existing data folder, empty
queries, and the same ranking on PostgreSQL as on SQLite.

Keyword search needs no embedding, so the data folder is built by the crawl, download,
extract and index stages only.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ogasearch.index.terms import name_words, terms, words
from ogasearch.localsite import Manifest, build_site, serve_site
from ogasearch.localsite.queries import CLASSES, labelled_queries
from ogasearch.search import keywords
from ogasearch.search.service import SearchService
from ogasearch.settings import load_settings
from support.runs import cli_args, cli_env, run_cli, sqlite_url, update_args

STAGES = ("crawl", "download", "extract", "index")


@dataclass
class Site:
    data: Path
    base_url: str
    manifest: Manifest
    service: SearchService


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data = tmp_path_factory.mktemp("keywords")
    with serve_site(build_site()) as running:
        run_cli(data, running.base_url, *update_args(STAGES))
        service = SearchService(load_settings(data=data))
        yield Site(data, running.base_url, running.manifest(), service)
        service.close()


def _slug(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def test_words_split_camel_case_underscores_digits_and_accents() -> None:
    assert words("slimeBlue.png") == ["slime", "blue", "png"]
    assert words("money_bundle HTMLParser") == ["money", "bundle", "html", "parser"]
    assert words("icon-32x32 main_00012") == ["icon", "32", "x", "32", "main", "12"]
    assert words("Crème brûlée") == ["creme", "brulee"]
    assert name_words("pack.zip/slimes/slimeGreen.png") == ["pack", "slimes", "slime", "green"]


def test_terms_meet_across_plurals() -> None:
    assert terms("skeleton idles") == terms("Skeletons idle")
    assert terms("tiles") == terms("tile")


@pytest.mark.parametrize("kind", CLASSES)
def test_labelled_queries_find_their_pages(site: Site, kind: str) -> None:
    queries = [q for q in labelled_queries(site.manifest, 4) if q.kind == kind]
    assert queries, f"the sample site gave no {kind} query"
    missed = []
    for query in queries:
        results = site.service.by_text(query.text, k=10).results
        found = {_slug(s.page_url) for r in results for s in (r.source, *r.copies)}
        if not found & query.answers:
            missed.append(query.text)
    assert missed == []


def test_blue_slime_shows_the_blue_slime(site: Site) -> None:
    response = site.service.by_text("blue slime", k=10)
    assert response.did_you_mean is None
    first = response.results[0].source
    assert first.archive_path is not None and first.archive_path.endswith("slimeBlue.png")
    for result in site.service.by_text("slime", k=10).results:
        shown = f"{result.source.file_name}/{result.source.archive_path or ''}"
        assert "slime" in shown.lower(), shown  # the card is a slime, never bee.png


def test_a_typo_is_corrected_and_said(site: Site) -> None:
    response = site.service.by_text("blue slmie", k=10)
    assert response.did_you_mean == "blue slime"
    assert [r.image_id for r in response.results] == [
        r.image_id for r in site.service.by_text("blue slime", k=10).results
    ]
    assert site.service.by_text("zzzqqqxxx", k=10).results == []


def test_empty_text_query_is_one_clear_error(site: Site) -> None:
    for query in ("", "   ", "!!"):
        proc = subprocess.run(
            [*cli_args(site.data, site.base_url, "search"), "--text", query],
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "--text needs at least one keyword" in lines[0], proc.stderr


def test_an_old_keyword_index_is_rebuilt_by_the_next_update(site: Site, tmp_path: Path) -> None:
    data = tmp_path / "old"
    shutil.copytree(site.data, data)
    engine = create_engine(sqlite_url(data))
    with engine.begin() as conn:  # the keyword index as format 1 left it
        for table in ("keyword_fts", "keyword_docs", "keyword_vocab"):
            conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(text("DELETE FROM meta WHERE key LIKE 'keyword_%'"))
        conn.execute(text("CREATE VIRTUAL TABLE page_fts USING fts5(title, tags)"))
        conn.execute(text("CREATE TABLE page_fts_state (page_id INTEGER PRIMARY KEY)"))
    run_cli(data, site.base_url, *update_args(("index",)))
    with engine.connect() as conn:
        names = set(conn.execute(text("SELECT name FROM sqlite_master")).scalars())
        version = conn.execute(text("SELECT value FROM meta WHERE key = 'keyword_format'"))
        assert version.scalar() == "2"
    engine.dispose()
    assert "page_fts" not in names and "page_fts_state" not in names
    assert {"keyword_fts", "keyword_docs", "keyword_vocab"} <= names
    service = SearchService(load_settings(data=data))
    try:
        assert service.by_text("blue slime", k=5).results
    finally:
        service.close()


@pytest.mark.postgres
def test_postgres_ranks_like_sqlite(site: Site, pg_url: str) -> None:
    copy = subprocess.run(
        [sys.executable, "-m", "ogasearch", "copy-catalog", sqlite_url(site.data), pg_url],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert copy.returncode == 0, copy.stderr[-2000:]
    on_pg = SearchService(load_settings(data=site.data, catalog=pg_url))
    queries = [q.text for q in labelled_queries(site.manifest, 10)]
    queries += ["blue slime", "slmie", "kenney", "sprites", "tiles"]
    try:
        for query in queries:
            with site.service.ws.engine.connect() as a, on_pg.ws.engine.connect() as b:
                sqlite_hits = keywords.search_pages(a, query, 10)
                pg_hits = keywords.search_pages(b, query, 10)
            assert sqlite_hits.pages, query
            assert [p for p, _ in pg_hits.pages] == [p for p, _ in sqlite_hits.pages], query
            assert pg_hits.did_you_mean == sqlite_hits.did_you_mean
    finally:
        on_pg.close()
