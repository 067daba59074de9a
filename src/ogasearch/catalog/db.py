"""Opening the catalog: one SQLAlchemy engine for SQLite (WAL) or PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, insert, select
from sqlalchemy.engine import make_url

from ogasearch.catalog.fingerprints import add_patch_changes
from ogasearch.catalog.locks import serialise
from ogasearch.catalog.migrate import upgrade_schema
from ogasearch.catalog.schema import SCHEMA_VERSION, failures, meta, metadata

log = logging.getLogger(__name__)


class CatalogError(RuntimeError):
    """The catalog cannot be opened or is from an incompatible version."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def open_catalog(url: str) -> Engine:
    """Create the engine, the tables if missing, and check the schema version (an older
    catalog is upgraded: ``catalog.migrate``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_pragmas)
    elif parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, pool_pre_ping=True)
    else:
        raise CatalogError(f"unsupported catalog URL {url!r}: use sqlite:/// or postgresql://")
    with engine.begin() as conn:
        serialise(conn, "catalog.schema")  # workers started together create the tables once
        metadata.create_all(conn)
        version = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
        if version is None:
            conn.execute(insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
        elif upgrade_schema(conn, int(version)) != SCHEMA_VERSION:
            raise CatalogError(
                f"catalog schema version {version} != {SCHEMA_VERSION} expected by this ogasearch"
            )
        add_patch_changes(conn)
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()


def record_failure(conn: Connection, stage: str, item: str, reason: str) -> None:
    """Append a failure to the log, in the caller's transaction, and say it in the run's log."""
    log.warning("%s failed: %s: %s", stage, item, reason)
    conn.execute(insert(failures).values(stage=stage, item=item, reason=reason, at=utcnow()))


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    with engine.begin() as conn:
        yield conn
