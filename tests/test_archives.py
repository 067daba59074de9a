"""walk_archive on real and hostile archives, all generated here (zipfile, tarfile, libarchive).

Also imported by test_extract_stage for its archive builders.
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import shutil
import struct
import subprocess
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import libarchive
import numpy as np
import pytest
from PIL import Image

from ogasearch.extract.archive_kinds import sniff_archive
from ogasearch.extract.archives import (
    ArchiveBudget,
    ArchiveCorrupt,
    ArchiveRefused,
    LimitExceeded,
    MemberRefused,
    classify,
    walk_archive,
)
from ogasearch.settings import Limits

LIMITS = Limits()
SMALL = Limits(ratio_floor_bytes=1 << 20, max_compression_ratio=50.0)

# ------------------------------------------------------------------------------------------
# builders (shared with test_extract_stage)


def png_bytes(color: tuple[int, int, int, int] = (200, 30, 30, 255), size: int = 8) -> bytes:
    out = io.BytesIO()
    im = Image.new("RGBA", (size, size), color)
    im.putpixel((0, 0), (0, 0, 0, 0))
    im.save(out, "PNG")
    return out.getvalue()


def write_zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    return path


def write_tar(path: Path, members: list[tuple[str, bytes]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def write_7z(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with libarchive.file_writer(str(path), "7zip") as archive:
        for name, data in members:
            archive.add_file_from_memory(name, len(data), data)
    return path


def write_rar4(path: Path, members: list[tuple[str, bytes, int]]) -> Path:
    """A RAR 4 archive of stored members ``(name, data, unix mode)``, written byte by byte
    (there is no free RAR writer)."""

    def block(kind: int, flags: int, body: bytes, data: bytes = b"") -> bytes:
        head = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head + data

    out = b"Rar!\x1a\x07\x00" + block(0x73, 0, struct.pack("<HI", 0, 0))
    for name, data, mode in members:
        raw = name.encode()
        body = struct.pack(
            "<IIBIIBBHI",
            len(data),  # packed size
            len(data),  # unpacked size
            3,  # host OS: Unix
            zlib.crc32(data),
            0x21000000,  # DOS time
            20,  # version needed
            0x30,  # method: store
            len(raw),
            mode,
        )
        out += block(0x74, 0x8000, body + raw, data)
    path.write_bytes(out + block(0x7B, 0x4000, b""))
    return path


def symlink_info(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix
    info.external_attr = (0o120777 << 16) & 0xFFFFFFFF
    return info


def flag_encrypted(data: bytes, name: str) -> bytes:
    """Set the 'encrypted' bit of one member in a zip's local and central headers."""
    raw = bytearray(data)
    encoded = name.encode()
    for signature, flag_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        start = 0
        while (at := raw.find(signature, start)) >= 0:
            start = at + 4
            if raw[at + name_at : at + name_at + len(encoded)] == encoded:
                raw[at + flag_at] |= 1
    return bytes(raw)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@dataclass
class Seen:
    path: str
    kind: str
    state: str
    error: str | None
    content: bytes | None


def walk(path: Path, limits: Limits = LIMITS, **kw: object) -> list[Seen]:
    """Walk, reading every readable member; nothing may change under the test's tmp_path."""
    folder = path.parents[2]  # archives are built in tmp_path/work/inner (see ``work``)
    before = tree(folder)
    seen = []
    for entry in walk_archive(path, limits, **kw):  # type: ignore[arg-type]
        content = b"".join(entry.chunks()) if entry.readable else None
        seen.append(Seen(entry.path, entry.kind, entry.state, entry.error, content))
    assert tree(folder) == before
    return seen


def by_path(seen: list[Seen]) -> dict[str, Seen]:
    return {s.path: s for s in seen}


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder to build archives in, also the current directory (where ../ would land)."""
    folder = tmp_path / "work" / "inner"
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)
    return folder


# ------------------------------------------------------------------------------------------
# formats

MEMBERS = [("art/hero.png", png_bytes()), ("art/readme.txt", b"CC0"), ("b.png", png_bytes())]


@pytest.mark.parametrize(
    "build",
    [
        lambda p: write_zip(p, MEMBERS),
        lambda p: write_7z(p, MEMBERS),
        lambda p: write_tar(p, MEMBERS, "w"),
        lambda p: write_tar(p, MEMBERS, "w:gz"),
        lambda p: write_tar(p, MEMBERS, "w:bz2"),
        lambda p: write_tar(p, MEMBERS, "w:xz"),
        lambda p: write_rar4(p, [(n, d, 0o100644) for n, d in MEMBERS]),
    ],
    ids=["zip", "7z", "tar", "tar.gz", "tar.bz2", "tar.xz", "rar"],
)
def test_formats_are_detected_by_content(work: Path, build) -> None:  # type: ignore[no-untyped-def]
    path = build(work / "misleading-name.txt")
    seen = walk(path)
    assert [(s.path, s.kind, s.state) for s in seen] == [
        ("art/hero.png", "image", "ok"),
        ("art/readme.txt", "other", "ok"),
        ("b.png", "image", "ok"),
    ]
    assert [s.content for s in seen] == [d for _, d in MEMBERS]
    head = path.read_bytes()[:512]
    assert classify(head, path.name) == "archive"
    assert sniff_archive(head) is not None


def test_single_compressed_files(work: Path) -> None:
    (work / "sheet.png.gz").write_bytes(gzip.compress(png_bytes()))
    (work / "sheet.png.bz2").write_bytes(bz2.compress(png_bytes()))
    for name in ("sheet.png.gz", "sheet.png.bz2"):
        seen = walk(work / name, name=name)
        assert [(s.path, s.kind, s.state, s.content) for s in seen] == [
            ("sheet.png", "image", "ok", png_bytes())
        ]


def test_non_utf8_names_are_read_as_cp437(work: Path) -> None:
    class Cp437Info(zipfile.ZipInfo):
        def _encodeFilenameFlags(self):  # type: ignore[no-untyped-def]
            return self.filename.encode("cp437"), self.flag_bits

    seen = walk(write_zip(work / "old.zip", [(Cp437Info("café.png"), png_bytes())]))
    assert [(s.path, s.kind) for s in seen] == [("café.png", "image")]


def test_directories_are_not_members_and_junk_is_other(work: Path) -> None:
    path = write_zip(
        work / "mac.zip",
        [
            ("pack/", b""),
            ("pack/a.png", png_bytes()),
            ("__MACOSX/pack/._a.png", b"\x00\x05\x16\x07 resource fork"),
            ("pack/.DS_Store", b"\x00\x00\x00\x01Bud1"),
            ("._b.png", b"\x00\x05\x16\x07"),
        ],
    )
    seen = walk(path)
    assert [(s.path, s.kind, s.state) for s in seen] == [
        ("pack/a.png", "image", "ok"),
        ("__MACOSX/pack/._a.png", "other", "ok"),
        ("pack/.DS_Store", "other", "ok"),
        ("._b.png", "other", "ok"),
    ]


# ------------------------------------------------------------------------------------------
# members refused one by one


def test_zip_slip_and_absolute_paths_are_refused(work: Path) -> None:
    path = write_zip(
        work / "slip.zip",
        [
            ("../evil.png", png_bytes()),
            ("ok/../../../evil2.png", png_bytes()),
            ("..\\..\\evil3.png", png_bytes()),
            ("/etc/evil4.png", png_bytes()),
            ("C:/evil5.png", png_bytes()),
            ("./good/./a.png", png_bytes()),
        ],
    )
    seen = by_path(walk(path))
    # libarchive itself turns a zip's backslashes into slashes
    for name in ("../evil.png", "ok/../../../evil2.png", "../../evil3.png"):
        assert (seen[name].state, seen[name].content) == ("refused", None)
        assert ".." in (seen[name].error or "")
    for name in ("/etc/evil4.png", "C:/evil5.png"):
        assert (seen[name].state, seen[name].error) == ("refused", "absolute path")
    assert seen["good/a.png"].state == "ok"
    assert seen["good/a.png"].content == png_bytes()
    root = work.parents[1]
    assert not [p for p in root.rglob("evil*")]


def test_links_and_devices_are_refused_in_tar(work: Path) -> None:
    path = work / "links.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        for name, kind, target in [
            ("sym.png", tarfile.SYMTYPE, "/etc/passwd"),
            ("hard.png", tarfile.LNKTYPE, "a.png"),
            ("null", tarfile.CHRTYPE, ""),
            ("disk", tarfile.BLKTYPE, ""),
            ("pipe", tarfile.FIFOTYPE, ""),
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            t.addfile(info)
        info = tarfile.TarInfo("a.png")
        info.size = len(png_bytes())
        t.addfile(info, io.BytesIO(png_bytes()))
    seen = by_path(walk(path))
    assert seen["sym.png"].state == "refused" and "symbolic link" in (seen["sym.png"].error or "")
    assert seen["hard.png"].state == "refused" and "hard link" in (seen["hard.png"].error or "")
    for name in ("null", "disk", "pipe"):
        assert seen[name].state == "refused", name
    assert (seen["a.png"].state, seen["a.png"].content) == ("ok", png_bytes())
    assert all(s.content is None for s in seen.values() if s.state == "refused")


def test_symlink_is_refused_in_zip_and_rar(work: Path) -> None:
    zipped = write_zip(
        work / "link.zip", [(symlink_info("link.png", "x"), b"/etc/passwd"), ("a.png", png_bytes())]
    )
    rar = write_rar4(
        work / "link.rar",
        [("link.png", b"/etc/passwd", 0o120777), ("a.png", png_bytes(), 0o100644)],
    )
    for path in (zipped, rar):
        seen = by_path(walk(path))
        assert seen["link.png"].state == "refused"
        assert "symbolic link to '/etc/passwd'" in (seen["link.png"].error or "")
        assert seen["a.png"].content == png_bytes()


def test_encrypted_member_flag_is_refused(work: Path) -> None:
    plain = write_zip(work / "plain.zip", [("secret.png", png_bytes()), ("open.png", png_bytes())])
    path = work / "flagged.zip"
    path.write_bytes(flag_encrypted(plain.read_bytes(), "secret.png"))
    seen = by_path(walk(path))
    assert (seen["secret.png"].state, seen["secret.png"].error) == ("refused", "encrypted member")
    assert seen["open.png"].content == png_bytes()


@pytest.mark.parametrize("encryption", ["zipcrypt", "aes256"])
def test_really_encrypted_zip_is_refused(work: Path, encryption: str) -> None:
    path = work / "locked.zip"
    with libarchive.file_writer(
        str(path), "zip", options=f"encryption={encryption}", passphrase="hunter2"
    ) as archive:
        for name, data in MEMBERS:
            archive.add_file_from_memory(name, len(data), data)
    seen = walk(path)
    assert [(s.path, s.state, s.error) for s in seen] == [
        (name, "refused", "encrypted member") for name, _ in MEMBERS
    ]


@pytest.mark.skipif(shutil.which("7z") is None, reason="needs the 7z program to encrypt")
def test_encrypted_7z(work: Path) -> None:
    inner = write_zip(work / "inner.zip", MEMBERS)
    subprocess.run(
        ["7z", "a", "-phunter2", "-mhe=on", "headers.7z", inner.name],
        check=True,
        capture_output=True,
    )
    subprocess.run(["7z", "a", "-phunter2", "data.7z", inner.name], check=True, capture_output=True)
    with pytest.raises(ArchiveRefused, match="encrypted archive"):
        walk(work / "headers.7z")
    seen = walk(work / "data.7z")
    assert [(s.path, s.state, s.error) for s in seen] == [
        ("inner.zip", "refused", "encrypted member")
    ]


# ------------------------------------------------------------------------------------------
# whole archives refused: limits for bombs


def test_zip_bomb_by_ratio_is_refused_early(work: Path) -> None:
    path = write_zip(
        work / "ratio.zip", [("first.png", png_bytes()), ("bomb.bin", bytes(64 << 20))]
    )
    assert path.stat().st_size < 200_000
    budget = ArchiveBudget(SMALL, compressed_bytes=path.stat().st_size)
    seen: list[Seen] = []
    with pytest.raises(LimitExceeded, match="compression ratio over 50"):
        for entry in walk_archive(path, SMALL, budget=budget):
            seen.append(Seen(entry.path, entry.kind, entry.state, entry.error, None))
            if entry.readable:
                seen[-1].content = b"".join(entry.chunks())
    assert seen[0].content == png_bytes()
    assert seen[1].path == "bomb.bin" and seen[1].state == "ok"  # refused while it was read
    # stopped as soon as the ratio passed 50 (the floor, 1 MiB, was passed before that)
    limit = 50 * path.stat().st_size
    assert limit < budget.total_bytes <= limit + (64 << 10)


def test_bomb_left_unread_by_the_caller_still_counts(work: Path) -> None:
    """The walker decodes what the caller skips, so skipping a member cannot hide a bomb."""
    path = write_zip(work / "skip.zip", [("bomb.bin", bytes(64 << 20)), ("after.png", png_bytes())])
    with pytest.raises(LimitExceeded, match="compression ratio"):
        for _entry in walk_archive(path, SMALL):
            pass  # never reads anything


def test_total_size_limit(work: Path) -> None:
    limits = Limits(max_archive_total_bytes=3 << 20, max_compression_ratio=1e9)
    members = [(f"part{i}.bin", bytes(1 << 20)) for i in range(5)]
    path = write_tar(work / "total.tar.gz", members)
    seen = []
    with pytest.raises(LimitExceeded, match=f"more than {3 << 20} uncompressed bytes"):
        for entry in walk_archive(path, limits):
            seen.append(entry.path)
    # part3 went over while its first bytes were read to recognise it: it is never yielded
    assert seen == ["part0.bin", "part1.bin", "part2.bin"]


def test_total_size_counts_what_skipped_members_claim(work: Path) -> None:
    """Refused oversized members are skipped, but skipping compressed data decodes it."""
    limits = Limits(max_member_bytes=1 << 20, max_archive_total_bytes=3 << 20)
    path = write_tar(work / "big.tar.gz", [(f"big{i}.bin", bytes(2 << 20)) for i in range(3)])
    seen = []
    with pytest.raises(LimitExceeded, match="uncompressed bytes"):
        for entry in walk_archive(path, limits):
            seen.append((entry.path, entry.state))
    assert seen == [("big0.bin", "refused")]


def test_member_size_limit_refuses_only_that_member(work: Path) -> None:
    limits = Limits(max_member_bytes=100_000)
    path = write_zip(
        work / "member.zip",
        [("huge.png", png_bytes() + bytes(200_000)), ("small.png", png_bytes())],
    )
    seen = by_path(walk(path, limits))
    assert seen["huge.png"].state == "refused"
    assert "max_member_bytes" in (seen["huge.png"].error or "")
    assert seen["small.png"].content == png_bytes()


def test_member_size_is_counted_not_trusted(work: Path) -> None:
    """A gzip stream declares no size: the limit holds on the bytes actually decoded."""
    limits = Limits(max_member_bytes=100_000)
    (work / "big.png.gz").write_bytes(gzip.compress(png_bytes() + bytes(300_000)))
    paths = []
    for entry in walk_archive(work / "big.png.gz", limits, name="big.png.gz"):
        paths.append(entry.path)
        assert entry.readable
        read = 0
        with pytest.raises(MemberRefused, match="max_member_bytes"):
            for block in entry.chunks():
                read += len(block)
        assert entry.state == "refused"
        assert read <= 100_000
    assert paths == ["big.png"]


def test_member_count_limit(work: Path) -> None:
    limits = Limits(max_archive_members=20)
    path = write_zip(work / "many.zip", [(f"f{i:02}.txt", b"x") for i in range(30)])
    seen = []
    with pytest.raises(LimitExceeded, match="more than 20 entries"):
        for entry in walk_archive(path, limits):
            seen.append(entry.path)
    assert seen == [f"f{i:02}.txt" for i in range(20)]


def test_nothing_is_yielded_after_a_refusal(work: Path) -> None:
    path = write_zip(work / "r.zip", [("bomb.bin", bytes(64 << 20)), ("after.png", png_bytes())])
    walker = walk_archive(path, SMALL)
    entry = next(walker)
    with pytest.raises(LimitExceeded):
        entry.copy_to(io.BytesIO())
    with pytest.raises(LimitExceeded):
        next(walker)


def test_budget_is_shared_with_nested_archives(work: Path) -> None:
    inner = write_zip(work / "inner.zip", [("a.png", png_bytes()), ("pad.bin", bytes(600_000))])
    outer = write_7z(
        work / "outer.7z", [("x/inner.zip", inner.read_bytes()), ("b.png", png_bytes())]
    )
    budget = ArchiveBudget(LIMITS, compressed_bytes=outer.stat().st_size)
    nested: list[str] = []
    for entry in walk_archive(outer, LIMITS, budget=budget):
        if entry.kind == "archive":
            copy = work / "copy.zip"
            copy.write_bytes(b"".join(entry.chunks()))
            for member in walk_archive(copy, LIMITS, budget=budget, prefix=entry.path + "/"):
                nested.append(member.path)
    assert nested == ["x/inner.zip/a.png", "x/inner.zip/pad.bin"]
    assert budget.entries == 4
    inner_size = inner.stat().st_size
    assert budget.total_bytes == inner_size + 2 * len(png_bytes()) + 600_000


# ------------------------------------------------------------------------------------------
# corrupt archives


def test_truncated_tar_gz_keeps_what_came_before(work: Path) -> None:
    noise = np.random.default_rng(3).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    full = write_tar(work / "full.tar.gz", [("a.png", png_bytes()), ("noise.bin", noise)])
    cut = work / "cut.tar.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    seen: list[str] = []
    with pytest.raises(ArchiveCorrupt, match="truncated gzip input"):
        for entry in walk_archive(cut, LIMITS):
            seen.append(entry.path)
            if entry.readable:
                entry.drain()
    assert seen[0] == "a.png"


@pytest.mark.parametrize(
    "make",
    [
        lambda w: write_7z(w / "x.7z", MEMBERS).read_bytes()[:150],
        lambda w: b"PK\x03\x04" + os.urandom(300),
        lambda w: b"7z\xbc\xaf\x27\x1c" + os.urandom(300),
        lambda w: b"Rar!\x1a\x07\x00" + os.urandom(300),
        lambda w: b"\x1f\x8b\x08\x00" + os.urandom(300),
        lambda w: b"",
    ],
    ids=["truncated-7z", "junk-zip", "junk-7z", "junk-rar", "junk-gzip", "empty"],
)
def test_corrupt_archives_raise_archive_corrupt(work: Path, make) -> None:  # type: ignore[no-untyped-def]
    path = work / "bad.bin"
    path.write_bytes(make(work))
    with pytest.raises(ArchiveCorrupt) as caught:
        walk(path)
    assert str(caught.value)


def test_damaged_tar_header_is_skipped(work: Path) -> None:
    members = [(name, png_bytes()) for name in ("a.png", "b.png", "c.png")]
    path = write_tar(work / "damaged.tar", members, "w")
    data = bytearray(path.read_bytes())
    second = 512 + -(-len(png_bytes()) // 512) * 512
    data[second + 148 : second + 156] = b"9999999\x00"  # b.png's header checksum
    path.write_bytes(bytes(data))
    assert [(s.path, s.state) for s in walk(path)] == [("a.png", "ok"), ("c.png", "ok")]


def test_bad_crc_fails_one_member(work: Path) -> None:
    path = work / "crc.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("a.txt", b"hello world")
        z.writestr("b.png", png_bytes())
    data = bytearray(path.read_bytes())
    data[data.find(b"hello")] = ord("j")
    path.write_bytes(bytes(data))
    seen = by_path(walk(path))
    assert seen["a.txt"].state == "failed" and "CRC" in (seen["a.txt"].error or "")
    assert seen["b.png"].content == png_bytes()


def test_mtree_is_not_an_accepted_format(work: Path) -> None:
    """libarchive's mtree reader would read local files named in the 'archive'."""
    secret = work.parents[1] / "secret.txt"
    secret.write_text("TOP SECRET")
    path = work / "spec.mtree"
    path.write_text(f"#mtree\n./loot.png type=file contents={secret}\n")
    with pytest.raises(ArchiveCorrupt):
        for entry in walk_archive(path, LIMITS):
            assert b"SECRET" not in b"".join(entry.chunks())
