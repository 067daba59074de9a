"""BlobStore: content addressing, atomic commits, temp files left by kills, confinement to root."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ogasearch.store.blobs import BlobStore


def tree(root: Path) -> set[str]:
    """Every file and folder under ``root``, relative."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_put_bytes_is_content_addressed(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    data = b"pixel art" * 1000
    sha = store.put_bytes(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.path(sha) == tmp_path / "store" / sha[:2] / sha[2:4] / sha
    assert store.has(sha)
    with store.open(sha) as f:
        assert f.read() == data
    assert not store.has(hashlib.sha256(b"other").hexdigest())


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    first = store.put_bytes(b"same")
    with store.writer() as blob:
        blob.write(b"sa")
        blob.write(b"me")
    assert blob.sha256 == first
    assert blob.existed
    assert blob.size == 4
    blobs = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert blobs == [store.path(first)]


def test_put_file_from_path_and_from_open_file(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(3 << 20))  # several copy chunks
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    assert store.put_file(source) == expected
    with source.open("rb") as f:
        assert store.put_file(f) == expected
    assert store.path(expected).read_bytes() == source.read_bytes()


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    with pytest.raises(RuntimeError), store.writer() as blob:
        blob.write(b"half a file")
        raise RuntimeError("connection lost")
    assert [p for p in (tmp_path / "store").rglob("*") if p.is_file()] == []


def test_discarded_write_adds_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    with store.writer() as blob:
        blob.discard()
    assert blob.sha256 is None
    assert [p for p in (tmp_path / "store").rglob("*") if p.is_file()] == []


def test_rewind_starts_the_blob_over(tmp_path: Path) -> None:
    """The HTTP client rewinds (seek(0) + truncate()) before retrying a download."""
    store = BlobStore(tmp_path / "store")
    with store.writer() as blob:
        blob.write(b"garbage from a broken attempt")
        blob.seek(0)
        blob.truncate()
        blob.write(b"the real file")
    assert blob.sha256 == hashlib.sha256(b"the real file").hexdigest()
    assert store.path(blob.sha256).read_bytes() == b"the real file"
    with store.writer() as other, pytest.raises(io.UnsupportedOperation):
        other.seek(5)


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "ABCDEF" * 10 + "ABCD", "a" * 63, "g" * 64, "/" + "a" * 63]
)
def test_path_accepts_only_sha256_hex(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        BlobStore(tmp_path / "store").path(bad)


def test_writes_stay_inside_root(tmp_path: Path) -> None:
    before = tree(tmp_path)
    store = BlobStore(tmp_path / "data" / "store")
    for i in range(20):
        store.put_bytes(f"blob {i}".encode())
    after = tree(tmp_path)
    assert {p for p in after - before if not p.startswith("data/store")} == {"data"}


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from ogasearch.store.blobs import BlobStore
    store = BlobStore(sys.argv[1])
    with store.writer() as blob:
        blob.write(b"x" * 100_000)
        blob.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_clean_temp_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    root = tmp_path / "store"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(root)], check=False)
    assert proc.returncode == -signal.SIGKILL
    left = list((root / "tmp").iterdir())
    assert len(left) == 1 and left[0].stat().st_size == 100_000
    store = BlobStore(root)
    with store.writer() as live:  # a live writer's temp file is not touched
        live.write(b"in progress")
        assert store.clean_temp() == 1
        assert live.temp_path.exists()
        assert list((root / "tmp").iterdir()) == [live.temp_path]
    assert store.has(live.sha256 or "")
    assert list((root / "tmp").iterdir()) == []
    assert store.clean_temp() == 0
