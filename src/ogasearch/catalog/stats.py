"""Counts over the catalog, for ``ogasearch stats``, the API and tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from ogasearch.catalog.schema import files, images, members, pages


def catalog_stats(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:

        def by_state(table: Any, column: Any) -> dict[str, int]:
            rows = conn.execute(select(column, func.count()).select_from(table).group_by(column))
            return {str(state): int(n) for state, n in rows}

        whole = images.c.parent_id.is_(None)
        return {
            "pages": by_state(pages, pages.c.state),
            "files": by_state(files, files.c.state),
            "members": by_state(members, members.c.state),
            "images": int(conn.execute(select(func.count()).where(whole)).scalar_one()),
            "tiles": int(
                conn.execute(
                    select(func.count()).where(images.c.parent_id.is_not(None))
                ).scalar_one()
            ),
            "indexed": int(
                conn.execute(select(func.count()).where(images.c.indexed.is_(True))).scalar_one()
            ),
        }


def has_indexed(engine: Engine) -> bool:
    """Whether any image is indexed (one row looked at, not a count)."""
    with engine.connect() as conn:
        query = select(images.c.id).where(images.c.indexed.is_(True)).limit(1)
        return conn.execute(query).first() is not None


def art_types(engine: Engine) -> list[str]:
    """The art types of the catalog's pages ("2D Art", ...), sorted: the values a search may
    filter on."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(pages.c.art_type).where(pages.c.art_type.is_not(None)).distinct()
        )
        return sorted(str(value) for value in rows.scalars())
