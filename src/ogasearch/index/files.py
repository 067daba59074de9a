"""Writing index files safely in a folder that readers in other processes (or machines, over
NFS) open at any moment: atomic replacement and an advisory folder lock.

Shared by the embedded vector index (``index.hnsw``) and the patch table (``index.patches``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` via a temp file in the same folder: after a crash it is old or whole."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def folder_lock(lock_file: Path, exclusive: bool) -> Iterator[None]:
    """``flock`` on ``lock_file``: shared for readers, exclusive for a writer switching files."""
    with lock_file.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
