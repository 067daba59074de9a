"""The tiles stage: whole images with ``tiles_state`` pending -> tile rows, ``done``.

For each whole image (``parent_id IS NULL``) still pending, the image is opened from the blob
store (first frame, through ``open_image`` and its limits) and ``find_tiles`` looks for the
tiles of a sprite sheet or tile set. Each tile becomes an ``images`` row of its own: same
``file_id``/``member_id``/``archive_path`` as its sheet, ``parent_id`` the sheet, ``box``
``"x,y,w,h"`` and ``tile_*`` its box, ``sha256 == pixel_sha256`` the hash of its RGBA
pixels, ``phash`` its perceptual hash, ``tiles_state`` skipped (a tile is not cut again) and
``embed_state`` pending. Tiles are not stored as blobs: consumers crop them from the sheet.

The tile rows and the sheet's new state are written in one transaction, so a kill leaves a
sheet either pending without tiles or done with all of them. A re-run never duplicates a
tile: boxes already present for the sheet are left as they are (the unique key on
``(file_id, archive_path, box)`` backs this up), and present boxes that are no longer tiles
are deleted with their vectors and patches (the catalog cascades; ``unindex`` takes them
out of the vector index first). That is how a catalog cut by older rules is brought up to
date: ``upgrade.upgrade_tiling`` sets its sheets back to pending when the run starts.

A sheet whose bytes another, already cut, sheet has (the same file uploaded to several
pages) gets copies of those tile rows without being decoded again. A picture that is no
sheet is simply ``done`` with no tiles.

Failures (blob missing, undecodable or refused image) set ``tiles_state`` failed with the
reason in ``error`` and a ``failures`` row; the run goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image
from sqlalchemy import Engine, Row, delete, insert, select, update
from sqlalchemy.engine import Connection

from ogasearch.catalog.db import record_failure
from ogasearch.catalog.fingerprints import note_patch_change
from ogasearch.catalog.runner import Pending, run
from ogasearch.catalog.schema import images
from ogasearch.extract.images import (
    ImageRejected,
    open_image,
    perceptual_hash,
    pixel_sha256,
    to_rgba,
)
from ogasearch.settings import Settings
from ogasearch.tiles.grid import MIN_TILE, TileBox, find_tiles
from ogasearch.tiles.upgrade import upgrade_tiling

log = logging.getLogger(__name__)

STAGE = "tiles"
# One sheet per transaction: the decoding happens before the first write, so a SQLite catalog
# is write-locked only for the moment the rows go in, never while the next sheet is decoded.
BATCH = 1

Unindex = Callable[[list[int]], None]  # takes image ids out of the vector index, durably


class BlobPaths(Protocol):
    """What the stage needs of the blob store: where a blob lives."""

    def path(self, sha256: str) -> Any: ...


@dataclass
class TileStats:
    images: int = 0  # whole images examined
    sheets: int = 0  # ... found to be sprite sheets or tile sets
    tiles: int = 0  # tile rows written
    removed: int = 0  # tile rows deleted: boxes no longer cut (after a rules upgrade)
    redecided: int = 0  # images set back to pending by a rules upgrade
    copied: int = 0  # ... of which copied from an identical sheet cut before
    failed: int = 0  # images that could not be examined


@dataclass(frozen=True)
class TileRecord:
    """One tile as the catalog stores it."""

    box: TileBox
    pixel_sha256: str
    phash: str


def cut_tiles(
    engine: Engine,
    settings: Settings,
    store: BlobPaths | None = None,
    *,
    limit: int | None = None,
    min_size: int = MIN_TILE,
    unindex: Unindex | None = None,
) -> TileStats:
    """Cut every pending whole image (at most ``limit``) into tiles; return what was done.

    ``unindex`` removes the vectors of deleted tiles from the vector index; without it they
    stay there until ``ogasearch check --repair``."""
    if store is None:
        from ogasearch.store.blobs import BlobStore

        store = BlobStore(settings.store_dir)
    stats = TileStats(redecided=upgrade_tiling(engine))
    query = (
        select(
            images.c.id,
            images.c.file_id,
            images.c.member_id,
            images.c.archive_path,
            images.c.sha256,
            images.c.format,
        )
        .where(images.c.tiles_state == "pending", images.c.parent_id.is_(None))
        .order_by(images.c.id)
    )

    def process(conn: Connection, rows: Sequence[Row]) -> None:
        for row in rows:
            _cut_one(conn, row, settings, store, min_size, stats, unindex)

    pending = Pending(query, images, cursor=images.c.id)
    run(engine, pending, process, desc=STAGE, unit="image", batch=BATCH, limit=limit)
    return stats


def _cut_one(
    conn: Connection,
    row: Row,
    settings: Settings,
    store: BlobPaths,
    min_size: int,
    stats: TileStats,
    unindex: Unindex | None,
) -> None:
    """Examine one whole image and record its tiles and new state on ``conn``."""
    stats.images += 1
    records = _copy_from_twin(conn, row)
    if records is not None:
        stats.copied += len(records)
    else:
        try:
            records = tile_records(store.path(row.sha256), settings, min_size=min_size)
        except Exception as exc:  # any one picture's failure is its row's, not the run's
            if not isinstance(exc, ImageRejected | FileNotFoundError):
                log.exception("tiles: image %s (%s) failed", row.id, row.sha256)
            reason = _reason(exc)
            conn.execute(
                update(images)
                .where(images.c.id == row.id)
                .values(tiles_state="failed", error=reason)
            )
            record_failure(conn, STAGE, f"image {row.id}", reason)
            stats.failed += 1
            return
    stats.removed += _remove_stale(conn, row, {str(r.box) for r in records}, unindex)
    stats.tiles += _write_tiles(conn, row, records)
    if records:
        stats.sheets += 1
    conn.execute(update(images).where(images.c.id == row.id).values(tiles_state="done", error=None))


def tile_records(path: Any, settings: Settings, *, min_size: int = MIN_TILE) -> list[TileRecord]:
    """The tiles of the image file at ``path`` with their hashes (``[]``: not a sheet)."""
    with open_image(path, settings.limits) as im:
        boxes = find_tiles(im, max_tiles=settings.limits.max_tiles_per_sheet, min_size=min_size)
        if not boxes:
            return []
        rgba = to_rgba(im)
    return [_record(rgba, box) for box in boxes]


def _record(rgba: Image.Image, box: TileBox) -> TileRecord:
    tile = rgba.crop(box.pil_box)
    return TileRecord(box=box, pixel_sha256=pixel_sha256(tile), phash=perceptual_hash(tile))


def _copy_from_twin(conn: Connection, row: Row) -> list[TileRecord] | None:
    """The tiles of another sheet with the same bytes, already cut; None if there is none."""
    twin = conn.execute(
        select(images.c.id)
        .where(
            images.c.sha256 == row.sha256,
            images.c.parent_id.is_(None),
            images.c.tiles_state == "done",
            images.c.id != row.id,
        )
        .limit(1)
    ).scalar()
    if twin is None:
        return None
    tiles = conn.execute(
        select(images.c.box, images.c.pixel_sha256, images.c.phash)
        .where(images.c.parent_id == twin)
        .order_by(images.c.id)
    ).all()
    return [
        TileRecord(box=TileBox.parse(t.box), pixel_sha256=t.pixel_sha256, phash=t.phash)
        for t in tiles
    ]


def _remove_stale(conn: Connection, row: Row, boxes: set[str], unindex: Unindex | None) -> int:
    """Delete the sheet's tile rows whose box is not in ``boxes`` (vectors and fingerprints go
    with them); indexed ones leave the vector index first, and the patch table is marked
    behind. Return how many were deleted."""
    present = conn.execute(
        select(images.c.id, images.c.box, images.c.indexed).where(images.c.parent_id == row.id)
    ).all()
    stale = [t for t in present if t.box not in boxes]
    if not stale:
        return 0
    indexed = [t.id for t in stale if t.indexed]
    if indexed and unindex is not None:
        unindex(indexed)  # durable before the rows go: a kill leaves the rows to redo
    ids = [t.id for t in stale]
    for start in range(0, len(ids), 500):
        conn.execute(delete(images).where(images.c.id.in_(ids[start : start + 500])))
    if indexed:
        note_patch_change(conn)  # their fingerprints leave the patch table at the next index run
    return len(ids)


def _write_tiles(conn: Connection, row: Row, records: list[TileRecord]) -> int:
    """Insert the tile rows the sheet does not have yet; return how many were inserted."""
    if not records:
        return 0
    present = set(conn.execute(select(images.c.box).where(images.c.parent_id == row.id)).scalars())
    values = [
        {
            "file_id": row.file_id,
            "member_id": row.member_id,
            "archive_path": row.archive_path,
            "box": str(r.box),
            "parent_id": row.id,
            "tile_x": r.box.x,
            "tile_y": r.box.y,
            "tile_w": r.box.w,
            "tile_h": r.box.h,
            "sha256": r.pixel_sha256,
            "pixel_sha256": r.pixel_sha256,
            "phash": r.phash,
            "format": row.format,
            "mode": "RGBA",
            "width": r.box.w,
            "height": r.box.h,
            "frames": 1,
            "tiles_state": "skipped",
            "embed_state": "pending",
            "indexed": False,
        }
        for r in records
        if str(r.box) not in present
    ]
    if values:
        conn.execute(insert(images), values)
    return len(values)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "blob missing from the store"
    if isinstance(exc, ImageRejected):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory while cutting tiles"
    return f"{type(exc).__name__}: {exc}"
