"""Hardening of the extract, tiles and embed stages against hostile archives and images.

Real files built here, a real blob store and SQLite catalog. What ``test_archives.py``,
``test_extract_stage.py`` and ``test_images.py`` already prove one function at a time (zip slip,
links, bombs by ratio and total size, member limits, nesting depth, encrypted and corrupt
members, every hostile image shape alone) is not repeated; here are the cases they leave open:

* RAR variants libarchive cannot read (a RAR5 compression method, a solid RAR4, an unknown
  RAR4 method): the file, or the member holding it, is recorded with libarchive's reason as an
  *unsupported* archive (not "corrupt"), and what came before it is kept;
* a 10,000-member archive is cataloged whole;
* every hostile image kind at once, in an archive and as direct files, through extract, tiles
  and embed: each bad one is a recorded failure naming its item, each odd-but-valid one
  (1x1, 20000x1, 1,000 frames, CMYK, 16-bit) goes through every stage.
"""

from __future__ import annotations

import io
import logging
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from ogasearch.catalog.schema import failures, images
from ogasearch.embed.extractors import DEFAULT_EXTRACTOR, get_extractor
from ogasearch.embed.stage import embed
from ogasearch.extract.archives import ArchiveUnsupported, walk_archive
from ogasearch.localsite.kenney import sprite_bytes
from ogasearch.settings import Limits, Settings
from ogasearch.tiles.stage import cut_tiles
from test_archives import png_bytes
from test_extract_stage import Env, colour_png
from test_images import animated_gif, bomb_png, encode, noise

# ------------------------------------------------------------------------------------------
# RAR builders: there is no free RAR writer, so the bytes are written here from the format
# descriptions (RAR 4: 7-byte block headers; RAR 5: variable-length integers, CRC32 headers).


def _rar4_block(kind: int, flags: int, body: bytes, data: bytes = b"") -> bytes:
    head = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head + data


def rar4(members: list[tuple[str, bytes]], *, method: int = 0x30, solid: bool = False) -> bytes:
    """RAR 4 with ``method`` (0x30 store .. 0x35 best) written on every member; ``solid`` sets
    the archive's and the members' solid flags."""
    out = b"Rar!\x1a\x07\x00" + _rar4_block(0x73, 0x0008 if solid else 0, struct.pack("<HI", 0, 0))
    for name, data in members:
        raw = name.encode()
        body = struct.pack(
            "<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), 0x21000000, 20, method,
            len(raw), 0o100644,
        )  # fmt: skip
        out += _rar4_block(0x74, 0x8000 | (0x0010 if solid else 0), body + raw, data)
    return out + _rar4_block(0x7B, 0x4000, b"")


def _vint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _rar5_block(kind: int, fields: bytes, data: bytes = b"") -> bytes:
    body = _vint(kind) + _vint(0x0002 if data else 0)
    if data:
        body += _vint(len(data))
    body += fields
    size = _vint(len(body))
    return struct.pack("<I", zlib.crc32(size + body)) + size + body + data


def rar5(members: list[tuple[str, bytes, int]]) -> bytes:
    """RAR 5 of members ``(name, data, method)``; the data is stored as is, so only method 0
    (store) is readable: any other method number is what a newer RAR would write."""
    out = b"Rar!\x1a\x07\x01\x00" + _rar5_block(1, _vint(0))
    for name, data, method in members:
        raw = name.encode()
        fields = (
            _vint(0x0004)  # CRC32 present
            + _vint(len(data))
            + _vint(0o100644)
            + struct.pack("<I", zlib.crc32(data))
            + _vint(method << 7)  # compression information: version 0, this method
            + _vint(1)  # host OS: Unix
            + _vint(len(raw))
            + raw
        )
        out += _rar5_block(2, fields, data)
    return out + _rar5_block(5, _vint(0))


A, B = png_bytes((200, 30, 30, 255)), png_bytes((30, 30, 200, 255))
UNSUPPORTED_RARS = {
    "rar5-method": (rar5([("a.png", A, 0), ("b.png", B, 6)]), "Compression method not supported"),
    "rar4-method": (rar4([("a.png", A)], method=0x3A), "Unsupported compression method"),
    "rar4-solid": (rar4([("a.png", A), ("b.png", B)], method=0x33, solid=True), "solid"),
}


def test_the_rar_builders_write_readable_archives(tmp_path: Path) -> None:
    """Without this, an 'unsupported' test could pass on bytes no reader would ever accept."""
    for name, data in (
        ("4.rar", rar4([("a.png", A), ("b.png", B)])),
        ("5.rar", rar5([("a.png", A, 0), ("b.png", B, 0)])),
    ):
        (tmp_path / name).write_bytes(data)
        read = [(e.path, b"".join(e.chunks())) for e in walk_archive(tmp_path / name, Limits())]
        assert read == [("a.png", A), ("b.png", B)], name


@pytest.mark.parametrize("variant", list(UNSUPPORTED_RARS))
def test_unsupported_rar_is_recorded_with_its_reason(
    tmp_path: Path, variant: str, caplog: pytest.LogCaptureFixture
) -> None:
    data, reason = UNSUPPORTED_RARS[variant]
    env = Env(tmp_path)
    direct = env.add_file("pack.rar", data)
    holder = env.add_file(
        "holder.zip", zip_of([("old/pack.rar", data), ("fine.png", colour_png(4))])
    )
    with caplog.at_level(logging.WARNING):
        env.extract()

    row = env.file(direct)
    assert row.state == "failed"
    assert row.error.startswith("unsupported archive: ") and reason in row.error
    assert [(f.item, f.reason) for f in env.failures()] == [(f"file {row.url}", row.error)]
    assert any(row.url in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    if variant == "rar5-method":  # the member before the unreadable one is kept
        assert set(env.images(direct)) == {"a.png"}
    nested = env.members(holder)["old/pack.rar"]
    assert env.file(holder).state == "done"
    assert (nested.state, nested.sha256 is not None) == ("failed", True)
    assert nested.error.startswith("unsupported archive: ") and reason in nested.error
    assert "fine.png" in env.images(holder)
    env.assert_consistent()


def test_unsupported_is_told_apart_from_corrupt(tmp_path: Path) -> None:
    (tmp_path / "x.rar").write_bytes(UNSUPPORTED_RARS["rar5-method"][0])
    with pytest.raises(ArchiveUnsupported):
        for entry in walk_archive(tmp_path / "x.rar", Limits()):
            entry.drain()


# ------------------------------------------------------------------------------------------
# A 10,000-member archive


def zip_of(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    return out.getvalue()


def test_ten_thousand_members_are_all_cataloged(tmp_path: Path) -> None:
    env = Env(tmp_path)
    names = [f"frames/{i // 1000:02}/f{i:05}.txt" for i in range(9_990)]
    names += [f"sprites/s{i}.png" for i in range(10)]
    data = zip_of(
        [(n, b"frame %d" % i) for i, n in enumerate(names[:9_990])]
        + [(n, colour_png(i)) for i, n in enumerate(names[9_990:])]
    )
    file_id = env.add_file("huge.zip", data)
    stats = env.extract()
    assert env.file(file_id).state == "done"
    got = env.members(file_id)
    assert list(got) == names
    assert all(m.state == "ok" for m in got.values())
    assert set(env.images(file_id)) == set(names[9_990:])
    assert stats.members == 10_000 and stats.images == 10


# ------------------------------------------------------------------------------------------
# Hostile and odd images through every stage that opens them


def png_of(image: Image.Image) -> bytes:
    return encode(image, "PNG")


def hostile_images() -> dict[str, tuple[bytes, str | None]]:
    """name -> (bytes, None if it must go through, else the start of its failure reason)."""
    gif = animated_gif(40)
    strip = png_of(noise((64, 64)))
    grey16 = Image.frombytes("I;16", (32, 8), bytes(range(256)) * 2)
    return {
        "bomb.png": (bomb_png(9_000, 9_000), "undecodable image: decompression bomb"),
        "cut.png": (strip[: len(strip) * 2 // 3], "undecodable image: truncated"),
        "cut.gif": (gif[: len(gif) // 2], "undecodable image: "),
        "dot.png": (png_of(Image.new("RGBA", (1, 1), (255, 0, 0, 255))), None),
        "wide.png": (png_of(Image.new("RGBA", (20_000, 1), (0, 90, 0, 255))), None),
        "tall.png": (png_of(Image.new("RGBA", (1, 20_000), (0, 0, 90, 255))), None),
        "frames.gif": (animated_gif(1_000), None),
        "cmyk.jpg": (encode(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG"), None),
        "deep.png": (png_of(grey16), None),
        "sheet.png": (sprite_bytes("spritesheets/number_sheet.png"), None),  # cut into tiles
    }


@pytest.fixture(scope="module")
def extractor(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The default extractor, from the run's shared model cache (conftest) when there is one."""
    return get_extractor(DEFAULT_EXTRACTOR, Settings(data=tmp_path_factory.mktemp("d")).models_dir)


@pytest.mark.slow
def test_hostile_images_fail_alone_and_odd_ones_go_through_every_stage(
    tmp_path: Path,
    extractor,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = Env(tmp_path)
    cases = hostile_images()
    pack = env.add_file("pack.zip", zip_of([(f"art/{n}", d) for n, (d, _) in cases.items()]))
    direct = {name: env.add_file(name, data) for name, (data, _) in cases.items()}
    with caplog.at_level(logging.WARNING):
        env.extract()
        env.assert_consistent()  # before tiles: tile rows name no blob of their own
        tiles = cut_tiles(env.engine, env.settings, env.store)
        embedded = embed(env.engine, env.settings, env.store, extractor)

    members = env.members(pack)
    for name, (_, failure) in cases.items():
        member, row = members[f"art/{name}"], env.file(direct[name])
        if failure is None:
            assert (member.state, row.state) == ("ok", "done"), name
            continue
        assert member.state == "failed" and member.error.startswith(failure), name
        assert row.state == "failed" and row.error.startswith(failure), name
        assert ("extract", f"file {row.url}", row.error) in [
            (f.stage, f.item, f.reason) for f in env.failures()
        ]
        assert any(row.url in r.getMessage() for r in caplog.records), name
        assert any(f"art/{name}" in r.getMessage() for r in caplog.records), name

    with env.engine.connect() as conn:
        rows = conn.execute(select(images)).all()
        failed = conn.execute(select(failures.c.stage)).scalars().all()
    whole = [r for r in rows if r.parent_id is None]
    good = [n for n, (_, failure) in cases.items() if failure is None]
    assert len(whole) == 2 * len(good)
    by_name = {r.archive_path or env.file(r.file_id).name: r for r in whole}
    assert by_name["art/frames.gif"].frames == 1_000 and by_name["frames.gif"].frames == 1_000
    assert (by_name["wide.png"].width, by_name["wide.png"].height) == (20_000, 1)
    assert all(r.tiles_state in ("done", "skipped") for r in whole)
    sheets = {by_name["sheet.png"].id, by_name["art/sheet.png"].id}
    assert sheets <= {r.parent_id for r in rows}  # the sheets were cut
    assert {r.embed_state for r in rows} == {"done"}
    assert tiles.failed == 0 and embedded.failed == 0
    assert set(failed) == {"extract"}
