"""Writing what the crawl learns into the catalog: ``pages``, people, licences, tags, ``files``.

Every function takes an open connection and runs inside the caller's transaction, so a page's
rows change together or not at all. Rows are replaced, never duplicated: a re-run writes the
same rows again. URLs are stored as the site gives them (``https://opengameart.org/...``
stays so); the client maps them onto the configured site when fetching.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, Row, String, Table, delete, insert, select, update

from ogasearch.catalog.db import record_failure, utcnow
from ogasearch.catalog.dialect import insert_ignore
from ogasearch.catalog.schema import (
    authors,
    files,
    licenses,
    page_authors,
    page_licenses,
    page_tags,
    pages,
    tags,
)
from ogasearch.crawl.content import ContentPage, FileLink
from ogasearch.crawl.listing import ListingEntry
from ogasearch.crawl.people import Person
from ogasearch.crawl.urls import file_name_from_url

STAGE = "crawl"  # the stage named in ``failures`` rows


def insert_listed(conn: Connection, entries: list[ListingEntry]) -> int:
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
        inserted += insert_ignore(conn, pages, values, ["slug"])
    revived = [slug for slug, state in existing.items() if state == "gone"]
    if revived:
        conn.execute(
            update(pages)
            .where(pages.c.slug.in_(revived))
            .values(state="listed", attempts=0, error=None)
        )
    return inserted


def record_sha256(page: ContentPage) -> str:
    """The hash of the parsed record without where it was fetched from: it detects real change."""
    record = asdict(page)
    for key in ("slug", "url"):
        record.pop(key)
    return hashlib.sha256(
        json.dumps(record, sort_keys=True, default=str, ensure_ascii=False).encode()
    ).hexdigest()


def write_page(conn: Connection, page_id: int, page: ContentPage, values: dict[str, Any]) -> None:
    """Store a parsed page: its ``pages`` row (plus ``values``), people, licences, tags, files."""
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


def mark_gone(conn: Connection, row: Row, reason: str) -> None:
    """The page answered 404/410: ``gone``, its files no longer present."""
    conn.execute(
        update(pages)
        .where(pages.c.id == row.id)
        .values(state="gone", error=reason, checked_at=utcnow())
    )
    conn.execute(update(files).where(files.c.page_id == row.id).values(present=False))


def mark_failed(conn: Connection, row: Row, reason: str) -> None:
    """The page could not be crawled this time: ``failed``, one more attempt, a failure row."""
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
    name_type = table.c.name.type
    name = _clip(name, name_type.length if isinstance(name_type, String) else None) or ""
    has_url = "url" in table.c
    found = conn.execute(
        select(table.c.id, *([table.c.url] if has_url else [])).where(table.c.name == name)
    ).first()
    if found is None:
        values: dict[str, Any] = {"name": name}
        if has_url:
            values["url"] = url
        insert_ignore(conn, table, values, ["name"])
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


def _clip(text: str | None, length: int | None) -> str | None:
    if text is None or length is None:
        return text
    return text[:length]
