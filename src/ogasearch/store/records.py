"""The catalog side of the blob store: one ``blobs`` row per stored blob."""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from ogasearch.catalog.schema import blobs


def register_blob(conn: Connection, sha256: str, size: int) -> None:
    """Insert the ``blobs`` row for a stored blob unless it is there already."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(blobs)
        .values(sha256=sha256, size=size)
        .on_conflict_do_nothing(index_elements=["sha256"])
    )
