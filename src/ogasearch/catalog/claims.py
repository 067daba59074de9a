"""Claiming pending work so that several workers can share one catalog.

``claim`` runs the caller's SELECT for pending rows inside a transaction and yields the rows;
the caller processes them and records results on the same connection, and the transaction
commits when the block ends. On PostgreSQL the rows are locked with ``FOR NO KEY UPDATE
SKIP LOCKED``, so concurrent workers never get the same row and a killed worker's locks vanish with
its connection. SQLite serialises writers; one ``update`` process per SQLite catalog.

Stages do not call ``claim`` in a loop themselves: ``ogasearch.catalog.runner`` does. Work
that cannot be split into rows takes a lock from ``ogasearch.catalog.locks`` instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Engine, Row, Select, Table
from sqlalchemy.engine import Connection

from ogasearch.catalog.dialect import is_postgres

__all__ = ["claim"]


@contextmanager
def claim(
    engine: Engine, query: Select, limit: int, lock: Table
) -> Iterator[tuple[Connection, Sequence[Row]]]:
    """Yield ``(connection, rows)`` for up to ``limit`` rows of ``query``, locked on ``lock``."""
    query = query.limit(limit)
    if is_postgres(engine):
        # FOR NO KEY UPDATE: a claimed row's key never changes, and a plain FOR UPDATE would
        # also block other workers inserting rows that reference it (a foreign key takes
        # FOR KEY SHARE), which deadlocks two workers linking each other's claimed rows
        query = query.with_for_update(skip_locked=True, of=lock, key_share=True)
    with engine.begin() as conn:
        rows = conn.execute(query).all()
        yield conn, rows
