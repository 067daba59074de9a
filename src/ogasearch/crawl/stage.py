"""The crawl stage: the art listing -> ``pages`` rows -> content pages -> ``files`` rows.

Two steps, both resumable and idempotent:

1. Walk the listing (``walk``): new slugs become ``pages`` rows in state ``listed``.
2. Fetch every ``listed`` page, every ``fetched`` page not checked for ``recheck_days`` and
   every ``failed`` page with attempts left, conditionally when validators are known. Each
   page is claimed, fetched and written in one transaction (``_fetch_pages``, the page loop;
   rows are written by ``persist``): a kill loses at most that page's request, and a re-run
   neither duplicates nor loses a row.

A 304 only touches ``checked_at``; a 200 whose parsed record hashes the same as before changes
nothing else either. 404/410 makes a page ``gone`` (its files ``present = false``) until the
listing shows it again. A body with neither a title nor a node id (a maintenance page, a
markup change) is a failure, not an empty record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, Select, and_, case, or_, select, update

from ogasearch.catalog.db import utcnow
from ogasearch.catalog.runner import Pending, run
from ogasearch.catalog.schema import pages
from ogasearch.crawl.content import parse_content_page
from ogasearch.crawl.http import FetchError, PoliteClient
from ogasearch.crawl.persist import mark_failed, mark_gone, record_sha256, write_page
from ogasearch.crawl.urls import on_site
from ogasearch.crawl.walk import walk_listing
from ogasearch.settings import Settings

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # a failed page is retried on later runs until it has failed this often


@dataclass
class CrawlStats:
    """What one crawl run did (counts of pages unless said otherwise)."""

    listed: int = 0  # new slugs found in the listing
    listing_pages: int = 0  # listing pages requested
    fetched: int = 0  # content pages that came with a body (200)
    not_modified: int = 0  # content pages answered 304
    new: int = 0  # pages parsed for the first time
    changed: int = 0  # re-fetched pages whose parsed record changed
    gone: int = 0  # 404/410
    failed: int = 0  # content pages and listing pages that failed this run
    requests: int = 0  # HTTP requests made (robots.txt and retries included)


def crawl(
    engine: Engine, settings: Settings, client: PoliteClient, full: bool = False
) -> CrawlStats:
    """Walk the listing, then fetch the pages that are new, due for a re-check or failed."""
    stats = CrawlStats()
    start_requests = client.request_count
    try:
        walked = walk_listing(engine, settings, client, full)
        stats.listing_pages = walked.listing_pages
        stats.listed = walked.listed
        stats.failed = walked.failed
        _fetch_pages(engine, settings, client, stats)
    finally:
        stats.requests = client.request_count - start_requests
    return stats


def _fetch_pages(
    engine: Engine, settings: Settings, client: PoliteClient, stats: CrawlStats
) -> None:
    """The page loop: claim one due page at a time, crawl it, record the result with it. A
    page is due at most once per run (its ``checked_at`` is set when it is done), so the loop
    needs no cursor."""
    run_start = utcnow()
    due = Pending(_due_pages(run_start, run_start - timedelta(days=settings.recheck_days)), pages)

    def process(conn: Connection, rows: Sequence[Row]) -> None:
        _crawl_page(conn, rows[0], settings, client, stats)

    def on_error(conn: Connection, row: Row, exc: Exception) -> None:
        mark_failed(conn, row, f"internal error: {exc!r}")
        stats.failed += 1

    run(engine, due, process, desc="pages", unit="page", on_error=on_error)


def _due_pages(run_start: datetime, recheck_before: datetime) -> Select:
    due = or_(
        pages.c.state == "listed",
        and_(
            pages.c.state == "fetched",
            or_(pages.c.checked_at.is_(None), pages.c.checked_at < recheck_before),
        ),
        and_(pages.c.state == "failed", pages.c.attempts < MAX_ATTEMPTS),
    )
    not_this_run = or_(pages.c.checked_at.is_(None), pages.c.checked_at < run_start)
    return (
        select(
            pages.c.id,
            pages.c.slug,
            pages.c.url,
            pages.c.state,
            pages.c.etag,
            pages.c.last_modified,
            pages.c.record_sha256,
            pages.c.attempts,
        )
        .where(due, not_this_run)
        .order_by(case((pages.c.state == "listed", 0), else_=1), pages.c.id)
    )


def _crawl_page(
    conn: Connection, row: Row, settings: Settings, client: PoliteClient, stats: CrawlStats
) -> None:
    url = on_site(row.url, settings.site_root)
    try:
        fetched = client.get(url, etag=row.etag, last_modified=row.last_modified)
    except FetchError as exc:
        if exc.permanent and exc.status in (404, 410):
            mark_gone(conn, row, exc.reason)
            stats.gone += 1
        else:
            mark_failed(conn, row, exc.reason)
            stats.failed += 1
        return
    now = utcnow()
    if fetched.not_modified:
        values: dict[str, Any] = {"checked_at": now}
        if row.state != "fetched" and row.record_sha256 is not None:
            values.update(state="fetched", attempts=0, error=None)
        conn.execute(update(pages).where(pages.c.id == row.id).values(**values))
        stats.not_modified += 1
        return
    stats.fetched += 1
    page = parse_content_page(fetched.body, fetched.url)
    if page.title is None and page.node_id is None:
        mark_failed(conn, row, "not a content page: no title and no node id in the markup")
        stats.failed += 1
        return
    digest = record_sha256(page)
    validators = {"etag": fetched.etag, "last_modified": fetched.last_modified}
    done = {"state": "fetched", "attempts": 0, "error": None, "fetched_at": now, "checked_at": now}
    if digest == row.record_sha256:
        conn.execute(update(pages).where(pages.c.id == row.id).values(**validators, **done))
        return
    write_page(conn, row.id, page, {"record_sha256": digest, **validators, **done})
    if row.record_sha256 is None:
        stats.new += 1
    else:
        stats.changed += 1
