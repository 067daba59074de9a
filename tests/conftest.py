"""Session-wide fixtures: real servers started once for the whole test run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.postgres import PostgresUnavailable, create_database, postgres_server


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A real PostgreSQL server (Debian's package) for the session; skipped only if none starts."""
    try:
        with postgres_server() as url:
            yield url
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL server could not be started: {exc}")


@pytest.fixture
def pg_url(pg_admin_url: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    return create_database(pg_admin_url, name)
