"""The keyword index's tables, outside the schema because they are database-specific.

SQLite: an FTS5 table ``page_fts`` (rowid = page id, one column per field of ``FIELDS``) and
``page_fts_state`` (each page's document hash). PostgreSQL: ``page_fts`` (page id, document
hash, weighted ``tsvector``) with a GIN index. ``ogasearch.index.keywords`` writes them and
``ogasearch.search.keywords`` reads them; both create them here when missing.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from ogasearch.catalog.dialect import is_postgres

# The searchable fields of a page, in the FTS5 table's column order.
FIELDS = ("title", "tags", "authors", "description", "files")

_SQLITE_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS page_fts USING fts5("
    f"{', '.join(FIELDS)}, tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE TABLE IF NOT EXISTS page_fts_state (page_id INTEGER PRIMARY KEY, sha256 TEXT)",
)
_PG_DDL = (
    "CREATE TABLE IF NOT EXISTS page_fts (page_id INTEGER PRIMARY KEY REFERENCES pages(id) "
    "ON DELETE CASCADE, sha256 TEXT NOT NULL, document tsvector NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_page_fts_document ON page_fts USING GIN (document)",
)


def ensure_keyword_index(conn: Connection) -> None:
    """Create the keyword index's tables if they are missing."""
    for ddl in _PG_DDL if is_postgres(conn) else _SQLITE_DDL:
        conn.execute(text(ddl))
