"""Sections of work that one worker at a time may do, for workers sharing one catalog.

Work that is not a set of rows to split (creating tables, walking the listing, rewriting the
keyword index) is done by one worker at a time: ``serialise`` (until the transaction ends) and
``one_at_a_time`` (across transactions) take a PostgreSQL advisory lock named after the work.
Without them, workers started together on an empty catalog collide in ``CREATE TABLE``
(duplicate ``pg_type`` rows), deadlock rewriting the keyword index, and each walk the whole
listing. SQLite serialises writers already, so there both do nothing.

Rows that can be split between workers are claimed instead (``ogasearch.catalog.claims``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from ogasearch.catalog.dialect import is_postgres


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
