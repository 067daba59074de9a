"""The claim-and-record runner every per-item stage runs on, on a real SQLite catalog."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import Engine, Row, insert, select, update
from sqlalchemy.engine import Connection

from ogasearch.catalog import open_catalog, record_failure
from ogasearch.catalog.runner import Pending, ProcessBatch, run
from ogasearch.catalog.schema import failures, pages


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    with engine.begin() as conn:
        conn.execute(
            insert(pages),
            [{"slug": f"p{i}", "url": f"https://x/p{i}", "state": "listed"} for i in range(7)],
        )
    return engine


def _listed() -> Pending:
    query = select(pages.c.id, pages.c.slug).where(pages.c.state == "listed").order_by(pages.c.id)
    return Pending(query, pages)


def _states(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(pages.c.slug, pages.c.state)).all())


def _mark(state: str, seen: list[list[str]]) -> ProcessBatch:
    def process(conn: Connection, rows: Sequence[Row]) -> None:
        seen.append([row.slug for row in rows])
        ids = [row.id for row in rows]
        conn.execute(update(pages).where(pages.c.id.in_(ids)).values(state=state))

    return process


def test_batches_until_nothing_is_pending(engine: Engine) -> None:
    seen: list[list[str]] = []
    claimed = run(engine, _listed(), _mark("fetched", seen), desc="t", batch=3)
    assert claimed == 7
    assert [len(batch) for batch in seen] == [3, 3, 1]
    assert set(_states(engine).values()) == {"fetched"}


def test_limit_caps_the_rows_claimed(engine: Engine) -> None:
    seen: list[list[str]] = []
    claimed = run(engine, _listed(), _mark("fetched", seen), desc="t", batch=3, limit=4)
    assert claimed == 4 and [len(batch) for batch in seen] == [3, 1]
    assert sorted(_states(engine).values()) == ["fetched"] * 4 + ["listed"] * 3


def test_cursor_visits_a_row_left_pending_once_per_run(engine: Engine) -> None:
    """A stage that leaves rows pending (retried in a later run) still ends, each row seen once."""
    seen: list[str] = []

    def leave_pending(conn: Connection, rows: Sequence[Row]) -> None:
        seen.extend(row.slug for row in rows)
        record_failure(conn, "t", rows[0].slug, "try again later")

    pending = Pending(_listed().query, pages, cursor=pages.c.id)
    assert run(engine, pending, leave_pending, desc="t", batch=2, limit=20) == 7
    assert seen == [f"p{i}" for i in range(7)]
    with engine.connect() as conn:
        assert len(conn.execute(select(failures)).all()) == 4  # one per batch, committed


def test_a_failing_batch_rolls_back_and_on_error_records_its_rows(engine: Engine) -> None:
    def process(conn: Connection, rows: Sequence[Row]) -> None:
        conn.execute(update(pages).where(pages.c.id == rows[0].id).values(state="fetched"))
        if rows[0].slug == "p2":
            raise RuntimeError("boom")

    def on_error(conn: Connection, row: Row, exc: Exception) -> None:
        conn.execute(update(pages).where(pages.c.id == row.id).values(state="failed"))
        record_failure(conn, "t", row.slug, f"internal error: {exc!r}")

    assert run(engine, _listed(), process, desc="t", on_error=on_error) == 7
    states = _states(engine)
    assert states.pop("p2") == "failed" and set(states.values()) == {"fetched"}
    with engine.connect() as conn:
        assert conn.execute(select(failures.c.item, failures.c.reason)).all() == [
            ("p2", "internal error: RuntimeError('boom')")
        ]


def test_without_on_error_a_failing_batch_ends_the_run(engine: Engine) -> None:
    def process(conn: Connection, rows: Sequence[Row]) -> None:
        conn.execute(update(pages).where(pages.c.id == rows[0].id).values(state="fetched"))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run(engine, _listed(), process, desc="t")
    assert set(_states(engine).values()) == {"listed"}  # the batch was rolled back
