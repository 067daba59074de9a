"""Keyword search quality on labelled queries, on SQLite and on PostgreSQL.

Two local OpenGameArt copies are crawled, downloaded, extracted and keyword-indexed (no
embedding: keyword search needs none) into SQLite catalogs: the bundled sample site and a
scale site cut from Debian's crawl-tiles-data. Each catalog is copied into a PostgreSQL
database with ``ogasearch copy-catalog`` (which builds that database's keyword index).

Queries come from each site's manifest (``ogasearch.localsite.queries``): title words, file
name words, tags, two words of a file name, the same with the second word in the plural, and
with two letters of one word swapped. A query is answered when a page holding every clean query
word is among the first 10 results of ``SearchService.by_text`` (the result's page or a page
listed as holding a copy). Agreement: the first 10 page ids of the keyword ranking are the same,
in the same order, on both databases.

    python bench/eval_keywords.py                     # sample + 800-page scale site
    python bench/eval_keywords.py --pages 200 --queries 30 --no-append
    python bench/eval_keywords.py --postgres postgresql+psycopg://u@host/db   # an empty DB

Without ``--postgres`` a throwaway server is started from Debian's package, as the tests do.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from _common import (
    CRAWL_TILES,
    ROOT,
    Report,
    add_report_arguments,
    clean_env,
    ingest_local_site,
    own_settings,
)
from ogasearch.localsite.queries import CLASSES, LabelledQuery, labelled_queries
from ogasearch.search import keywords
from ogasearch.search.service import SearchService

STAGES = ("crawl", "download", "extract", "index")
TOP = 10


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[tuple[str, bool]]:
    """(an admin URL, whether databases may be created on it)."""
    if url:
        yield url, False
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from support.postgres import postgres_server

    with postgres_server() as admin:
        yield admin, True


def slug_of(page_url: str) -> str:
    return page_url.rstrip("/").rsplit("/", 1)[-1]


def answered(service: SearchService, query: LabelledQuery) -> tuple[bool, bool]:
    """(a page holding every clean query word is in the first 10 results, the page the query
    was made from is)."""
    results = service.by_text(query.text, k=TOP).results
    pages = {slug_of(s.page_url) for r in results for s in (r.source, *r.copies)}
    return bool(pages & query.answers), query.page in pages


def top_pages(service: SearchService, text: str) -> list[int]:
    with service.ws.engine.connect() as conn:
        return [page_id for page_id, _ in keywords.search_pages(conn, text, TOP).pages]


def evaluate(
    name: str, pages: int | None, args: argparse.Namespace, pg_url: str, work: Path
) -> list[list[object]]:
    data = work / name
    manifest = ingest_local_site(data, pages, args.source, STAGES)
    sqlite = own_settings(data)
    command = [sys.executable, "-m", "ogasearch", "copy-catalog"]
    command += [f"sqlite:///{data / 'catalog.sqlite'}", pg_url]
    proc = subprocess.run(command, env=clean_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"ogasearch copy-catalog failed:\n{proc.stderr[-4000:]}")
    on_pg = sqlite.model_copy(update={"catalog": pg_url})
    queries = labelled_queries(manifest, args.queries, seed=args.seed)
    services = {"SQLite": SearchService(sqlite), "PostgreSQL": SearchService(on_pg)}
    rows: list[list[object]] = []
    try:
        for kind in CLASSES:
            chosen = [q for q in queries if q.kind == kind]
            if not chosen:
                continue
            answers = {db: [answered(s, q) for q in chosen] for db, s in services.items()}
            hits = {db: sum(any_page for any_page, _ in a) for db, a in answers.items()}
            own = {db: sum(own_page for _, own_page in a) for db, a in answers.items()}
            same = sum(
                top_pages(services["SQLite"], q.text) == top_pages(services["PostgreSQL"], q.text)
                for q in chosen
            )
            example = chosen[0].text
            rows.append(
                [
                    name,
                    kind,
                    len(chosen),
                    f"{hits['SQLite'] / len(chosen):.2f}",
                    f"{hits['PostgreSQL'] / len(chosen):.2f}",
                    f"{own['SQLite'] / len(chosen):.2f}",
                    f"{own['PostgreSQL'] / len(chosen):.2f}",
                    f"{same}/{len(chosen)}",
                    f"`{example}`",
                ]
            )
    finally:
        for service in services.values():
            service.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=800, help="Scale site pages (0: none).")
    parser.add_argument("--source", type=Path, default=CRAWL_TILES)
    parser.add_argument("--queries", type=int, default=100, help="Queries per class and site.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--postgres", help="URL of an empty PostgreSQL database to use.")
    add_report_arguments(parser)
    args = parser.parse_args()
    report = Report("Keyword search: hit@10 on labelled queries, SQLite vs PostgreSQL", args)
    sites: list[tuple[str, int | None]] = [("sample", None)]
    if args.pages:
        sites.append((f"scale-{args.pages}", args.pages))
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as tmp, postgres(args.postgres) as (admin, create):
        for name, pages in sites:
            if create:
                sys.path.insert(0, str(ROOT / "tests"))
                from support.postgres import create_database

                url = create_database(admin, name.replace("-", "_"))
            elif len(sites) > 1:
                raise SystemExit("--postgres takes one empty database: give --pages 0")
            else:
                url = admin
            rows += evaluate(name, pages, args, url, Path(tmp))
    report.line(
        "Answered: a page holding every clean query word is in the first 10 results. "
        "Own page: the page the query was made from is in the first 10 (stricter: other pages "
        "holding the same words compete with it). "
        "Same top 10: the keyword ranking's first 10 page ids are identical, in order, on "
        "both databases."
    )
    report.line()
    report.table(
        [
            "site",
            "class",
            "queries",
            "hit@10 SQLite",
            "hit@10 PostgreSQL",
            "own page@10 SQLite",
            "own page@10 PostgreSQL",
            "same top 10",
            "e.g.",
        ],
        rows,
    )
    report.finish()


if __name__ == "__main__":
    main()
