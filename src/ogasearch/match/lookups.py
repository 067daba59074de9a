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

from ogasearch.catalog.schema import HASH_KEY_CHARS, files, hash_key, images
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
    """Indexed image ids whose canonical or structure hash (``kind``) is ``value``: looked up
    by its prefix (``schema.hash_key``), the whole value compared here. (In SQL, ``column =
    value`` beside it would make SQLite fold the prefix into a constant and scan the table.)
    Two hashes sharing a 48-bit prefix would share the ``HASH_MATCHES`` rows; never seen."""
    column = HASH_COLUMNS[kind]
    rows = conn.execute(
        select(images.c.id, column.label("value"))
        .where(hash_key(column) == value[:HASH_KEY_CHARS], images.c.indexed.is_(True))
        .order_by(images.c.id)
        .limit(HASH_MATCHES)
    )
    return [int(r.id) for r in rows if r.value == value]


def pixel_rows_of(conn: Connection, ids: Iterable[int]) -> list[CatalogRow]:
    """``extract.pixels.pixel_rows`` (blob, tile box) of these images."""
    out: list[CatalogRow] = []
    for chunk in chunks(ids):
        out += conn.execute(pixel_rows().where(images.c.id.in_(chunk))).all()
    return out


def image_rows(conn: Connection, ids: Iterable[int]) -> dict[int, CatalogRow]:
    """What the matcher's callers read of each image: hashes, size, frames, format, tile box,
    parent, and the page of its file."""
    out: dict[int, CatalogRow] = {}
    for chunk in chunks(ids):
        for row in conn.execute(
            select(
                images.c.id,
                images.c.parent_id,
                images.c.sha256,
                images.c.pixel_sha256,
                images.c.canonical_sha256,
                images.c.structure_sha256,
                images.c.phash,
                images.c.width,
                images.c.height,
                images.c.frames,
                images.c.format,
                images.c.tile_x,
                images.c.tile_y,
                images.c.tile_w,
                images.c.tile_h,
                files.c.page_id,
            )
            .outerjoin(files, files.c.id == images.c.file_id)
            .where(images.c.id.in_(chunk))
        ):
            out[int(row.id)] = row
    return out
