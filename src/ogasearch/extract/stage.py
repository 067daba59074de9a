"""The extract stage: ``files`` in state ``stored`` -> ``members`` and ``images`` rows, ``done``.

Per downloaded file, by content (magic bytes, then the name's extension):
- an image: one ``images`` row (``archive_path == ""``), or the file ``failed`` if undecodable;
- an archive: walked with ``walk_archive``; one ``members`` row per entry, image members and
  nested archives stored in the blob store (with ``blobs`` rows), images registered as
  ``images`` rows (``archive_path`` = member path), nested archives walked in turn up to
  ``limits.max_archive_depth``, the entry/byte/ratio limits holding for the whole tree;
- anything else: ``done`` with no rows.

Everything about one file is written in one transaction with its new state, after its blobs
are in the store. A kill at any moment loses nothing but the file's uncommitted work, and
re-running recomputes the same rows; re-extracting a file (new content) updates rows in place
by path, so images whose bytes did not change keep their ids and later-stage state.

A corrupt or refused archive makes the file ``failed`` (with a ``failures`` row), keeping the
members read before the problem; a nested corrupt or encrypted archive only fails that member.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sqlalchemy import Engine, Row, delete, insert, select, update
from sqlalchemy.engine import Connection

from ogasearch.catalog.db import record_failure, utcnow
from ogasearch.catalog.runner import Pending, run
from ogasearch.catalog.schema import files, images, members
from ogasearch.extract.archives import (
    HEAD_BYTES,
    ArchiveBudget,
    ArchiveCorrupt,
    ArchiveEntry,
    ArchiveRefused,
    ArchiveUnsupported,
    LimitExceeded,
    MemberFailed,
    MemberRefused,
    classify,
    walk_archive,
)
from ogasearch.extract.images import ImageFacts, ImageRejected, describe_image
from ogasearch.settings import Limits, Settings
from ogasearch.store.blobs import BlobStore
from ogasearch.store.records import register_blob

log = logging.getLogger(__name__)

STAGE = "extract"


@dataclass
class ExtractStats:
    files: int = 0  # files processed
    images: int = 0  # images registered (direct files and members)
    archives: int = 0  # archives walked (nested ones included)
    members: int = 0  # member rows
    refused_members: int = 0
    failed_members: int = 0
    failed: int = 0  # files failed (undecodable image, corrupt or refused archive)
    other: int = 0  # files that are neither image nor archive
    missing: int = 0  # blobs missing from the store: sent back to download


@dataclass
class MemberRecord:
    path: str
    parent_path: str | None
    kind: str
    size: int | None
    sha256: str | None = None
    state: str = "ok"
    error: str | None = None


@dataclass
class ImageRecord:
    archive_path: str  # "" for a direct image file
    member_path: str | None
    sha256: str
    facts: ImageFacts


@dataclass
class FileResult:
    state: str = "done"
    error: str | None = None
    members: list[MemberRecord] = field(default_factory=list)
    images: list[ImageRecord] = field(default_factory=list)
    blobs: dict[str, int] = field(default_factory=dict)  # sha256 -> size, stored members
    archives: int = 0


def extract(
    engine: Engine, settings: Settings, store: BlobStore, *, limit: int | None = None
) -> ExtractStats:
    """Extract every stored file (at most ``limit``), one transaction per file."""
    store.clean_temp()
    stats = ExtractStats()
    query = (
        select(files.c.id, files.c.url, files.c.name, files.c.sha256)
        .where(files.c.state == "stored")
        .order_by(files.c.id)
    )

    def process(conn: Connection, rows: Sequence[Row]) -> None:
        for row in rows:
            _extract_one(conn, row, settings.limits, store, stats)

    pending = Pending(query, files, cursor=files.c.id)
    run(engine, pending, process, desc=STAGE, unit="file", limit=limit)
    return stats


def _extract_one(
    conn: Connection, row: Row, limits: Limits, store: BlobStore, stats: ExtractStats
) -> None:
    if row.sha256 is None or not store.has(row.sha256):
        stats.missing += 1
        conn.execute(
            update(files)
            .where(files.c.id == row.id)
            .values(state="pending", error="blob missing from the store: download again")
        )
        return
    result = extract_file(store, row.sha256, row.name, limits)
    _write(conn, row.id, result)
    conn.execute(
        update(files)
        .where(files.c.id == row.id)
        .values(state=result.state, error=result.error, extracted_at=utcnow())
    )
    if result.state == "failed":
        assert result.error is not None
        record_failure(conn, STAGE, f"file {row.url}", result.error)
        stats.failed += 1
    _log_member_problems(row.url, result.members)
    stats.files += 1
    stats.images += len(result.images)
    stats.archives += result.archives
    stats.members += len(result.members)
    stats.refused_members += sum(m.state == "refused" for m in result.members)
    stats.failed_members += sum(m.state == "failed" for m in result.members)
    if not result.members and not result.images and result.state == "done":
        stats.other += 1


def _log_member_problems(url: str, found: list[MemberRecord], shown: int = 5) -> None:
    """One warning per file naming its refused and failed members (the first few of them)."""
    bad = [m for m in found if m.state != "ok"]
    if bad:
        named = "; ".join(f"{m.path} {m.state}: {m.error}" for m in bad[:shown])
        more = f"; and {len(bad) - shown} more" if len(bad) > shown else ""
        log.warning("extract: file %s: %d member(s) not usable: %s%s", url, len(bad), named, more)


def extract_file(store: BlobStore, sha256: str, name: str, limits: Limits) -> FileResult:
    """Everything to record about one downloaded file (its blob ``sha256``, named ``name``)."""
    path = store.path(sha256)
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
    result = FileResult()
    kind = classify(head, name)
    if kind == "image":
        try:
            facts = describe_image(path, limits)
        except ImageRejected as exc:
            result.state, result.error = "failed", f"undecodable image: {exc}"
        else:
            result.images.append(ImageRecord("", None, sha256, facts))
    elif kind == "archive":
        budget = ArchiveBudget(limits, compressed_bytes=path.stat().st_size)
        tree = _TreeWalk(store, limits, budget, result)
        try:
            tree.walk(path, prefix="", parent_path=None, depth=1, name=name)
        except (ArchiveCorrupt, ArchiveRefused) as exc:
            what = _what(exc)
            n = len(result.members)
            result.state = "failed"
            result.error = f"{what}: {exc}; kept the {n} member{'s' * (n != 1)} read before"
    return result


def _what(exc: ArchiveCorrupt | ArchiveRefused) -> str:
    if isinstance(exc, ArchiveUnsupported):
        return "unsupported archive"
    return "corrupt archive" if isinstance(exc, ArchiveCorrupt) else "refused archive"


class _TreeWalk:
    """Walks an archive and the archives nested in it, collecting rows into a FileResult."""

    def __init__(
        self, store: BlobStore, limits: Limits, budget: ArchiveBudget, result: FileResult
    ) -> None:
        self.store = store
        self.limits = limits
        self.budget = budget
        self.result = result
        self.paths: set[str] = set()

    def walk(self, path: Path, prefix: str, parent_path: str | None, depth: int, name: str) -> None:
        self.result.archives += 1
        for entry in walk_archive(path, self.limits, budget=self.budget, prefix=prefix, name=name):
            record = MemberRecord(entry.path, parent_path, entry.kind, entry.size)
            self.result.members.append(record)
            try:
                self._member(entry, record, depth)
            finally:
                if record.state == "ok" and entry.state != "ok":
                    record.state, record.error = entry.state, entry.error
                if record.sha256 is None:
                    record.size = entry.size

    def _member(self, entry: ArchiveEntry, record: MemberRecord, depth: int) -> None:
        if entry.path in self.paths:
            n = 2
            while f"{entry.path} (duplicate {n})" in self.paths:
                n += 1
            record.path = f"{entry.path} (duplicate {n})"
            record.state, record.error = "refused", "duplicate path in the archive"
            self.paths.add(record.path)
            return
        self.paths.add(entry.path)
        if entry.state != "ok" or not entry.readable:
            return
        if entry.kind == "archive" and depth >= self.limits.max_archive_depth:
            record.state = "refused"
            record.error = f"archive nested deeper than {self.limits.max_archive_depth} levels"
            return
        if entry.kind == "other":
            entry.drain()
            return
        if not self._store(entry, record):
            return
        assert record.sha256 is not None
        blob = self.store.path(record.sha256)
        if entry.kind == "image":
            try:
                facts = describe_image(blob, self.limits)
            except ImageRejected as exc:
                record.state, record.error = "failed", f"undecodable image: {exc}"
            else:
                self.result.images.append(ImageRecord(entry.path, entry.path, record.sha256, facts))
            return
        first = len(self.result.members)
        try:
            self.walk(
                blob,
                prefix=entry.path + "/",
                parent_path=entry.path,
                depth=depth + 1,
                name=PurePosixPath(entry.name).name,
            )
        except LimitExceeded:
            raise  # the whole tree is refused
        except (ArchiveCorrupt, ArchiveRefused) as exc:
            n = len(self.result.members) - first
            what = _what(exc)
            record.state = "failed" if isinstance(exc, ArchiveCorrupt) else "refused"
            record.error = f"{what}: {exc}; kept the {n} member{'s' * (n != 1)} read before"

    def _store(self, entry: ArchiveEntry, record: MemberRecord) -> bool:
        """Stream a member into the blob store; False if it was refused or failed on the way."""
        try:
            with self.store.writer() as blob:
                entry.copy_to(blob)
        except (MemberRefused, MemberFailed):
            return False
        assert blob.sha256 is not None
        record.sha256 = blob.sha256
        record.size = blob.size
        self.result.blobs[blob.sha256] = blob.size
        return True


def _write(conn: Connection, file_id: int, result: FileResult) -> None:
    """Make the file's members and whole-image rows exactly ``result``, updating in place."""
    for sha256, size in result.blobs.items():
        register_blob(conn, sha256, size)
    existing_members = {
        r.path: r.id
        for r in conn.execute(
            select(members.c.path, members.c.id).where(members.c.file_id == file_id)
        )
    }
    member_ids: dict[str, int] = {}
    for m in result.members:
        values = {
            "parent_id": member_ids.get(m.parent_path) if m.parent_path else None,
            "kind": m.kind,
            "size": m.size,
            "sha256": m.sha256,
            "state": m.state,
            "error": m.error,
        }
        if m.path in existing_members:
            member_id = existing_members.pop(m.path)
            conn.execute(update(members).where(members.c.id == member_id).values(**values))
        else:
            key = conn.execute(
                insert(members).values(file_id=file_id, path=m.path, **values)
            ).inserted_primary_key
            assert key is not None  # an INSERT of one row always has one
            member_id = key[0]
        member_ids[m.path] = member_id
    existing_images = {
        r.archive_path: (r.id, r.sha256)
        for r in conn.execute(
            select(images.c.archive_path, images.c.id, images.c.sha256).where(
                images.c.file_id == file_id, images.c.parent_id.is_(None), images.c.box == ""
            )
        )
    }
    for im in result.images:
        values = {
            "member_id": member_ids[im.member_path] if im.member_path else None,
            "pixel_sha256": im.facts.pixel_sha256,
            "phash": im.facts.phash,
            "format": im.facts.format,
            "mode": im.facts.mode,
            "width": im.facts.width,
            "height": im.facts.height,
            "frames": im.facts.frames,
            "error": None,
        }
        old = existing_images.pop(im.archive_path, None)
        if old is not None and old[1] == im.sha256:
            conn.execute(update(images).where(images.c.id == old[0]).values(**values))
            continue
        if old is not None:  # new bytes at this path: later stages start over for it
            conn.execute(delete(images).where(images.c.id == old[0]))
        conn.execute(
            insert(images).values(
                file_id=file_id, archive_path=im.archive_path, box="", sha256=im.sha256, **values
            )
        )
    if existing_images:
        stale = [image_id for image_id, _ in existing_images.values()]
        conn.execute(delete(images).where(images.c.id.in_(stale)))
    if existing_members:
        conn.execute(delete(members).where(members.c.id.in_(list(existing_members.values()))))
