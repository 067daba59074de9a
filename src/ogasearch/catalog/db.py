"""Opening the catalog: one SQLAlchemy engine for SQLite (WAL) or PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, insert, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, OperationalError

from ogasearch.catalog.fingerprints import add_patch_changes
from ogasearch.catalog.locks import serialise
from ogasearch.catalog.migrate import upgrade_schema
from ogasearch.catalog.schema import SCHEMA_VERSION, failures, meta, metadata

log = logging.getLogger(__name__)


class CatalogError(RuntimeError):
    """The catalog cannot be opened or is from an incompatible version."""


class CatalogMissing(CatalogError):
    """There is no catalog where the settings point, and the command may not create one."""


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, fit to print."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"


def utcnow() -> datetime:
    return datetime.now(UTC)


def open_catalog(url: str, create: bool = True) -> Engine:
    """Create the engine, the tables if missing, and check the schema version.

    ``create=False`` (the read-only commands) creates nothing: it raises ``CatalogMissing``
    when the SQLite file or the tables are not there.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise CatalogError(f"{masked_url(url)}: use sqlite:///FILE or postgresql://...") from None
    missing = CatalogMissing(
        f"no catalog at {masked_url(url)}: build it first with `ogasearch update`"
    )
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            if not create and not Path(parsed.database).is_file():
                raise missing
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_pragmas)
    elif parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, pool_pre_ping=True)
    else:
        raise CatalogError(
            f"unsupported catalog URL {masked_url(url)!r}: use sqlite:/// or postgresql://"
        )
    try:
        _prepare(engine, create, missing)
    except OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise CatalogError(f"cannot open the catalog at {masked_url(url)}: {reason}") from None
    except BaseException:
        engine.dispose()
        raise
    return engine


def _prepare(engine: Engine, create: bool, missing: CatalogMissing) -> None:
    """Refuse a missing catalog unless ``create``; create the tables; check the version."""
    if not create:
        with engine.connect() as conn:
            if not inspect(conn).has_table(meta.name):
                raise missing
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


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: object) -> None:
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
