"""The catalog queries behind the matcher's lookups (``match.adapters``): image ids by
canonical or structure hash, and the pixel rows of candidates (patch fingerprints are
looked up in the patch table, ``index.patches``).

Batched like every catalog read: each takes an open ``Connection`` and asks the database in
chunks of ``CHUNK`` ids. The search (``search.catalog_reads`` shares ``chunks``) and the
provenance stage read through these, so both see the same candidates.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, select

from ogasearch.catalog.schema import images
from ogasearch.extract.pixels import pixel_rows

CHUNK = 500  # ids per query (well under every driver's bound-parameter limit)
HASH_COLUMNS = {"canonical": images.c.canonical_sha256, "structure": images.c.structure_sha256}
HASH_MATCHES = 200  # most images returned for one hash value

CatalogRow = Row[*tuple[Any, ...]]  # a result row, read by column name


def chunks(ids: Iterable[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    items = list(ids)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def ids_by_hash(conn: Connection, kind: str, value: str) -> list[int]:
    """Indexed image ids whose canonical or structure hash (``kind``) is ``value``."""
    rows = conn.execute(
        select(images.c.id)
        .where(HASH_COLUMNS[kind] == value, images.c.indexed.is_(True))
        .order_by(images.c.id)
        .limit(HASH_MATCHES)
    )
    return [int(r) for r in rows.scalars()]


def pixel_rows_of(conn: Connection, ids: Iterable[int]) -> list[CatalogRow]:
    """``extract.pixels.pixel_rows`` (blob, tile box) of these images."""
    out: list[CatalogRow] = []
    for chunk in chunks(ids):
        out += conn.execute(pixel_rows().where(images.c.id.in_(chunk))).all()
    return out
