"""The catalog side of the blob store: one ``blobs`` row per stored blob."""

from __future__ import annotations

from sqlalchemy import Connection

from ogasearch.catalog.dialect import insert_ignore
from ogasearch.catalog.schema import blobs


def register_blob(conn: Connection, sha256: str, size: int) -> None:
    """Insert the ``blobs`` row for a stored blob unless it is there already."""
    insert_ignore(conn, blobs, {"sha256": sha256, "size": size}, ["sha256"])
