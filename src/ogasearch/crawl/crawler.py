"""The crawl stage: the art listing -> ``pages`` rows -> content pages -> ``files`` rows.

Two steps, both resumable and idempotent:

1. Walk the listing (2D art, newest first, 144 a page). New slugs become ``pages`` rows in
   state ``listed``. A normal run stops at the first listing page whose entries are all known
   (the incremental feed); a full walk (the first ever, or ``full=True``) reads every page.
   The walk's next page is kept in ``meta`` with each page's rows, so a killed walk continues.
2. Fetch every ``listed`` page, every ``fetched`` page not checked for ``recheck_days`` and
   every ``failed`` page with attempts left, conditionally when validators are known. Each
   page is claimed, fetched and written in one transaction: a kill loses at most that page's
   request, and a re-run neither duplicates nor loses a row.

A 304 only touches ``checked_at``; a 200 whose parsed record hashes the same as before changes
nothing else either. 404/410 makes a page ``gone`` (its files ``present = false``) until the
listing shows it again. A body with neither a title nor a node id (a maintenance page, a
markup change) is a failure, not an empty record. File URLs are stored as the page gives them
(``https://opengameart.org/...`` stays so); the client maps them onto the configured site.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Select,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from ogasearch.catalog.claims import claim, one_at_a_time
from ogasearch.catalog.db import record_failure, utcnow
from ogasearch.catalog.schema import (
    authors,
    files,
    http_validators,
    licenses,
    meta,
    page_authors,
    page_licenses,
    page_tags,
    pages,
    tags,
)
from ogasearch.crawl.http import FetchError, PoliteClient
from ogasearch.crawl.markup import (
    ITEMS_PER_PAGE,
    ContentPage,
    FileLink,
    ListingEntry,
    Person,
    file_name_from_url,
    listing_url,
    parse_content_page,
    parse_listing,
    rebase,
)
from ogasearch.progress import progress
from ogasearch.settings import Settings

log = logging.getLogger(__name__)

STAGE = "crawl"
MAX_ATTEMPTS = 3  # a failed page is retried on later runs until it has failed this often
WALK_KEY = "crawl.listing_walk"  # {"mode": "full"|"new", "next_page": N} while a walk runs
FULL_WALK_DONE_KEY = "crawl.full_walk_done_at"
LAST_PAGE_KEY = "crawl.listing_last_page"


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
        _walk_listing(engine, settings, client, full, stats)
        _fetch_pages(engine, settings, client, stats)
    finally:
        stats.requests = client.request_count - start_requests
    return stats


# --------------------------------------------------------------------------------------------
# (a) the listing


def _walk_listing(
    engine: Engine, settings: Settings, client: PoliteClient, full: bool, stats: CrawlStats
) -> None:
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
        completed = _walk(engine, settings, client, state["mode"], int(state["next_page"]), stats)
        if completed and resumed:
            # Submissions made while the walk was interrupted are on the first pages.
            _walk(engine, settings, client, "new", 0, stats)


def _walk(
    engine: Engine,
    settings: Settings,
    client: PoliteClient,
    mode: str,
    page: int,
    stats: CrawlStats,
) -> bool:
    """Walk listing pages from ``page``; True when the walk reached its end."""
    with engine.connect() as conn:
        known_last = _to_int(_get_meta(conn, LAST_PAGE_KEY))
    previous: list[str] | None = None
    with progress(None, f"listing ({mode})", unit="page") as bar:
        while True:
            url = listing_url(settings.site_root, page)
            stats.listing_pages += 1
            try:
                fetched = client.get(url, **_stored_validators(engine, url))
            except FetchError as exc:
                if exc.permanent and exc.status in (404, 410):
                    _finish_walk(engine, mode)  # past the end of the listing
                    return True
                _listing_failed(engine, url, exc.reason, stats)
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
                _listing_failed(engine, url, "no entries on the first listing page", stats)
                return False
            slugs = [entry.slug for entry in listing.entries]
            last_page = listing.last_page
            if last_page is None and listing.total is not None:
                last_page = max(0, math.ceil(listing.total / ITEMS_PER_PAGE) - 1)
            with engine.begin() as conn:
                inserted = _insert_listed(conn, listing.entries)
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
            stats.listed += inserted
            if finished:
                return True
            known_last = last_page if last_page is not None else known_last
            previous = slugs
            page += 1


def _stored_validators(engine: Engine, url: str) -> dict[str, str | None]:
    with engine.connect() as conn:
        row = conn.execute(
            select(http_validators.c.etag, http_validators.c.last_modified).where(
                http_validators.c.url == url
            )
        ).first()
    return {"etag": row.etag, "last_modified": row.last_modified} if row else {}


def _listing_failed(engine: Engine, url: str, reason: str, stats: CrawlStats) -> None:
    """Stop this walk; it resumes at this page on the next run."""
    stats.failed += 1
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


def _insert_listed(conn: Connection, entries: list[ListingEntry]) -> int:
    """Add unknown slugs as ``listed``; bring back ``gone`` pages that are listed again."""
    if not entries:
        return 0
    slugs = [entry.slug for entry in entries]
    existing = dict(
        conn.execute(select(pages.c.slug, pages.c.state).where(pages.c.slug.in_(slugs))).all()
    )
    now = utcnow()
    inserted = 0
    for entry in entries:
        if entry.slug in existing:
            continue
        values = {
            "slug": entry.slug,
            "url": entry.url,  # as given; the client maps opengameart.org onto the site
            "title": entry.title,
            "state": "listed",
            "attempts": 0,
            "files_unavailable": False,
            "listed_at": now,
        }
        inserted += _insert_ignore(conn, pages, values, ["slug"])
    revived = [slug for slug, state in existing.items() if state == "gone"]
    if revived:
        conn.execute(
            update(pages)
            .where(pages.c.slug.in_(revived))
            .values(state="listed", attempts=0, error=None)
        )
    return inserted


# --------------------------------------------------------------------------------------------
# (b) content pages


def _fetch_pages(
    engine: Engine, settings: Settings, client: PoliteClient, stats: CrawlStats
) -> None:
    run_start = utcnow()
    query = _due_pages(run_start, run_start - timedelta(days=settings.recheck_days))
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    with progress(total, "pages", unit="page") as bar:
        while True:
            row: Row | None = None
            try:
                with claim(engine, query, 1, pages) as (conn, rows):
                    if not rows:
                        break
                    row = rows[0]
                    _crawl_page(conn, row, settings, client, stats)
            except Exception as exc:  # a bug or a database error on one page: log it, go on
                if row is None:
                    raise
                log.exception("page %s", row.url)
                with engine.begin() as conn:
                    _mark_failed(conn, row, f"internal error: {exc!r}")
                stats.failed += 1
            bar.update(1)


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
    url = _on_site(row.url, settings.site_root)
    try:
        fetched = client.get(url, etag=row.etag, last_modified=row.last_modified)
    except FetchError as exc:
        if exc.permanent and exc.status in (404, 410):
            _mark_gone(conn, row, exc.reason)
            stats.gone += 1
        else:
            _mark_failed(conn, row, exc.reason)
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
        _mark_failed(conn, row, "not a content page: no title and no node id in the markup")
        stats.failed += 1
        return
    record = _record(page)
    digest = hashlib.sha256(
        json.dumps(record, sort_keys=True, default=str, ensure_ascii=False).encode()
    ).hexdigest()
    validators = {"etag": fetched.etag, "last_modified": fetched.last_modified}
    done = {"state": "fetched", "attempts": 0, "error": None, "fetched_at": now, "checked_at": now}
    if digest == row.record_sha256:
        conn.execute(update(pages).where(pages.c.id == row.id).values(**validators, **done))
        return
    _write_page(conn, row.id, page, {"record_sha256": digest, **validators, **done})
    if row.record_sha256 is None:
        stats.new += 1
    else:
        stats.changed += 1


def _on_site(url: str, site_root: str) -> str:
    """A stored page URL on today's site root (a local site may have moved to another port)."""
    rebased = rebase(url, site_root)
    parts, root = urlsplit(rebased), urlsplit(site_root)
    if parts.netloc == root.netloc:
        return rebased
    return urlunsplit((root.scheme, root.netloc, parts.path, parts.query, ""))


def _record(page: ContentPage) -> dict[str, Any]:
    """The parsed record without where it was fetched from; its hash detects real change."""
    record = asdict(page)
    for key in ("slug", "url"):
        record.pop(key)
    return record


def _write_page(conn: Connection, page_id: int, page: ContentPage, values: dict[str, Any]) -> None:
    conn.execute(
        update(pages)
        .where(pages.c.id == page_id)
        .values(
            node_id=page.node_id,
            title=page.title,
            post_date=page.post_date,
            post_date_text=_clip(page.post_date_text, 200),
            art_type=_clip(page.art_type, 200),
            description=page.description,
            attribution=page.attribution,
            favorites=page.favorites,
            files_unavailable=page.files_unavailable,
            **values,
        )
    )
    _write_people(conn, page_id, page)
    _write_named(
        conn,
        page_id,
        page_licenses,
        "license_id",
        licenses,
        [(lic.name, lic.url) for lic in page.licenses],
    )
    _write_named(conn, page_id, page_tags, "tag_id", tags, [(tag, None) for tag in page.tags])
    _write_files(conn, page_id, page)


def _write_people(conn: Connection, page_id: int, page: ContentPage) -> None:
    conn.execute(delete(page_authors).where(page_authors.c.page_id == page_id))
    roles: list[tuple[Person | None, str]] = [
        (page.author, "author"),
        (page.submitter, "submitter"),
    ]
    roles += [(person, "collaborator") for person in page.collaborators]
    seen: set[tuple[int, str]] = set()
    for position, (person, role) in enumerate(roles):
        if person is None:
            continue
        author_id = _named_id(conn, authors, person.name, person.url)
        if (author_id, role) in seen:
            continue
        seen.add((author_id, role))
        conn.execute(
            insert(page_authors).values(
                page_id=page_id, author_id=author_id, role=role, position=position
            )
        )


def _write_named(
    conn: Connection,
    page_id: int,
    link_table: Table,
    link_column: str,
    named: Table,
    items: list[tuple[str, str | None]],
) -> None:
    """Replace a page's links to named rows (licences, tags), creating the named rows."""
    conn.execute(delete(link_table).where(link_table.c.page_id == page_id))
    seen: set[int] = set()
    for position, (name, url) in enumerate(items):
        item_id = _named_id(conn, named, name, url)
        if item_id in seen:
            continue
        seen.add(item_id)
        conn.execute(
            insert(link_table).values(
                {"page_id": page_id, link_column: item_id, "position": position}
            )
        )


def _named_id(conn: Connection, table: Table, name: str, url: str | None) -> int:
    """The id of the row called ``name`` in ``table``, created if missing (url filled in)."""
    name = _clip(name, table.c.name.type.length) or ""
    has_url = "url" in table.c
    found = conn.execute(
        select(table.c.id, *([table.c.url] if has_url else [])).where(table.c.name == name)
    ).first()
    if found is None:
        values: dict[str, Any] = {"name": name}
        if has_url:
            values["url"] = url
        _insert_ignore(conn, table, values, ["name"])
        return conn.execute(select(table.c.id).where(table.c.name == name)).scalar_one()
    if has_url and url and found.url != url:
        conn.execute(update(table).where(table.c.id == found.id).values(url=url))
    return found.id


def _write_files(conn: Connection, page_id: int, page: ContentPage) -> None:
    """Upsert the page's files and previews; files no longer linked get ``present = false``."""
    wanted: list[tuple[str, str, int, FileLink]] = []  # url, kind, position among its kind
    seen: set[str] = set()
    for kind, links in (("file", page.files), ("preview", page.previews)):
        position = 0
        for link in links:
            url = link.url  # as given: never re-encoded; the client rebases when fetching
            if url not in seen:
                seen.add(url)
                wanted.append((url, kind, position, link))
                position += 1
    existing = dict(
        conn.execute(select(files.c.url, files.c.id).where(files.c.page_id == page_id)).all()
    )
    for url, kind, position, link in wanted:
        values = {
            "name": _clip(file_name_from_url(url), 1000) or "",
            "link_text": _clip(link.link_text, 1000),
            "kind": kind,
            "fid": link.fid,
            "declared_size": link.declared_size,
            "position": position,
            "present": True,
        }
        if url in existing:
            conn.execute(update(files).where(files.c.id == existing[url]).values(**values))
        else:
            conn.execute(
                insert(files).values(
                    page_id=page_id, url=url, state="pending", attempts=0, **values
                )
            )
    dropped = [file_id for url, file_id in existing.items() if url not in seen]
    if dropped:
        conn.execute(update(files).where(files.c.id.in_(dropped)).values(present=False))


def _mark_gone(conn: Connection, row: Row, reason: str) -> None:
    conn.execute(
        update(pages)
        .where(pages.c.id == row.id)
        .values(state="gone", error=reason, checked_at=utcnow())
    )
    conn.execute(update(files).where(files.c.page_id == row.id).values(present=False))


def _mark_failed(conn: Connection, row: Row, reason: str) -> None:
    conn.execute(
        update(pages)
        .where(pages.c.id == row.id)
        .values(
            state="failed",
            attempts=pages.c.attempts + 1,
            error=reason,
            checked_at=utcnow(),
        )
    )
    record_failure(conn, STAGE, f"page {row.url}", reason)


# --------------------------------------------------------------------------------------------
# catalog helpers


def _insert_ignore(
    conn: Connection, table: Table, values: dict[str, Any], conflict: list[str]
) -> int:
    """INSERT, doing nothing if a row with the same ``conflict`` columns exists; rows added."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(table)
        .values(values)
        .on_conflict_do_nothing(index_elements=conflict)
        .returning(*table.primary_key.columns)
    )
    return len(conn.execute(statement).all())


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


def _clip(text: str | None, length: int | None) -> str | None:
    if text is None or length is None:
        return text
    return text[:length]


def _to_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
