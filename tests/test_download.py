"""The download stage with the real PoliteClient against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from ogasearch.catalog import open_catalog
from ogasearch.catalog.schema import blobs, failures, files, pages
from ogasearch.crawl.http import PoliteClient
from ogasearch.settings import Limits, Settings
from ogasearch.store.blobs import BlobStore
from ogasearch.store.stage import MAX_ATTEMPTS, download

OGA = "https://opengameart.org/sites/default/files/"


@dataclass
class Served:
    body: bytes
    status: int = 200
    etag: str | None = None
    content_type: str = "application/octet-stream"
    chunk_pause: float = 0.0  # seconds between 64 KiB chunks


@dataclass
class Site:
    """A loopback server for ``/sites/default/files/NAME``, with conditional GET by ETag."""

    files: dict[str, Served] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (name, If-None-Match)
    url: str = ""

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.requests if n == name)


@pytest.fixture
def site() -> Iterator[Site]:
    state = Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            prefix = "/sites/default/files/"
            if not self.path.startswith(prefix):
                self.send_error(404)
                return
            name = self.path[len(prefix) :]
            condition = self.headers.get("If-None-Match")
            state.requests.append((name, condition))
            served = state.files.get(name.partition("?")[0])  # the query names a copy
            if served is None:
                self.send_error(404)
                return
            if served.status != 200:
                self.send_error(served.status)
                return
            if served.etag and condition == served.etag:
                self.send_response(304)
                self.send_header("ETag", served.etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", served.content_type)
            self.send_header("Content-Length", str(len(served.body)))
            self.send_header("Last-Modified", "Tue, 04 Nov 2014 13:08:00 GMT")
            if served.etag:
                self.send_header("ETag", served.etag)
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                for at in range(0, len(served.body), 1 << 16):
                    self.wfile.write(served.body[at : at + (1 << 16)])
                    if served.chunk_pause:
                        time.sleep(served.chunk_pause)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Env:
    def __init__(
        self, root: Path, site: Site, limits: Limits | None = None, catalog: str | None = None
    ) -> None:
        self.root = root
        self.site = site
        self.settings = Settings(
            data=root / "data",
            site=site.url,
            delay=0,
            retries=2,
            limits=limits or Limits(),
            catalog=catalog,
        )
        self.engine = open_catalog(self.settings.catalog_url)
        self.store = BlobStore(self.settings.store_dir)
        with self.engine.begin() as conn:
            self.page_id = conn.execute(
                insert(pages).values(slug="pack", url="https://opengameart.org/content/pack")
            ).inserted_primary_key[0]

    def add(self, name: str, **values: Any) -> int:
        with self.engine.begin() as conn:
            return conn.execute(
                insert(files).values(page_id=self.page_id, url=OGA + name, name=name, **values)
            ).inserted_primary_key[0]

    def run(self) -> Any:
        with PoliteClient(self.settings, backoff_base=0.001, backoff_cap=0.01) as client:
            return download(self.engine, self.settings, client, self.store)

    def row(self, file_id: int) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(files).where(files.c.id == file_id)).one()

    def set(self, file_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(files).where(files.c.id == file_id).values(**values))

    def failures(self) -> list[Any]:
        with self.engine.connect() as conn:
            return conn.execute(select(failures)).all()


@pytest.fixture
def env(tmp_path: Path, site: Site) -> Env:
    return Env(tmp_path, site)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_pending_files_are_stored(env: Env, site: Site) -> None:
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(5000)
    pack = os.urandom(300_000)
    site.files["hero.png"] = Served(png, etag='"h1"', content_type="image/png")
    site.files["pack%20v2.zip"] = Served(pack, content_type="application/zip")
    hero = env.add("hero.png")
    zipped = env.add("pack%20v2.zip")
    before = tree(env.root)
    stats = env.run()
    assert (stats.stored, stats.failed, stats.bytes) == (2, 0, len(png) + len(pack))
    for file_id, data in ((hero, png), (zipped, pack)):
        row = env.row(file_id)
        assert row.state == "stored" and row.error is None and row.attempts == 0
        assert row.sha256 == hashlib.sha256(data).hexdigest() and row.size == len(data)
        assert env.store.path(row.sha256).read_bytes() == data
        assert row.downloaded_at is not None
        assert row.last_modified == "Tue, 04 Nov 2014 13:08:00 GMT"
    assert env.row(hero).content_type == "image/png" and env.row(hero).etag == '"h1"'
    with env.engine.connect() as conn:
        assert dict(conn.execute(select(blobs.c.sha256, blobs.c.size)).all()) == {
            env.row(hero).sha256: len(png),
            env.row(zipped).sha256: len(pack),
        }
    assert site.requests == [("hero.png", None), ("pack%20v2.zip", None)]  # fetched as given
    new = tree(env.root) - before
    assert all(p.startswith(("data/store", "data/catalog.sqlite")) for p in new), new
    assert env.run().stored == 0 and len(site.requests) == 2  # nothing left to do


def test_404_and_410_are_gone(env: Env, site: Site) -> None:
    site.files["removed.png"] = Served(b"", status=410)
    missing, removed = env.add("missing.png"), env.add("removed.png")
    stats = env.run()
    assert stats.gone == 2
    assert env.row(missing).state == "gone" and env.row(removed).state == "gone"
    assert env.row(removed).error == "HTTP 410"
    # A dead link is recorded once, naming the file and the status.
    gone = sorted((f.stage, f.item, f.reason) for f in env.failures())
    assert gone == [
        ("download", f"file {OGA}missing.png", "gone: HTTP 404"),
        ("download", f"file {OGA}removed.png", "gone: HTTP 410"),
    ]
    env.run()
    assert len(site.requests) == 2  # not asked again
    assert len(env.failures()) == 2


def test_failures_are_retried_on_later_runs_until_three(env: Env, site: Site) -> None:
    site.files["flaky.png"] = Served(b"", status=503)
    site.files["fine.png"] = Served(b"fine")
    flaky, fine = env.add("flaky.png"), env.add("fine.png")
    for run in range(1, MAX_ATTEMPTS + 1):
        stats = env.run()
        assert stats.failed == 1
        row = env.row(flaky)
        assert (row.state, row.attempts) == ("failed", run)
        assert "HTTP 503" in row.error
        assert site.count("flaky.png") == 2 * run  # the client itself tries twice per run
    assert env.row(fine).state == "stored" and site.count("fine.png") == 1
    assert env.run().failed == 0
    assert site.count("flaky.png") == 2 * MAX_ATTEMPTS  # given up
    reasons = [(f.stage, f.item) for f in env.failures()]
    assert reasons == [("download", f"file {OGA}flaky.png")] * MAX_ATTEMPTS


def test_a_failure_that_later_succeeds_resets_attempts(env: Env, site: Site) -> None:
    site.files["later.png"] = Served(b"", status=500)
    file_id = env.add("later.png")
    env.run()
    assert env.row(file_id).attempts == 1
    site.files["later.png"] = Served(b"here now")
    env.run()
    row = env.row(file_id)
    assert (row.state, row.attempts, row.error) == ("stored", 0, None)


def test_too_large_is_a_permanent_failure(tmp_path: Path, site: Site) -> None:
    env = Env(tmp_path, site, Limits(max_download_bytes=100_000))
    site.files["huge.png"] = Served(os.urandom(200_000))
    file_id = env.add("huge.png")
    assert env.run().failed == 1
    row = env.row(file_id)
    assert (row.state, row.attempts) == ("failed", MAX_ATTEMPTS)
    assert "100000" in row.error
    env.run()
    assert site.count("huge.png") == 1
    assert list((env.store.root / "tmp").iterdir()) == []


def test_only_present_and_pending_files(env: Env, site: Site) -> None:
    site.files["a.png"] = Served(b"a")
    dropped = env.add("a.png", present=False)
    extract_failed = env.add("a.png?x", state="failed", attempts=0, error="corrupt archive: x")
    done = env.add("a.png?y", state="done")
    env.run()
    assert site.requests == []
    assert env.row(dropped).state == "pending"
    assert env.row(extract_failed).error == "corrupt archive: x"
    assert env.row(done).state == "done"


def test_conditional_redownload(env: Env, site: Site) -> None:
    site.files["sheet.png"] = Served(b"version 1", etag='"v1"')
    extracted, fresh = env.add("sheet.png"), env.add("sheet.png?copy")
    env.run()
    sha = env.row(extracted).sha256
    env.set(extracted, state="pending", extracted_at=env.row(extracted).downloaded_at)
    env.set(fresh, state="pending")
    stats = env.run()
    assert stats.unchanged == 2
    assert site.requests[-2:] == [("sheet.png", '"v1"'), ("sheet.png?copy", '"v1"')]
    assert (env.row(extracted).state, env.row(extracted).sha256) == ("done", sha)
    assert env.row(fresh).state == "stored"  # never extracted: extract it now
    # new content: stored again, to be extracted again
    site.files["sheet.png"] = Served(b"version 2", etag='"v2"')
    env.set(extracted, state="pending")
    env.run()
    row = env.row(extracted)
    assert (row.state, row.etag) == ("stored", '"v2"')
    assert row.sha256 == hashlib.sha256(b"version 2").hexdigest()
    # the blob vanished from the store: no validators sent, downloaded in full
    env.store.path(row.sha256).unlink()
    env.set(extracted, state="pending")
    env.run()
    assert site.requests[-1] == ("sheet.png", None)
    assert env.store.has(row.sha256)


@pytest.mark.postgres
def test_download_on_postgresql(tmp_path: Path, site: Site, pg_url: str) -> None:
    env = Env(tmp_path, site, catalog=pg_url)
    site.files["a.png"] = Served(b"same bytes")
    site.files["broken.png"] = Served(b"", status=500)
    ids = [env.add("a.png"), env.add("a.png?again"), env.add("broken.png")]
    stats = env.run()
    assert (stats.stored, stats.unchanged, stats.failed) == (2, 0, 1)
    assert [env.row(i).state for i in ids] == ["stored", "stored", "failed"]
    with env.engine.connect() as conn:
        assert conn.execute(select(blobs.c.sha256)).scalars().all() == [
            hashlib.sha256(b"same bytes").hexdigest()
        ]


KILLED_DOWNLOAD = textwrap.dedent(
    """
    import sys
    from ogasearch.catalog import open_catalog
    from ogasearch.crawl.http import PoliteClient
    from ogasearch.settings import Settings
    from ogasearch.store.blobs import BlobStore
    from ogasearch.store.stage import download

    settings = Settings(data=sys.argv[1], site=sys.argv[2], delay=0)
    with PoliteClient(settings) as client:
        download(open_catalog(settings.catalog_url), settings, client,
                 BlobStore(settings.store_dir))
    """
)


def test_kill_during_a_download(env: Env, site: Site) -> None:
    body = os.urandom(2 << 20)
    site.files["slow.zip"] = Served(body, chunk_pause=0.05)  # about 1.6 s
    file_id = env.add("slow.zip")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_DOWNLOAD, str(env.settings.data), site.url]
    )
    temp_dir = env.store.root / "tmp"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if temp_dir.is_dir() and any(p.stat().st_size > 0 for p in temp_dir.iterdir()):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(list(temp_dir.iterdir())) == 1  # a partial temp file, nothing else
    assert env.row(file_id).state == "pending" and env.row(file_id).sha256 is None
    site.files["slow.zip"].chunk_pause = 0
    env.run()
    row = env.row(file_id)
    assert row.state == "stored" and env.store.path(row.sha256).read_bytes() == body
    assert list(temp_dir.iterdir()) == []
