"""The extract stage on a real SQLite catalog and a real blob store, with hostile archives."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import aliased

from ogasearch.catalog import open_catalog
from ogasearch.catalog.schema import blobs, failures, files, images, members, pages
from ogasearch.extract.stage import extract
from ogasearch.settings import Limits, Settings
from ogasearch.store.blobs import BlobStore
from test_archives import (
    flag_encrypted,
    symlink_info,
    tree,
    write_7z,
    write_tar,
    write_zip,
)


class Env:
    def __init__(
        self, root: Path, limits: Limits | None = None, catalog: str | None = None
    ) -> None:
        self.root = root
        self.settings = Settings(data=root / "data", limits=limits or Limits(), catalog=catalog)
        self.engine: Engine = open_catalog(self.settings.catalog_url)
        self.store = BlobStore(self.settings.store_dir)
        with self.engine.begin() as conn:
            self.page_id = conn.execute(
                insert(pages).values(slug="pack", url="https://opengameart.org/content/pack")
            ).inserted_primary_key[0]

    def add_file(self, name: str, data: bytes) -> int:
        sha = self.store.put_bytes(data)
        with self.engine.begin() as conn:
            return conn.execute(
                insert(files).values(
                    page_id=self.page_id,
                    url=f"https://opengameart.org/sites/default/files/{name}",
                    name=name,
                    state="stored",
                    sha256=sha,
                    size=len(data),
                )
            ).inserted_primary_key[0]

    def extract(self) -> Any:
        """Run the stage; it must write nothing outside the store and the catalog."""
        before = tree(self.root)
        stats = extract(self.engine, self.settings, self.store)
        assert outside_store(self, before) == set()
        return stats

    def file(self, file_id: int) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(files).where(files.c.id == file_id)).one()

    def members(self, file_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(members).where(members.c.file_id == file_id).order_by(members.c.id)
            ).all()
        return {r.path: r for r in rows}

    def images(self, file_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(images).where(images.c.file_id == file_id)).all()
        return {r.archive_path: r for r in rows}

    def failures(self) -> list[Any]:
        with self.engine.connect() as conn:
            return conn.execute(select(failures)).all()

    def snapshot(self) -> dict[str, Any]:
        """Every row this stage writes, without ids (parents by path)."""
        parent = aliased(members)
        with self.engine.connect() as conn:
            return {
                "files": sorted(
                    conn.execute(select(files.c.name, files.c.state, files.c.error)).all()
                ),
                "members": sorted(
                    conn.execute(
                        select(
                            members.c.file_id,
                            members.c.path,
                            parent.c.path,
                            members.c.kind,
                            members.c.size,
                            members.c.sha256,
                            members.c.state,
                            members.c.error,
                        ).outerjoin(parent, parent.c.id == members.c.parent_id)
                    ).all(),
                    key=repr,
                ),
                "images": sorted(
                    conn.execute(
                        select(
                            images.c.file_id,
                            images.c.archive_path,
                            members.c.path,
                            images.c.sha256,
                            images.c.pixel_sha256,
                            images.c.phash,
                            images.c.format,
                            images.c.mode,
                            images.c.width,
                            images.c.height,
                            images.c.frames,
                        ).outerjoin(members, members.c.id == images.c.member_id)
                    ).all(),
                    key=repr,
                ),
                "blobs": sorted(conn.execute(select(blobs.c.sha256, blobs.c.size)).all()),
                "failures": sorted(
                    conn.execute(select(failures.c.stage, failures.c.item, failures.c.reason)).all()
                ),
            }

    def assert_consistent(self) -> None:
        """No row points at a blob that is not in the store."""
        with self.engine.connect() as conn:
            shas = conn.execute(select(members.c.sha256).where(members.c.sha256.is_not(None)))
            shas = {*shas.scalars(), *conn.execute(select(images.c.sha256)).scalars()}
            shas |= set(conn.execute(select(blobs.c.sha256)).scalars())
        for sha in shas:
            assert self.store.has(sha), sha


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def colour_png(i: int, size: int = 12) -> bytes:
    out = io.BytesIO()
    im = Image.new("RGBA", (size, size), (30 * i % 256, 80, 255 - 20 * i % 256, 255))
    im.putpixel((i % size, 0), (0, 0, 0, 0))
    im.save(out, "PNG")
    return out.getvalue()


def outside_store(env: Env, before: set[str]) -> set[str]:
    """New paths under the test's folder that are neither the store nor the catalog."""
    new = tree(env.root) - before
    allowed = ("data/store", "data/catalog.sqlite")
    return {p for p in new if not p.startswith(allowed) and p != "data"}


# ------------------------------------------------------------------------------------------
# direct files


def test_direct_image(env: Env) -> None:
    data = colour_png(1)
    file_id = env.add_file("hero.png", data)
    stats = env.extract()
    assert (stats.files, stats.images) == (1, 1)
    row = env.file(file_id)
    assert (row.state, row.error) == ("done", None) and row.extracted_at is not None
    image = env.images(file_id)[""]
    assert (image.member_id, image.sha256, image.format) == (None, row.sha256, "PNG")
    assert (image.width, image.height, image.frames, image.mode) == (12, 12, 1, "RGBA")
    assert len(image.phash) == 16 and len(image.pixel_sha256) == 64
    assert env.members(file_id) == {}


def test_direct_image_detected_by_content(env: Env) -> None:
    file_id = env.add_file("sprites.zip", colour_png(2))  # a PNG with the wrong name
    env.extract()
    assert env.images(file_id)[""].format == "PNG"


def test_undecodable_direct_image_fails_the_file(env: Env) -> None:
    data = colour_png(3, size=200)
    file_id = env.add_file("broken.png", data[: len(data) // 2])
    stats = env.extract()
    assert stats.failed == 1
    row = env.file(file_id)
    assert row.state == "failed" and row.error.startswith("undecodable image: ")
    assert env.images(file_id) == {}
    [failure] = env.failures()
    assert (failure.stage, failure.item) == ("extract", f"file {row.url}")
    assert failure.reason == row.error


def test_other_files_are_done_without_rows(env: Env) -> None:
    svg = env.add_file("icon.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    wav = env.add_file("boom.wav", b"RIFF\x24\x00\x00\x00WAVEfmt ")
    stats = env.extract()
    assert stats.other == 2
    for file_id in (svg, wav):
        assert env.file(file_id).state == "done"
        assert env.images(file_id) == {} and env.members(file_id) == {}


def test_missing_blob_sends_the_file_back_to_download(env: Env) -> None:
    file_id = env.add_file("gone.png", colour_png(4))
    env.store.path(env.file(file_id).sha256).unlink()
    stats = env.extract()
    assert stats.missing == 1
    assert env.file(file_id).state == "pending"


# ------------------------------------------------------------------------------------------
# archives


def nested_pack(tmp: Path) -> bytes:
    """pack.zip > inner.7z > deeper.zip > deepest.zip > d.png (four levels of archives)."""
    tmp.mkdir(exist_ok=True)
    deepest = write_zip(tmp / "deepest.zip", [("d.png", colour_png(4))])
    deeper = write_zip(
        tmp / "deeper.zip", [("c.png", colour_png(3)), ("deepest.zip", deepest.read_bytes())]
    )
    inner = write_7z(
        tmp / "inner.7z",
        [("sub/b.png", colour_png(2)), ("deeper.zip", deeper.read_bytes())],
    )
    pack = write_zip(
        tmp / "pack.zip",
        [
            ("pack/", b""),
            ("pack/a.png", colour_png(1)),
            ("pack/readme.txt", b"CC0, by someone"),
            ("pack/inner.7z", inner.read_bytes()),
        ],
    )
    return pack.read_bytes()


def test_nested_archives(env: Env) -> None:
    file_id = env.add_file("pack.zip", nested_pack(env.root / "build"))
    stats = env.extract()
    assert env.file(file_id).state == "done"
    got = env.members(file_id)
    assert list(got) == [
        "pack/a.png",
        "pack/readme.txt",
        "pack/inner.7z",
        "pack/inner.7z/sub/b.png",
        "pack/inner.7z/deeper.zip",
        "pack/inner.7z/deeper.zip/c.png",
        "pack/inner.7z/deeper.zip/deepest.zip",
    ]
    kinds = {p: (m.kind, m.state) for p, m in got.items()}
    assert kinds["pack/inner.7z"] == ("archive", "ok")
    assert kinds["pack/readme.txt"] == ("other", "ok")
    assert kinds["pack/inner.7z/deeper.zip/deepest.zip"] == ("archive", "refused")
    assert "deeper than 3" in got["pack/inner.7z/deeper.zip/deepest.zip"].error
    # parents: the enclosing archive member
    assert got["pack/a.png"].parent_id is None
    assert got["pack/inner.7z/sub/b.png"].parent_id == got["pack/inner.7z"].id
    assert got["pack/inner.7z/deeper.zip/c.png"].parent_id == got["pack/inner.7z/deeper.zip"].id
    assert got["pack/readme.txt"].size == len(b"CC0, by someone")
    assert got["pack/readme.txt"].sha256 is None  # not stored
    # images: one per image member, pointing at it
    found = env.images(file_id)
    assert set(found) == {"pack/a.png", "pack/inner.7z/sub/b.png", "pack/inner.7z/deeper.zip/c.png"}
    for path, image in found.items():
        assert image.member_id == got[path].id
        assert image.sha256 == got[path].sha256
        assert env.store.path(image.sha256).read_bytes() == colour_png(
            {"pack/a.png": 1, "pack/inner.7z/sub/b.png": 2}.get(path, 3)
        )
    # stored members have blobs rows
    with env.engine.connect() as conn:
        registered = dict(conn.execute(select(blobs.c.sha256, blobs.c.size)).all())
    for m in got.values():
        if m.sha256:
            assert registered[m.sha256] == m.size
    assert stats.archives == 3 and stats.images == 3
    env.assert_consistent()


@pytest.mark.postgres
def test_nested_archives_and_rerun_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    env = Env(tmp_path, catalog=pg_url)
    file_id = env.add_file("pack.zip", nested_pack(tmp_path / "build"))
    env.add_file("hero.png", colour_png(5))
    assert env.extract().files == 2
    assert len(env.members(file_id)) == 7 and len(env.images(file_id)) == 3
    first = env.snapshot()
    with env.engine.begin() as conn:
        conn.execute(update(files).values(state="stored"))
    env.extract()
    assert env.snapshot() == first
    env.assert_consistent()


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_hostile_members_are_refused_and_the_rest_cataloged(env: Env) -> None:
    before = tree(env.root)
    build = env.root / "build"
    build.mkdir()
    plain = write_zip(
        build / "hostile.zip",
        [
            ("../../evil.png", colour_png(9)),
            ("/etc/cron.d/evil.png", colour_png(9)),
            (symlink_info("link.png", "/etc/passwd"), b"/etc/passwd"),
            ("secret.png", colour_png(8)),
            ("fake.png", b"<html>not a png</html>"),
            ("__MACOSX/._good.png", b"\x00\x05\x16\x07"),
            ("good.png", colour_png(1)),
            ("dup.png", colour_png(2)),
            ("dup.png", colour_png(3)),
        ],
    )
    before = tree(env.root)
    file_id = env.add_file("hostile.zip", flag_encrypted(plain.read_bytes(), "secret.png"))
    stats = env.extract()
    assert env.file(file_id).state == "done"
    got = {p: (m.kind, m.state) for p, m in env.members(file_id).items()}
    assert got == {
        "../../evil.png": ("image", "refused"),
        "/etc/cron.d/evil.png": ("image", "refused"),
        "link.png": ("image", "refused"),
        "secret.png": ("image", "refused"),
        "fake.png": ("image", "failed"),
        "__MACOSX/._good.png": ("other", "ok"),
        "good.png": ("image", "ok"),
        "dup.png": ("image", "ok"),
        "dup.png (duplicate 2)": ("image", "refused"),
    }
    assert set(env.images(file_id)) == {"good.png", "dup.png"}
    assert stats.refused_members == 5 and stats.failed_members == 1
    assert outside_store(env, before) == set()
    assert not list(env.root.parent.rglob("evil*"))
    env.assert_consistent()


def test_zip_bomb_fails_the_file_and_keeps_what_came_before(env: Env) -> None:
    env.settings.limits.ratio_floor_bytes = 1 << 20
    env.settings.limits.max_compression_ratio = 50
    before = tree(env.root)
    data = write_zip(
        env.root / "bomb.zip",
        [("a.png", colour_png(1)), ("b.txt", b"hi"), ("bomb.bin", bytes(64 << 20))],
    ).read_bytes()
    (env.root / "bomb.zip").unlink()
    file_id = env.add_file("bomb.zip", data)
    stats = env.extract()
    row = env.file(file_id)
    assert row.state == "failed" and stats.failed == 1
    assert row.error.startswith("refused archive: archive refused: compression ratio over 50")
    assert row.error.endswith("kept the 3 members read before")
    got = env.members(file_id)
    assert [(p, m.state) for p, m in got.items()] == [
        ("a.png", "ok"),
        ("b.txt", "ok"),
        ("bomb.bin", "refused"),
    ]
    assert "compression ratio" in got["bomb.bin"].error
    assert set(env.images(file_id)) == {"a.png"}
    assert [f.reason for f in env.failures()] == [row.error]
    assert outside_store(env, before) == set()
    assert list((env.store.root / "tmp").iterdir()) == []  # the bomb's temp file is gone


def test_limits_hold_for_the_whole_tree(tmp_path: Path) -> None:
    env = Env(tmp_path, Limits(max_archive_members=8))
    inner = write_zip(tmp_path / "inner.zip", [(f"i{n}.png", colour_png(n)) for n in range(5)])
    pack = write_zip(
        tmp_path / "pack.zip",
        [*[(f"o{n}.png", colour_png(n)) for n in range(4)], ("inner.zip", inner.read_bytes())],
    )
    file_id = env.add_file("pack.zip", pack.read_bytes())
    env.extract()
    row = env.file(file_id)
    assert row.state == "failed" and "more than 8 entries" in row.error
    assert len(env.members(file_id)) == 8  # 4 + inner.zip + 3 of its members
    assert len(env.images(file_id)) == 7


def test_bomb_inside_a_nested_archive_refuses_the_whole_file(env: Env) -> None:
    env.settings.limits.ratio_floor_bytes = 1 << 20
    env.settings.limits.max_compression_ratio = 50
    inner = write_zip(env.root / "inner.zip", [("bomb.bin", bytes(64 << 20))])
    pack = write_7z(
        env.root / "pack.7z", [("a.png", colour_png(1)), ("inner.zip", inner.read_bytes())]
    )
    file_id = env.add_file("pack.7z", pack.read_bytes())
    env.extract()
    row = env.file(file_id)
    assert row.state == "failed" and "compression ratio" in row.error
    assert set(env.images(file_id)) == {"a.png"}


def test_corrupt_archive_keeps_the_members_read_before(env: Env) -> None:
    noise = np.random.default_rng(5).integers(0, 256, 400_000, dtype=np.uint8).tobytes()
    full = write_tar(
        env.root / "full.tar.gz",
        [("a.png", colour_png(1)), ("b.png", colour_png(2)), ("noise.bin", noise)],
    ).read_bytes()
    file_id = env.add_file("pack.tar.gz", full[: len(full) // 2])
    env.extract()
    row = env.file(file_id)
    assert row.state == "failed"
    assert row.error.startswith("corrupt archive: truncated gzip input")
    assert "kept the 3 members read before" in row.error
    got = env.members(file_id)
    assert [(p, m.state) for p, m in got.items()] == [
        ("a.png", "ok"),
        ("b.png", "ok"),
        ("noise.bin", "failed"),
    ]
    assert set(env.images(file_id)) == {"a.png", "b.png"}


def test_corrupt_nested_archive_fails_only_its_member(env: Env) -> None:
    good = write_zip(env.root / "good.zip", [("x.png", colour_png(1)), ("y.png", colour_png(2))])
    broken = good.read_bytes()[:-30]  # end of central directory cut off
    junk = b"PK\x03\x04" + os.urandom(200)
    pack = write_zip(
        env.root / "pack.zip",
        [("junk.zip", junk), ("a.png", colour_png(3)), ("cut.zip", broken)],
    )
    file_id = env.add_file("pack.zip", pack.read_bytes())
    env.extract()
    assert env.file(file_id).state == "done"
    got = env.members(file_id)
    assert got["junk.zip"].state == "failed" and got["junk.zip"].error.startswith(
        "corrupt archive: "
    )
    assert got["junk.zip"].sha256 is not None  # stored, so that it can be looked at
    assert got["a.png"].state == "ok"
    # without its central directory a zip is still read member by member
    assert [got[p].state for p in ("cut.zip", "cut.zip/x.png", "cut.zip/y.png")] == ["ok"] * 3
    assert set(env.images(file_id)) == {"a.png", "cut.zip/x.png", "cut.zip/y.png"}


@pytest.mark.skipif(not os.path.exists("/usr/bin/7z"), reason="needs the 7z program to encrypt")
def test_encrypted_nested_archive_is_a_refused_member(env: Env) -> None:
    inner = write_zip(env.root / "inner.zip", [("x.png", colour_png(1))])
    subprocess.run(
        ["7z", "a", "-phunter2", "-mhe=on", "locked.7z", inner.name],
        cwd=env.root,
        check=True,
        capture_output=True,
    )
    pack = write_zip(
        env.root / "pack.zip",
        [("locked.7z", (env.root / "locked.7z").read_bytes()), ("a.png", colour_png(2))],
    )
    file_id = env.add_file("pack.zip", pack.read_bytes())
    env.extract()
    assert env.file(file_id).state == "done"
    got = env.members(file_id)
    assert got["locked.7z"].state == "refused" and "encrypted" in got["locked.7z"].error
    assert set(env.images(file_id)) == {"a.png"}


# ------------------------------------------------------------------------------------------
# idempotence


def test_rerun_changes_nothing_and_keeps_ids(env: Env) -> None:
    pack = env.add_file("pack.zip", nested_pack(env.root / "build"))
    env.add_file("hero.png", colour_png(5))
    env.extract()
    first = env.snapshot()
    ids = {p: m.id for p, m in env.members(pack).items()}
    image_ids = {p: i.id for p, i in env.images(pack).items()}
    with env.engine.begin() as conn:
        conn.execute(update(files).values(state="stored"))
    assert env.extract().files == 2
    assert env.snapshot() == first
    assert {p: m.id for p, m in env.members(pack).items()} == ids
    assert {p: i.id for p, i in env.images(pack).items()} == image_ids
    assert env.extract().files == 0  # nothing left to do


def test_new_content_updates_rows_in_place(env: Env) -> None:
    v1 = write_zip(env.root / "v1.zip", [("a.png", colour_png(1)), ("b.png", colour_png(2))])
    file_id = env.add_file("pack.zip", v1.read_bytes())
    env.extract()
    before = env.images(file_id)
    with env.engine.begin() as conn:
        conn.execute(update(images).values(embed_state="done"))
    v2 = write_zip(env.root / "v2.zip", [("a.png", colour_png(1)), ("b.png", colour_png(7))])
    sha = env.store.put_bytes(v2.read_bytes())
    with env.engine.begin() as conn:
        conn.execute(update(files).values(state="stored", sha256=sha))
    env.extract()
    after = env.images(file_id)
    assert after["a.png"].id == before["a.png"].id and after["a.png"].embed_state == "done"
    assert after["b.png"].sha256 != before["b.png"].sha256
    assert after["b.png"].embed_state == "pending"  # new bytes: later stages start over
    with env.engine.begin() as conn:
        conn.execute(update(files).values(state="stored", sha256=env.store.put_bytes(b"x")))
    env.extract()
    assert env.images(file_id) == {} and env.members(file_id) == {}


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from ogasearch.catalog import open_catalog
    from ogasearch.extract import stage
    from ogasearch.settings import Settings
    from ogasearch.store import blobs
    from ogasearch.store.blobs import BlobStore

    data, where, at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    calls = 0

    def dying(real):
        def call(*args, **kwargs):
            global calls
            calls += 1
            if calls == at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return call

    if where == "describe":
        stage.describe_image = dying(stage.describe_image)
    elif where == "write":
        blobs.BlobWriter.write = dying(blobs.BlobWriter.write)
    elif where == "register":
        stage.register_blob = dying(stage.register_blob)
    settings = Settings(data=data)
    stage.extract(open_catalog(settings.catalog_url), settings, BlobStore(settings.store_dir))
    """
)


def kill_inputs(build: Path) -> list[tuple[str, bytes]]:
    """Files for the kill tests, built once (archives hold timestamps)."""
    build.mkdir()
    tar = write_tar(build / "t.tar.gz", [(f"t/{n}.png", colour_png(n)) for n in range(4)])
    bad = write_zip(build / "b.zip", [("a.png", colour_png(1)), ("bomb.bin", bytes(64 << 20))])
    return [
        ("pack.zip", nested_pack(build / "nested")),
        ("hero.png", colour_png(5)),
        ("tiles.tar.gz", tar.read_bytes()),
        ("bomb.zip", bad.read_bytes()),
    ]


def kill_env(root: Path, inputs: list[tuple[str, bytes]]) -> Env:
    env = Env(root, Limits(ratio_floor_bytes=1 << 20))  # as the killed runs get it
    for name, data in inputs:
        env.add_file(name, data)
    return env


def run_killed(env: Env, where: str, at: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(env.settings.data), where, str(at)],
        env={**os.environ, "OGASEARCH_LIMIT_RATIO_FLOOR_BYTES": str(1 << 20)},
        capture_output=True,
        check=False,
    )
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.decode()


def check_kills(tmp_path: Path, kills: list[tuple[str, int]]) -> None:
    inputs = kill_inputs(tmp_path / "build")
    reference = kill_env(tmp_path / "reference", inputs)
    reference.extract()
    expected = reference.snapshot()
    assert expected["failures"] and expected["images"]  # the bomb failed, the rest worked
    killed = kill_env(tmp_path / "killed", inputs)
    for where, at in kills:
        run_killed(killed, where, at)
        killed.assert_consistent()
    killed.extract()
    assert killed.snapshot() == expected
    assert list((killed.store.root / "tmp").iterdir()) == []


@pytest.mark.slow  # a kill loop
def test_kill_and_rerun_gives_the_same_rows(tmp_path: Path) -> None:
    check_kills(tmp_path, [("describe", 3), ("register", 9)])


@pytest.mark.slow
def test_kill_anywhere_and_rerun_gives_the_same_rows(tmp_path: Path) -> None:
    check_kills(
        tmp_path,
        [("describe", n) for n in (1, 2, 4, 6)]
        + [("write", n) for n in (1, 5, 20, 60)]
        + [("register", n) for n in (1, 2, 5, 9)],
    )


def test_zipfile_member_order_is_kept(env: Env) -> None:
    """Members are recorded in archive order (zipfile writes them in order given)."""
    names = [f"{c}.png" for c in "zyxabc"]
    with zipfile.ZipFile(env.root / "o.zip", "w") as z:
        for n, name in enumerate(names):
            z.writestr(name, colour_png(n))
    file_id = env.add_file("o.zip", (env.root / "o.zip").read_bytes())
    env.extract()
    assert list(env.members(file_id)) == names
