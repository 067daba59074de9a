"""The keyword index's tables, outside the schema because the writer rebuilds them at will.

Every row holds text already normalised by ``ogasearch.index.terms`` (space-separated stems),
so both databases see the same tokens:

- ``keyword_docs``: each page's terms by field (``FIELDS``) and a hash of them; the reader
  ranks candidate pages on these fields in Python, the same on SQLite and PostgreSQL.
- ``keyword_fts``: the full-text index that finds the candidates: an FTS5 table (rowid = page
  id, ``unicode61`` splits on the spaces) on SQLite, a ``to_tsvector('simple', ...)`` column
  with a GIN index on PostgreSQL.
- ``keyword_vocab``: the index's own vocabulary (surface word, its stem, how many pages hold
  it), for prefix checks, document frequencies and typo corrections.

``KEYWORD_FORMAT`` is the layout's version; the catalog's ``meta`` row ``keyword_format``
holds the version the stored index was written in, and ``ogasearch.index.keywords`` rebuilds
an older index by itself (format 1 was the weighted ``page_fts`` of raw text).
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    text,
)

from ogasearch.catalog.dialect import is_postgres
from ogasearch.catalog.schema import meta

# The searchable fields of a page.
FIELDS = ("title", "tags", "authors", "description", "files")
KEYWORD_FORMAT = 2
FORMAT_KEY = "keyword_format"
STATS_KEY = "keyword_stats"  # meta row: {"pages": N, "avg": {field: mean words per page}}

keyword_metadata = MetaData()

keyword_docs = Table(
    "keyword_docs",
    keyword_metadata,
    Column("page_id", Integer, primary_key=True, autoincrement=False),
    Column("sha256", String(64), nullable=False),
    *(Column(field, Text, nullable=False) for field in FIELDS),
)

keyword_vocab = Table(
    "keyword_vocab",
    keyword_metadata,
    Column("word", String(200), primary_key=True),
    Column("term", String(200), nullable=False, index=True),
    Column("pages", Integer, nullable=False),
)

_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS keyword_fts USING fts5(document, tokenize = 'unicode61')"
)
_PG_FTS = (
    "CREATE TABLE IF NOT EXISTS keyword_fts (page_id INTEGER PRIMARY KEY, "
    "document tsvector NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_keyword_fts_document ON keyword_fts USING GIN (document)",
)
# Tables of older formats, dropped when the index is rebuilt.
_OLD_TABLES = ("page_fts_state", "page_fts")


def ensure_keyword_index(conn: Connection) -> None:
    """Create the keyword index's tables if they are missing."""
    keyword_metadata.create_all(conn, checkfirst=True)
    for ddl in _PG_FTS if is_postgres(conn) else (_SQLITE_FTS,):
        conn.execute(text(ddl))


def stored_format(conn: Connection) -> int:
    """The format the stored keyword index was written in (0: none yet, or unmarked)."""
    value = conn.execute(select(meta.c.value).where(meta.c.key == FORMAT_KEY)).scalar()
    return int(value) if value is not None else 0


def rebuild_keyword_index(conn: Connection) -> None:
    """Drop every keyword table (of any format), create the current ones, mark the format."""
    for table in (*_OLD_TABLES, "keyword_fts"):
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    keyword_metadata.drop_all(conn, checkfirst=True)
    ensure_keyword_index(conn)
    conn.execute(delete(meta).where(meta.c.key == FORMAT_KEY))
    conn.execute(insert(meta).values(key=FORMAT_KEY, value=str(KEYWORD_FORMAT)))
