"""Catalog upgrades: what ``open_catalog`` changes in an older catalog, and the data moves
the next ``update`` does by itself.

Version 1 -> 2 (patch fingerprints): version 1 kept one row per (fingerprint, image) in a
table ``patches`` with two indexes (about 45 bytes per fingerprint, ~2.4 KB per image).
Version 2 keeps them as one blob per image in ``embeddings.patches``
(``catalog.fingerprints``). ``upgrade_schema`` adds the column (instant); the rows are moved
by ``move_legacy_patches``, which the index stage calls: batch by batch (each batch one
transaction, so a kill resumes where it stopped), with a progress bar, then the old table is
dropped. No image is crawled, downloaded or embedded again.

Version 2 -> 3 (kind vectors): the table ``kind_vectors`` is new (``create_all`` makes it);
the embed stage then embeds again, from the blob store and with its progress bar, every image
that has no kind vector of the current recipe (``embed.stage``); nothing is crawled again.
Version 3 -> 4 (the map): a new table ``map_points``, created by ``open_catalog`` like any
missing table; the next ``update`` lays the map out (``artmap.stage``).
Version 4 -> 5: the indexes on ``images.pixel_sha256`` and ``files.sha256`` are dropped
(nothing looks a row up by them), and those of the canonical and structure hashes are rebuilt
on their first 12 hex digits (``schema.hash_key``); measured in docs/benchmarks.md. Compact
vectors need no schema change: ``embed.compact`` re-encodes stored vectors on the next
``update``.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    bindparam,
    delete,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.schema import CreateIndex

from ogasearch.catalog.fingerprints import encode_fingerprints, note_patch_change
from ogasearch.catalog.schema import HASH_KEY_INDEXES, embeddings, meta
from ogasearch.progress import progress

log = logging.getLogger(__name__)

BATCH = 1_000  # images moved per transaction
# dropped by version 3: unused, and the hash indexes HASH_KEY_INDEXES replace
UNUSED_INDEXES = ("ix_images_pixel_sha256", "ix_files_sha256")
FULL_HASH_INDEXES = ("ix_images_canonical_sha256", "ix_images_structure_sha256")

# The version-1 table, only to read it out and drop it (not part of ``schema.metadata``).
legacy_patches = Table(
    "patches",
    MetaData(),
    Column("hash", BigInteger, primary_key=True),
    Column("image_id", Integer, primary_key=True),
)


def upgrade_schema(conn: Connection, version: int) -> int:
    """Bring the tables of a catalog at ``version`` to the current one; return the new version
    (unchanged when there is nothing this code knows how to upgrade)."""
    if version == 1:
        blob = LargeBinary().compile(dialect=conn.dialect)
        if "patches" not in {c["name"] for c in inspect(conn).get_columns("embeddings")}:
            conn.execute(text(f"ALTER TABLE embeddings ADD COLUMN patches {blob}"))
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="2"))
        log.info("catalog upgraded to version 2: patch fingerprints move to embeddings.patches")
        version = 2
    if version == 2:  # the kind_vectors table: created by create_all, filled by the embed stage
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="3"))
        log.info("catalog upgraded to version 3: the next embed adds a kind vector per image")
        version = 3
    if version == 3:  # map_points is created by create_all before this runs
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="4"))
        log.info("catalog upgraded to version 4: the map's points (the next update lays it out)")
        version = 4
    if version == 4:
        for name in (*UNUSED_INDEXES, *FULL_HASH_INDEXES):
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
        for index in HASH_KEY_INDEXES:
            conn.execute(CreateIndex(index, if_not_exists=True))
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="5"))
        log.info("catalog upgraded to version 5: unused indexes dropped")
        version = 5
    return version


def has_legacy_patches(engine: Engine) -> bool:
    """True while a version-1 ``patches`` table is still there (rows not moved yet)."""
    with engine.connect() as conn:
        return inspect(conn).has_table(legacy_patches.name)


def move_legacy_patches(engine: Engine) -> int:
    """Move the version-1 ``patches`` rows into ``embeddings.patches`` blobs, then drop the
    table; return the number of images moved (0 when there is no such table)."""
    if not has_legacy_patches(engine):
        return 0
    rows = legacy_patches.c
    with engine.connect() as conn:
        total = conn.execute(select(func.count(func.distinct(rows.image_id)))).scalar_one()
    moved = 0
    with progress(total, "move fingerprints", "img") as bar:
        while True:
            with engine.begin() as conn:
                ids = list(
                    conn.execute(
                        select(rows.image_id).distinct().order_by(rows.image_id).limit(BATCH)
                    ).scalars()
                )
                if not ids:
                    break
                owned: dict[int, list[int]] = defaultdict(list)
                for value, ident in conn.execute(
                    select(rows.hash, rows.image_id).where(rows.image_id.in_(ids))
                ):
                    owned[int(ident)].append(int(value))
                conn.execute(
                    update(embeddings)
                    .where(embeddings.c.image_id == bindparam("ident"))
                    .values(patches=bindparam("blob")),
                    [{"ident": i, "blob": encode_fingerprints(v)} for i, v in owned.items()],
                )
                conn.execute(delete(legacy_patches).where(rows.image_id.in_(ids)))
                note_patch_change(conn)
            moved += len(ids)
            bar.update(len(ids))
    with engine.begin() as conn:
        legacy_patches.drop(conn, checkfirst=True)
    log.info("moved the patch fingerprints of %d images into embeddings.patches", moved)
    return moved
