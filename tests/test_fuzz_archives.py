"""Fuzzing the archive walker and the extract stage's per-file work with mutated real archives.

Small real archives (zip with a nested zip, 7z, tar.gz, RAR 4, RAR 5) are mutated by
hypothesis (bytes flipped, ranges overwritten, cut, duplicated or inserted) and walked with
small limits. Whatever the bytes, the only exceptions are the walker's own (``ArchiveCorrupt``,
``ArchiveRefused``, and ``MemberRefused``/``MemberFailed`` for one member's content), no member
with an unsafe path is ever readable, and nothing is written anywhere but the blob store. The
HTML parsers' fuzz test is in test_markup.py.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ogasearch.extract.archives import (
    ArchiveCorrupt,
    ArchiveRefused,
    MemberFailed,
    MemberRefused,
    walk_archive,
)
from ogasearch.extract.stage import extract_file
from ogasearch.settings import Limits
from ogasearch.store.blobs import BlobStore
from test_archives import png_bytes, tree, write_7z
from test_hardening_inputs import rar4, rar5

LIMITS = Limits(
    max_archive_members=40,
    max_archive_total_bytes=2 << 20,
    max_member_bytes=512 << 10,
    ratio_floor_bytes=256 << 10,
    max_compression_ratio=50.0,
    max_archive_depth=2,
    max_image_pixels=1 << 20,
    max_image_frames=50,
)
MEMBERS = [
    ("art/hero.png", png_bytes((200, 30, 30, 255))),
    ("art/readme.txt", b"CC0 " * 40),
    ("b.png", png_bytes((30, 30, 200, 255), size=12)),
]

pytestmark = pytest.mark.slow  # fuzzing: hundreds of mutated archives


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    return out.getvalue()


def _tar_gz(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _7z(members: list[tuple[str, bytes]]) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return write_7z(Path(folder) / "seed.7z", members).read_bytes()


SEEDS = {
    "zip": _zip([*MEMBERS, ("inner.zip", _zip(MEMBERS[:2]))]),
    "7z": _7z(MEMBERS),
    "tar.gz": _tar_gz(MEMBERS),
    "rar4": rar4([(n, d) for n, d in MEMBERS]),
    "rar5": rar5([(n, d, 0) for n, d in MEMBERS]),
}


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[kind])
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, max(0, len(data) - 1)))
        j = draw(st.integers(i, min(len(data), i + 64)))
        op = draw(st.sampled_from(["flip", "overwrite", "cut", "dup", "insert", "truncate"]))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "overwrite":
            data[i:j] = draw(st.binary(min_size=j - i, max_size=j - i))
        elif op == "cut":
            del data[i:j]
        elif op == "dup":
            data[j:j] = data[i:j]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=32))
        else:
            del data[i:]
    return kind, bytes(data)


def _safe(path: str) -> bool:
    """A relative path that stays inside the archive (what may ever be read or stored)."""
    unified = path.replace("\\", "/")
    absolute = unified.startswith("/") or re.match(r"^[A-Za-z]:", unified) is not None
    return not absolute and ".." not in unified.split("/")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The current directory while fuzzing (where a ``../`` or relative write would land)."""
    folder = tmp_path_factory.mktemp("fuzz") / "cwd" / "deeper"
    folder.mkdir(parents=True)
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(previous)


def test_every_seed_is_a_readable_archive(sandbox: Path) -> None:
    """The mutations start from archives the walker reads whole."""
    for kind, data in SEEDS.items():
        path = sandbox / f"seed-{kind}"
        path.write_bytes(data)
        paths = [e.path for e in walk_archive(path, LIMITS) if e.state == "ok"]
        path.unlink()
        assert paths[:3] == [n for n, _ in MEMBERS], kind


@settings(
    max_examples=500,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=mutated())
def test_walker_raises_only_its_own_errors(sandbox: Path, case: tuple[str, bytes]) -> None:
    kind, data = case
    root = sandbox.parents[1]
    path = sandbox / "fuzzed"
    path.write_bytes(data)
    before = tree(root)
    try:
        for entry in walk_archive(path, LIMITS, name=f"fuzzed.{kind}"):
            assert entry.state in ("ok", "refused", "failed")
            if entry.state != "ok":
                assert entry.error, entry.path
                assert not entry.readable
            if not _safe(entry.name):
                assert entry.state == "refused" and not entry.readable, entry.name
            if entry.readable:
                try:
                    size = sum(len(block) for block in entry.chunks())
                except (MemberRefused, MemberFailed):
                    assert entry.state in ("refused", "failed") and entry.error
                else:
                    assert size <= LIMITS.max_member_bytes
    except (ArchiveCorrupt, ArchiveRefused) as exc:
        assert str(exc)
    finally:
        assert tree(root) == before
        path.unlink()


@settings(
    max_examples=150,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=mutated())
def test_extract_file_never_raises_and_writes_only_to_the_store(
    sandbox: Path, case: tuple[str, bytes]
) -> None:
    kind, data = case
    root = sandbox.parents[1]
    store = BlobStore(root / "store")
    sha256 = store.put_bytes(data)
    before = {p for p in tree(root) if not p.startswith("store")}
    result = extract_file(store, sha256, f"fuzzed.{kind}", LIMITS)
    assert {p for p in tree(root) if not p.startswith("store")} == before
    assert result.state in ("done", "failed")
    assert (result.error is None) == (result.state == "done")
    for member in result.members:
        assert member.state in ("ok", "refused", "failed")
        assert member.state == "ok" or member.error, member.path
        if member.sha256 is not None:
            assert store.has(member.sha256)
    stored = {m.path for m in result.members if m.sha256 is not None}
    for image in result.images:
        assert image.archive_path in stored and store.has(image.sha256)
    assert all(_safe(p) for p in stored)
