"""The content-addressed blob store: every downloaded file and stored archive member, by SHA-256.

A blob lives at ``root/ab/cd/<sha256>`` (the first two byte pairs of its hash as folders, so
no folder grows huge). Blobs are written through ``BlobStore.writer()``: a temp file in
``root/tmp`` (same filesystem as the blobs, so the final rename is atomic) that hashes while
it is written and, on commit, is fsynced and renamed into place. A reader therefore never sees
a half-written blob, and a kill at any moment leaves at most a temp file, which
``clean_temp()`` removes. Nothing is ever written outside ``root``.

Live temp files hold an exclusive ``flock``; ``clean_temp`` only removes temp files whose lock
it can take, i.e. whose writer is gone, so it is safe to call while other workers write.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_SHA256 = re.compile(r"[0-9a-f]{64}")
_TEMP_PREFIX = "blob-"
_TEMP_SUFFIX = ".part"
_COPY_CHUNK = 1 << 20


class BlobWriter:
    """A file-like sink for one blob; ``sha256``/``size``/``path`` are set once committed."""

    def __init__(self, fileobj: BinaryIO, temp_path: Path) -> None:
        self._file = fileobj
        self._hash = hashlib.sha256()
        self.temp_path = temp_path
        self.size = 0
        self.sha256: str | None = None
        self.path: Path | None = None
        self.existed = False  # True if the store already held this content
        self.discarded = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = self._file.write(data)
        self._hash.update(data)
        self.size += len(data)
        return n

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        self._file.flush()

    def tell(self) -> int:
        return self.size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Only rewinding to the start is possible, and it starts the blob over (a retry)."""
        if offset != 0 or whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a blob can only be rewound to its start")
        self._file.seek(0)
        self._file.truncate()
        self._hash = hashlib.sha256()
        self.size = 0
        return 0

    def truncate(self, size: int | None = None) -> int:
        """Only truncating at the current end is possible (after a rewind: the empty blob)."""
        if size is not None and size != self.size:
            raise io.UnsupportedOperation("a blob can only be truncated at its end")
        return self.size

    def discard(self) -> None:
        """Add nothing to the store when the block ends (e.g. the server said 304)."""
        self.discarded = True

    def hexdigest(self) -> str:
        """The SHA-256 of what has been written so far."""
        return self._hash.hexdigest()


class BlobStore:
    """Files addressed by the SHA-256 of their bytes, under one root folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.temp_dir = self.root / "tmp"

    def path(self, sha256: str) -> Path:
        """Where the blob ``sha256`` lives (whether or not it exists)."""
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a lowercase hex SHA-256: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        """Open a blob for reading (raises FileNotFoundError if absent)."""
        return self.path(sha256).open("rb")

    @contextlib.contextmanager
    def writer(self) -> Iterator[BlobWriter]:
        """Write a new blob: committed (fsync + atomic rename) when the block ends normally.

        If the block raises, the temp file is removed and nothing is added to the store.
        """
        fileobj, temp_path = self._locked_temp()
        try:
            blob = BlobWriter(fileobj, temp_path)
            yield blob
            if blob.discarded:
                temp_path.unlink()
                return
            sha256 = blob.hexdigest()
            final = self.path(sha256)
            if final.is_file():
                blob.existed = True
                temp_path.unlink()
            else:
                fileobj.flush()
                os.fsync(fileobj.fileno())
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(temp_path, final)
                _fsync_dir(final.parent)
            blob.sha256 = sha256
            blob.path = final
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp_path.unlink()
            raise
        finally:
            fileobj.close()

    def _locked_temp(self) -> tuple[BinaryIO, Path]:
        """A new temp file in ``root/tmp``, exclusively locked while this writer lives."""
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd, name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=self.temp_dir)
            fcntl.flock(fd, fcntl.LOCK_EX)
            # clean_temp may have removed the file between mkstemp and flock: start over then.
            try:
                same = os.stat(name).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return os.fdopen(fd, "wb"), Path(name)
            os.close(fd)

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its SHA-256."""
        with self.writer() as blob:
            blob.write(data)
        assert blob.sha256 is not None
        return blob.sha256

    def put_file(self, source: str | os.PathLike[str] | BinaryIO) -> str:
        """Copy a file (a path or an open binary file) into the store; return its SHA-256."""
        with self.writer() as blob:
            if isinstance(source, str | os.PathLike):
                with open(source, "rb") as f:
                    shutil.copyfileobj(f, blob, _COPY_CHUNK)
            else:
                shutil.copyfileobj(source, blob, _COPY_CHUNK)
        assert blob.sha256 is not None
        return blob.sha256

    def clean_temp(self) -> int:
        """Remove temp files whose writer is gone (killed); return how many were removed."""
        if not self.temp_dir.is_dir():
            return 0
        removed = 0
        for entry in self.temp_dir.iterdir():
            if not (entry.name.startswith(_TEMP_PREFIX) and entry.name.endswith(_TEMP_SUFFIX)):
                continue
            try:
                fd = os.open(entry, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed += 1
            finally:
                os.close(fd)
        return removed


def _fsync_dir(path: Path) -> None:
    """Make a rename durable: fsync the folder that holds the new name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
