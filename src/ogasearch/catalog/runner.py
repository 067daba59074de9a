"""The claim-and-record loop every per-item stage runs on.

A stage says *what is pending* (a ``Pending``: an ordered SELECT of the rows it still has to
do and the table whose rows to lock) and *how to process one batch* (a function of the open
transaction and the claimed rows that records each row's result, and each failure with
``record_failure``, on that transaction). ``run`` owns the loop: it counts the pending rows
for the progress bar, claims a batch (``claims.claim``: ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so several workers share the work), hands it to the stage, commits the batch's
results together, and goes on until nothing is pending or ``limit`` rows were claimed.

A row the stage leaves pending (a failure it retries in a *later* run) would be claimed again
at once; a ``Pending`` with a ``cursor`` (a unique column the query is ordered by) visits
every row at most once per run instead. A stage whose query no longer matches a row once it
is processed (its state changed, or it was checked in this run) needs no cursor.

A batch that raises is rolled back. Without ``on_error`` the exception ends the run; with it,
``on_error`` is called with a new transaction, each row of the batch and the exception (to
mark the rows failed: it must take them out of ``pending``, or give a cursor) and the run goes
on with the next batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Engine, Row, Select, Table, func, select
from sqlalchemy.engine import Connection

from ogasearch.catalog.claims import claim
from ogasearch.progress import progress

log = logging.getLogger(__name__)

ProcessBatch = Callable[[Connection, Sequence[Row]], None]
OnError = Callable[[Connection, Row, Exception], None]


@dataclass(frozen=True)
class Pending:
    """The rows a stage has left to do: ``query`` (ordered), claimed with locks on ``lock``;
    with a ``cursor`` column each row is visited at most once per run."""

    query: Select
    lock: Table
    cursor: ColumnElement | None = None

    def count(self, engine: Engine) -> int:
        """How many rows are pending now."""
        with engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(self.query.order_by(None).subquery())
            ).scalar_one()


def run(
    engine: Engine,
    pending: Pending,
    process: ProcessBatch,
    *,
    desc: str,
    unit: str = "item",
    batch: int = 1,
    limit: int | None = None,
    total: int | None = None,
    on_error: OnError | None = None,
) -> int:
    """Claim and process ``pending`` rows, ``batch`` per transaction, until none is left or
    ``limit`` rows were claimed; drive a progress bar named ``desc`` counting ``unit``s of
    ``total`` (counted from ``pending`` when not given). Return how many rows were claimed."""
    if total is None:
        total = pending.count(engine)
    if limit is not None:
        total = min(total, limit)
    cursor = None
    claimed = 0
    with progress(total, desc, unit=unit) as bar:
        while limit is None or claimed < limit:
            size = batch if limit is None else min(batch, limit - claimed)
            query = pending.query
            if pending.cursor is not None and cursor is not None:
                query = query.where(pending.cursor > cursor)
            rows: Sequence[Row] = ()
            try:
                with claim(engine, query, size, pending.lock) as (conn, rows):
                    if not rows:
                        break
                    if pending.cursor is not None:
                        cursor = rows[-1]._mapping[pending.cursor]
                    process(conn, rows)
            except Exception as exc:  # a bug or a database error in one batch: its rows fail
                if on_error is None or not rows:
                    raise
                log.exception("%s: a batch of %d failed", desc, len(rows))
                with engine.begin() as conn:
                    for row in rows:
                        on_error(conn, row, exc)
            claimed += len(rows)
            bar.update(len(rows))
    return claimed
