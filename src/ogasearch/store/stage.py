"""The download stage: ``files`` rows in state ``pending`` -> blobs in the store, state ``stored``.

One file per transaction: the file is streamed into a store temp file (hashed on the way,
renamed into place once complete), then its row gets the hash, size, type and validators and
state ``stored`` together with its ``blobs`` row. A kill leaves at most a temp file (removed
by ``BlobStore.clean_temp`` at the next run) or an orphan blob, never a row without its blob.

Failures: 404/410 -> ``gone``. Anything else -> ``failed`` with ``attempts + 1``, the reason in
``error`` and in ``failures``; a later run tries again while ``attempts < MAX_ATTEMPTS``
(a failure the client calls permanent, e.g. a file over ``max_download_bytes``, uses up the
attempts at once). ``attempts`` counts failed downloads since the last success and is reset
to 0 on success, which is also how a failed *download* (attempts >= 1) is told apart from a
failed *extraction* (attempts == 0), both being ``failed``.

A file whose blob is still in the store is fetched conditionally; when the server says
"not modified", or sends the same bytes again, a file already extracted goes straight back to
``done``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import ColumnElement, Engine, Row, and_, or_, select, update
from sqlalchemy.engine import Connection

from ogasearch.catalog.db import record_failure, utcnow
from ogasearch.catalog.runner import Pending, run
from ogasearch.catalog.schema import files
from ogasearch.crawl.http import GONE_STATUSES, ByteSink, Downloaded, FetchError
from ogasearch.settings import Settings
from ogasearch.store.blobs import BlobStore
from ogasearch.store.records import register_blob

STAGE = "download"
MAX_ATTEMPTS = 3


class Downloader(Protocol):
    """What this stage needs from the site client (``ogasearch.crawl.http.PoliteClient``)."""

    def download(
        self,
        url: str,
        dest: ByteSink,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        max_bytes: int,
    ) -> Downloaded: ...


@dataclass
class DownloadStats:
    stored: int = 0  # new content in the store
    unchanged: int = 0  # 304, or the same bytes as before
    gone: int = 0
    failed: int = 0
    bytes: int = 0


def _todo() -> ColumnElement[bool]:
    """The condition for a file this stage should (re)try."""
    return and_(
        files.c.present.is_(True),
        or_(
            files.c.state == "pending",
            and_(
                files.c.state == "failed",
                files.c.attempts >= 1,
                files.c.attempts < MAX_ATTEMPTS,
            ),
        ),
    )


def download(
    engine: Engine,
    settings: Settings,
    client: Downloader,
    store: BlobStore,
    *,
    limit: int | None = None,
) -> DownloadStats:
    """Download every pending file (at most ``limit``); each file is tried once per run."""
    store.clean_temp()
    stats = DownloadStats()
    query = (
        select(
            files.c.id,
            files.c.url,
            files.c.sha256,
            files.c.etag,
            files.c.last_modified,
            files.c.extracted_at,
            files.c.attempts,
        )
        .where(_todo())
        .order_by(files.c.id)
    )

    def process(conn: Connection, rows: Sequence[Row]) -> None:
        for row in rows:
            _download_one(conn, row, settings, client, store, stats)

    # With the cursor, a file that fails is not retried in this run.
    pending = Pending(query, files, cursor=files.c.id)
    run(engine, pending, process, desc=STAGE, unit="file", limit=limit)
    return stats


def _download_one(
    conn: Connection,
    row: Row,
    settings: Settings,
    client: Downloader,
    store: BlobStore,
    stats: DownloadStats,
) -> None:
    have_blob = row.sha256 is not None and store.has(row.sha256)
    try:
        with store.writer() as blob:
            got = client.download(
                row.url,
                blob,
                etag=row.etag if have_blob else None,
                last_modified=row.last_modified if have_blob else None,
                max_bytes=settings.limits.max_download_bytes,
            )
            if got.not_modified:
                blob.discard()
    except FetchError as exc:
        _failed(conn, row, exc, stats)
        return
    done_before = row.extracted_at is not None
    if got.not_modified:
        if not have_blob:  # a 304 we did not ask for: nothing usable was received
            _failed(conn, row, FetchError(row.url, "HTTP 304 to an unconditional request"), stats)
            return
        stats.unchanged += 1
        conn.execute(
            update(files)
            .where(files.c.id == row.id)
            .values(
                state="done" if done_before else "stored",
                attempts=0,
                error=None,
                etag=got.etag or row.etag,
                last_modified=got.last_modified or row.last_modified,
            )
        )
        return
    assert blob.sha256 is not None
    unchanged = blob.sha256 == row.sha256
    if unchanged:
        stats.unchanged += 1
    else:
        stats.stored += 1
    stats.bytes += blob.size
    register_blob(conn, blob.sha256, blob.size)
    conn.execute(
        update(files)
        .where(files.c.id == row.id)
        .values(
            state="done" if unchanged and done_before else "stored",
            attempts=0,
            error=None,
            sha256=blob.sha256,
            size=blob.size,
            content_type=got.content_type,
            etag=got.etag,
            last_modified=got.last_modified,
            downloaded_at=utcnow(),
        )
    )


def _failed(conn: Connection, row: Row, exc: FetchError, stats: DownloadStats) -> None:
    if exc.status in GONE_STATUSES:
        stats.gone += 1
        conn.execute(
            update(files).where(files.c.id == row.id).values(state="gone", error=exc.reason)
        )
        record_failure(conn, STAGE, f"file {row.url}", f"gone: {exc.reason}")
        return
    stats.failed += 1
    attempts = MAX_ATTEMPTS if exc.permanent else row.attempts + 1
    conn.execute(
        update(files)
        .where(files.c.id == row.id)
        .values(state="failed", attempts=attempts, error=exc.reason)
    )
    record_failure(conn, STAGE, f"file {row.url}", exc.reason)
