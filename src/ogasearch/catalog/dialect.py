"""What differs between the catalog's two databases (SQLite, PostgreSQL), in one place.

Every statement that is not portable SQLAlchemy Core goes through a helper here, so the rest
of the code base never asks which database it is talking to by hand.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.dialects import postgresql, sqlite


def is_postgres(bind: Engine | Connection) -> bool:
    """True on PostgreSQL, False on SQLite."""
    return bind.dialect.name == "postgresql"


def insert_ignore(
    conn: Connection, table: Table, values: dict[str, Any], conflict: list[str]
) -> int:
    """INSERT ``values`` into ``table`` unless a row with the same ``conflict`` columns exists
    (``ON CONFLICT DO NOTHING`` on both databases); return the number of rows added (0 or 1)."""
    dialect = postgresql if is_postgres(conn) else sqlite
    statement = (
        dialect.insert(table)
        .values(values)
        .on_conflict_do_nothing(index_elements=conflict)
        .returning(*table.primary_key.columns)
    )
    return len(conn.execute(statement).all())
