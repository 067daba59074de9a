"""Walking the art listing (2D art, newest first, 144 a page) into ``listed`` pages rows.

A normal run stops at the first listing page whose entries are all known (the incremental
feed); a full walk (the first ever, or ``full=True``) reads every page. The walk's next page
is kept in ``meta`` with each page's rows, so a killed walk continues where it stopped, and
listing pages are fetched conditionally with the validators of their last fetch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from ogasearch.catalog.db import record_failure, utcnow
from ogasearch.catalog.locks import one_at_a_time
from ogasearch.catalog.schema import http_validators, meta
from ogasearch.crawl.html import to_int
from ogasearch.crawl.http import FetchError, PoliteClient
from ogasearch.crawl.listing import parse_listing
from ogasearch.crawl.persist import STAGE, insert_listed
from ogasearch.crawl.urls import ITEMS_PER_PAGE, listing_url
from ogasearch.progress import progress
from ogasearch.settings import Settings

log = logging.getLogger(__name__)

WALK_KEY = "crawl.listing_walk"  # {"mode": "full"|"new", "next_page": N} while a walk runs
FULL_WALK_DONE_KEY = "crawl.full_walk_done_at"
LAST_PAGE_KEY = "crawl.listing_last_page"


@dataclass
class WalkCounts:
    """What one walk of the listing did."""

    listing_pages: int = 0  # listing pages requested
    listed: int = 0  # new slugs found
    failed: int = 0  # listing pages that failed (the walk stops at the first)


def walk_listing(
    engine: Engine, settings: Settings, client: PoliteClient, full: bool
) -> WalkCounts:
    """Walk the listing (all of it, or its new entries) and add the slugs found as pages rows."""
    counts = WalkCounts()
    # Several workers on one catalog walk it one after the other: the first walks it (full or
    # new entries), the next ones find the walk done and ask only for page 0.
    with one_at_a_time(engine, WALK_KEY):
        with engine.connect() as conn:
            state = _get_json(conn, WALK_KEY)
            full_walk_done = _get_meta(conn, FULL_WALK_DONE_KEY) is not None
        if state is None:
            mode = "full" if full or not full_walk_done else "new"
            state = {"mode": mode, "next_page": 0}
        elif full:
            state["mode"] = "full"
        resumed = int(state["next_page"]) > 0
        completed = _walk(engine, settings, client, state["mode"], int(state["next_page"]), counts)
        if completed and resumed:
            # Submissions made while the walk was interrupted are on the first pages.
            _walk(engine, settings, client, "new", 0, counts)
    return counts


def _walk(
    engine: Engine,
    settings: Settings,
    client: PoliteClient,
    mode: str,
    page: int,
    counts: WalkCounts,
) -> bool:
    """Walk listing pages from ``page``; True when the walk reached its end."""
    with engine.connect() as conn:
        known_last = to_int(_get_meta(conn, LAST_PAGE_KEY))
    previous: list[str] | None = None
    with progress(None, f"listing ({mode})", unit="page") as bar:
        while True:
            url = listing_url(settings.site_root, page)
            counts.listing_pages += 1
            etag, last_modified = _stored_validators(engine, url)
            try:
                fetched = client.get(url, etag=etag, last_modified=last_modified)
            except FetchError as exc:
                if exc.permanent and exc.status in (404, 410):
                    _finish_walk(engine, mode)  # past the end of the listing
                    return True
                _listing_failed(engine, url, exc.reason, counts)
                return False
            bar.update(1)
            if fetched.not_modified:  # unchanged since its entries were stored
                with engine.begin() as conn:
                    finished = mode == "new" or (known_last is not None and page >= known_last)
                    _advance_walk(conn, mode, page, finished)
                if finished:
                    return True
                previous = None
                page += 1
                continue
            listing = parse_listing(fetched.body, fetched.url)
            if not listing.entries and page == 0:
                _listing_failed(engine, url, "no entries on the first listing page", counts)
                return False
            slugs = [entry.slug for entry in listing.entries]
            last_page = listing.last_page
            if last_page is None and listing.total is not None:
                last_page = max(0, math.ceil(listing.total / ITEMS_PER_PAGE) - 1)
            with engine.begin() as conn:
                inserted = insert_listed(conn, listing.entries)
                _save_validators(conn, url, fetched.etag, fetched.last_modified, fetched.body)
                if last_page is not None:
                    _set_meta(conn, LAST_PAGE_KEY, str(last_page))
                finished = (
                    not slugs
                    or slugs == previous  # a site that repeats its last page
                    or (listing.current_page is not None and listing.current_page < page)
                    or (last_page is not None and page >= last_page)
                    or (mode == "new" and inserted == 0)  # the incremental feed ends here
                )
                _advance_walk(conn, mode, page, finished)
            counts.listed += inserted
            if finished:
                return True
            known_last = last_page if last_page is not None else known_last
            previous = slugs
            page += 1


def _stored_validators(engine: Engine, url: str) -> tuple[str | None, str | None]:
    """The ETag and Last-Modified of the last fetch of ``url`` (None, None if never fetched)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(http_validators.c.etag, http_validators.c.last_modified).where(
                http_validators.c.url == url
            )
        ).first()
    return (row.etag, row.last_modified) if row else (None, None)


def _save_validators(
    conn: Connection, url: str, etag: str | None, last_modified: str | None, body: bytes
) -> None:
    values = {
        "etag": etag,
        "last_modified": last_modified,
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "fetched_at": utcnow(),
    }
    changed = conn.execute(
        update(http_validators).where(http_validators.c.url == url).values(**values)
    ).rowcount
    if changed == 0:
        conn.execute(insert(http_validators).values(url=url, **values))


def _listing_failed(engine: Engine, url: str, reason: str, counts: WalkCounts) -> None:
    """Stop this walk; it resumes at this page on the next run."""
    counts.failed += 1
    with engine.begin() as conn:
        record_failure(conn, STAGE, f"listing {url}", reason)
    log.warning("listing %s failed: %s; the walk resumes there next run", url, reason)


def _advance_walk(conn: Connection, mode: str, page: int, finished: bool) -> None:
    if finished:
        _finish_walk_in(conn, mode)
    else:
        _set_meta(conn, WALK_KEY, json.dumps({"mode": mode, "next_page": page + 1}))


def _finish_walk(engine: Engine, mode: str) -> None:
    with engine.begin() as conn:
        _finish_walk_in(conn, mode)


def _finish_walk_in(conn: Connection, mode: str) -> None:
    conn.execute(delete(meta).where(meta.c.key == WALK_KEY))
    if mode == "full":
        _set_meta(conn, FULL_WALK_DONE_KEY, utcnow().isoformat())


def _get_meta(conn: Connection, key: str) -> str | None:
    return conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()


def _get_json(conn: Connection, key: str) -> dict[str, Any] | None:
    value = _get_meta(conn, key)
    if value is None:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("next_page"), int):
        return None
    return data


def _set_meta(conn: Connection, key: str, value: str) -> None:
    if conn.execute(update(meta).where(meta.c.key == key).values(value=value)).rowcount == 0:
        conn.execute(insert(meta).values(key=key, value=value))
