"""Copy a catalog into another database: how the embedded SQLite catalog moves to PostgreSQL.

The command is ``ogasearch copy-catalog SRC_URL DST_URL``, which also rebuilds the keyword
index in the target (``ogasearch.index.keywords``); this module copies the tables.

Every table of the schema is copied row for row, ids included (vectors in the index are keyed
by ``images.id``, and blobs by content, so nothing else has to change), parents before
children, in batches. The target must be empty (a new database); its tables are created by
``open_catalog``. On PostgreSQL the id sequences are moved past the copied ids so new rows get
fresh ones. The keyword index (SQLite FTS5 or PostgreSQL ``tsvector``, not part of the schema)
is not copied: the caller rebuilds it from the copied rows. Stop every ``update`` on the source
first: rows written during the copy may be missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, Integer, func, insert, select, text

from ogasearch.catalog.db import CatalogError, open_catalog
from ogasearch.catalog.dialect import is_postgres
from ogasearch.catalog.fingerprints import CHANGES_KEY
from ogasearch.catalog.migrate import has_legacy_patches
from ogasearch.catalog.schema import meta, metadata

BATCH = 2_000
OWN_KEYS = ("schema_version", CHANGES_KEY)  # ``meta`` rows every new catalog starts with


@dataclass
class CopyStats:
    rows: dict[str, int] = field(default_factory=dict)


def copy_catalog(source_url: str, target_url: str, batch: int = BATCH) -> CopyStats:
    """Copy every row of the catalog at ``source_url`` into the empty one at ``target_url``."""
    source = open_catalog(source_url)
    target = open_catalog(target_url)
    stats = CopyStats()
    try:
        if has_legacy_patches(source):
            raise CatalogError(
                "the source catalog still holds version-1 patch fingerprint rows: run "
                "`ogasearch update` (or `ogasearch index`) on it first to convert them"
            )
        _check_empty(target)
        for table in metadata.sorted_tables:  # parents before children
            query = select(table).order_by(*table.primary_key.columns)
            if table is meta:  # the target's open_catalog wrote these keys itself
                query = query.where(meta.c.key.not_in(OWN_KEYS))
            copied = 0
            with source.connect() as src, target.begin() as dst:
                result = src.execution_options(stream_results=True, yield_per=batch).execute(query)
                for rows in result.partitions(batch):
                    dst.execute(insert(table), [dict(row._mapping) for row in rows])
                    copied += len(rows)
            stats.rows[table.name] = copied
        if is_postgres(target):
            _move_sequences(target)
    finally:
        source.dispose()
        target.dispose()
    return stats


def _check_empty(engine: Engine) -> None:
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            query = select(func.count()).select_from(table)
            if table is meta:
                query = query.where(meta.c.key.not_in(OWN_KEYS))
            if conn.execute(query).scalar_one():
                raise CatalogError(
                    f"the target catalog is not empty (table {table.name} has rows): "
                    "copy into a new database"
                )


def _move_sequences(engine: Engine) -> None:
    """Set each serial id sequence to the largest copied id (PostgreSQL)."""
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            keys = list(table.primary_key.columns)
            if len(keys) != 1 or not isinstance(keys[0].type, Integer) or keys[0].foreign_keys:
                continue
            column = keys[0].name
            sequence = conn.execute(
                text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": table.name, "column": column},
            ).scalar()
            if sequence is None:
                continue
            conn.execute(
                text(
                    f"SELECT setval(:sequence, COALESCE((SELECT MAX({column}) FROM {table.name}),"
                    " 0) + 1, false)"
                ),
                {"sequence": sequence},
            )
