"""Keyword search over titles, tags, authors, descriptions and file names.

A full-text index, never a scan: SQLite FTS5 (``page_fts``, rowid = page id) or PostgreSQL
``tsvector`` with a GIN index. ``refresh_keywords`` keeps it in step with the catalog: it
recomputes each page's document and rewrites only the pages whose document changed, so it is
cheap to run after every crawl and safe to kill.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select, text

from ogasearch.catalog.claims import serialise
from ogasearch.catalog.db import is_postgres
from ogasearch.catalog.schema import (
    authors,
    files,
    members,
    page_authors,
    page_tags,
    pages,
    tags,
)
from ogasearch.search.ranking import BM25_WEIGHTS

FIELDS = ("title", "tags", "authors", "description", "files")
_BM25_ARGS = ", ".join(str(w) for w in BM25_WEIGHTS)  # one weight per FTS5 column, FIELDS order

_SQLITE_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS page_fts USING fts5("
    "title, tags, authors, description, files, tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE TABLE IF NOT EXISTS page_fts_state (page_id INTEGER PRIMARY KEY, sha256 TEXT)",
)
_PG_DDL = (
    "CREATE TABLE IF NOT EXISTS page_fts (page_id INTEGER PRIMARY KEY REFERENCES pages(id) "
    "ON DELETE CASCADE, sha256 TEXT NOT NULL, document tsvector NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_page_fts_document ON page_fts USING GIN (document)",
)
# Weights: a title hit counts more than a tag, more than an author, more than the rest.
_PG_DOCUMENT = (
    "setweight(to_tsvector('simple', :title), 'A') || setweight(to_tsvector('simple', :tags), 'B')"
    " || setweight(to_tsvector('simple', :authors), 'B')"
    " || setweight(to_tsvector('simple', :description), 'D')"
    " || setweight(to_tsvector('simple', :files), 'C')"
)
_PG_INSERT = f"INSERT INTO page_fts (page_id, sha256, document) VALUES (:id, :sha, {_PG_DOCUMENT})"
_TOKEN = re.compile(r"\w+", re.UNICODE)


@dataclass
class KeywordStats:
    pages: int = 0
    updated: int = 0
    removed: int = 0


def ensure_keyword_index(conn: Connection) -> None:
    for ddl in _PG_DDL if is_postgres(conn) else _SQLITE_DDL:
        conn.execute(text(ddl))


def _documents(conn: Connection) -> dict[int, dict[str, str]]:
    """Each fetched page's searchable text, by field."""
    docs: dict[int, dict[str, str]] = {}
    for row in conn.execute(
        select(pages.c.id, pages.c.title, pages.c.description).where(pages.c.state == "fetched")
    ):
        docs[row.id] = {"title": row.title or "", "description": row.description or ""}
    grouped: dict[str, dict[int, list[str]]] = {f: defaultdict(list) for f in FIELDS}
    for page_id, name in conn.execute(
        select(page_tags.c.page_id, tags.c.name)
        .join(tags, tags.c.id == page_tags.c.tag_id)
        .order_by(page_tags.c.page_id, page_tags.c.position)
    ):
        grouped["tags"][page_id].append(name)
    for page_id, name in conn.execute(
        select(page_authors.c.page_id, authors.c.name)
        .join(authors, authors.c.id == page_authors.c.author_id)
        .order_by(page_authors.c.page_id, page_authors.c.position)
    ):
        grouped["authors"][page_id].append(name)
    for page_id, name in conn.execute(
        select(files.c.page_id, files.c.name).where(files.c.present.is_(True)).order_by(files.c.id)
    ):
        grouped["files"][page_id].append(name)
    for page_id, path in conn.execute(
        select(files.c.page_id, members.c.path)
        .join(files, files.c.id == members.c.file_id)
        .where(members.c.kind == "image", files.c.present.is_(True))
        .order_by(members.c.id)
    ):
        grouped["files"][page_id].append(path.replace("/", " "))
    for page_id, doc in docs.items():
        for name in ("tags", "authors", "files"):
            doc[name] = " ".join(grouped[name].get(page_id, []))
    return docs


def _sha(doc: dict[str, str]) -> str:
    return hashlib.sha256("\x1f".join(doc[f] for f in FIELDS).encode()).hexdigest()


def refresh_keywords(engine: Engine) -> KeywordStats:
    """Bring the full-text index in step with the catalog (one transaction)."""
    stats = KeywordStats()
    with engine.begin() as conn:
        serialise(conn, "keywords.refresh")  # one worker at a time rewrites the index
        ensure_keyword_index(conn)
        docs = _documents(conn)
        stats.pages = len(docs)
        state_table = "page_fts" if is_postgres(conn) else "page_fts_state"
        known: dict[int, str] = dict(
            conn.execute(text(f"SELECT page_id, sha256 FROM {state_table}")).all()
        )
        for page_id in set(known) - set(docs):
            _delete(conn, page_id)
            stats.removed += 1
        for page_id, doc in docs.items():
            sha = _sha(doc)
            if known.get(page_id) == sha:
                continue
            _delete(conn, page_id)
            _insert(conn, page_id, sha, doc)
            stats.updated += 1
    return stats


def _delete(conn: Connection, page_id: int) -> None:
    if is_postgres(conn):
        conn.execute(text("DELETE FROM page_fts WHERE page_id = :id"), {"id": page_id})
    else:
        conn.execute(text("DELETE FROM page_fts WHERE rowid = :id"), {"id": page_id})
        conn.execute(text("DELETE FROM page_fts_state WHERE page_id = :id"), {"id": page_id})


def _insert(conn: Connection, page_id: int, sha: str, doc: dict[str, str]) -> None:
    if is_postgres(conn):
        conn.execute(
            text(_PG_INSERT),
            {"id": page_id, "sha": sha, **doc},
        )
    else:
        conn.execute(
            text(
                "INSERT INTO page_fts (rowid, title, tags, authors, description, files) "
                "VALUES (:id, :title, :tags, :authors, :description, :files)"
            ),
            {"id": page_id, **doc},
        )
        conn.execute(
            text("INSERT INTO page_fts_state (page_id, sha256) VALUES (:id, :sha)"),
            {"id": page_id, "sha": sha},
        )


def tokens(query: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(query)][:20]


def search_pages(conn: Connection, query: str, limit: int) -> list[tuple[int, float]]:
    """Pages matching every word of ``query`` (prefix match on each), best first."""
    words = tokens(query)
    if not words:
        return []
    ensure_keyword_index(conn)
    if is_postgres(conn):
        tsquery = " & ".join(f"{w}:*" for w in words)
        rows = conn.execute(
            text(
                "SELECT page_id, ts_rank(document, to_tsquery('simple', :q)) AS rank "
                "FROM page_fts WHERE document @@ to_tsquery('simple', :q) "
                "ORDER BY rank DESC, page_id LIMIT :limit"
            ),
            {"q": tsquery, "limit": limit},
        )
        return [(int(pid), float(rank)) for pid, rank in rows]
    match = " AND ".join('"' + w.replace('"', '""') + '"*' for w in words)
    rows = conn.execute(
        text(
            f"SELECT rowid, bm25(page_fts, {_BM25_ARGS}) AS rank FROM page_fts "
            "WHERE page_fts MATCH :q ORDER BY rank, rowid LIMIT :limit"
        ),
        {"q": match, "limit": limit},
    )
    # bm25 is lower-is-better and negative; report a positive score, higher is better.
    return [(int(pid), -float(rank)) for pid, rank in rows]
