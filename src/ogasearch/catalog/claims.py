"""Claiming pending work so that several workers can share one catalog.

``claim`` runs the caller's SELECT for pending rows inside a transaction and yields the rows;
the caller processes them and records results on the same connection, and the transaction
commits when the block ends. On PostgreSQL the rows are locked with ``FOR UPDATE SKIP
LOCKED``, so concurrent workers never get the same row and a killed worker's locks vanish with
its connection. SQLite serialises writers; one ``update`` process per SQLite catalog.

Work that is not a set of rows to split (creating tables, walking the listing, rewriting the
keyword index) is done by one worker at a time: ``serialise`` (until the transaction ends) and
``one_at_a_time`` (across transactions) take a PostgreSQL advisory lock named after the work.
Without them, workers started together on an empty catalog collide in ``CREATE TABLE``
(duplicate ``pg_type`` rows), deadlock rewriting the keyword index, and each walk the whole
listing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Engine, Row, Select, Table, text
from sqlalchemy.engine import Connection

from ogasearch.catalog.db import is_postgres


@contextmanager
def claim(
    engine: Engine, query: Select, limit: int, lock: Table
) -> Iterator[tuple[Connection, Sequence[Row]]]:
    """Yield ``(connection, rows)`` for up to ``limit`` rows of ``query``, locked on ``lock``."""
    query = query.limit(limit)
    if is_postgres(engine):
        query = query.with_for_update(skip_locked=True, of=lock)
    with engine.begin() as conn:
        rows = conn.execute(query).all()
        yield conn, rows


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def serialise(conn: Connection, name: str) -> None:
    """Wait until no other worker is in section ``name``; hold it until ``conn``'s transaction
    ends (PostgreSQL; SQLite already serialises writers)."""
    if is_postgres(conn):
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(name)})


@contextmanager
def one_at_a_time(engine: Engine, name: str) -> Iterator[None]:
    """Hold section ``name`` for the block, across any number of transactions (PostgreSQL: a
    session advisory lock on a connection of its own, released when the block ends or the
    process dies)."""
    if not is_postgres(engine):
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock_key(name)})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key(name)})
            conn.commit()
