"""Keyword search over titles, tags, authors, descriptions and file names.

A full-text index, never a scan: SQLite FTS5 (``page_fts``, rowid = page id) or PostgreSQL
``tsvector`` with a GIN index (tables: ``ogasearch.catalog.fulltext``). The index is written by
``ogasearch.index.keywords.refresh_keywords`` at the end of every ``update``.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, text

from ogasearch.catalog.dialect import is_postgres
from ogasearch.catalog.fulltext import ensure_keyword_index
from ogasearch.match.ranking import BM25_WEIGHTS

_BM25_ARGS = ", ".join(str(w) for w in BM25_WEIGHTS)  # one weight per FTS5 column, FIELDS order
_TOKEN = re.compile(r"\w+", re.UNICODE)


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
