"""Bringing a catalog cut by older tiling rules up to the code's ``TILING_VERSION``.

The catalog's ``meta`` table holds ``tiling_version``, the version of the rules its tiles
were cut with. A catalog without it that has cut sheets was cut by version 1. When the
stored version is older than the code's, every whole image the tiles stage had finished is
set back to pending and the version is written, in one transaction; the tiles stage then
re-decides each one as usual (with its progress bar, resumable after a kill): tiles whose
box is still a tile stay as they are (with their vectors), tiles that are no longer cut are
deleted with their vectors and patches, new ones are added.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import Connection

from ogasearch.catalog.locks import serialise
from ogasearch.catalog.schema import images, meta

log = logging.getLogger(__name__)

TILING_VERSION = 4  # bump whenever find_tiles' rules change which pictures or cells are cut
VERSION_KEY = "tiling_version"
_FIRST_VERSION = 1  # catalogs cut before the version was recorded


def stored_version(conn: Connection) -> int | None:
    """The tiling version the catalog's tiles were cut with; None if nothing was cut yet."""
    value = conn.execute(select(meta.c.value).where(meta.c.key == VERSION_KEY)).scalar()
    if value is not None:
        return int(value)
    cut = conn.execute(
        select(images.c.id)
        .where(images.c.parent_id.is_(None), images.c.tiles_state == "done")
        .limit(1)
    ).scalar()
    return _FIRST_VERSION if cut is not None else None


def upgrade_tiling(engine: Engine) -> int:
    """Set every cut whole image back to pending if its rules are older than the code's, and
    record the code's version; return how many images will be re-decided. Workers started
    together do this once (the section is serialised)."""
    with engine.begin() as conn:
        serialise(conn, "tiles.upgrade")
        version = stored_version(conn)
        if version == TILING_VERSION:
            return 0
        if version is not None and version > TILING_VERSION:
            log.warning("tiles cut by newer rules (%s > %s) left alone", version, TILING_VERSION)
            return 0
        reset = 0
        if version is not None:
            reset = conn.execute(
                update(images)
                .where(images.c.parent_id.is_(None), images.c.tiles_state == "done")
                .values(tiles_state="pending")
            ).rowcount
        values = {"value": str(TILING_VERSION)}
        if (
            conn.execute(update(meta).where(meta.c.key == VERSION_KEY).values(**values)).rowcount
            == 0
        ):
            conn.execute(insert(meta).values(key=VERSION_KEY, **values))
    if reset:
        log.info("tiling rules %s -> %s: %d images to re-decide", version, TILING_VERSION, reset)
    return reset
