"""Session-wide fixtures: real servers started once for the whole test run, the image data
sets (support.datasets), and the rule that server and browser tests are ``slow``."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from support.datasets import CRAWL_TILES, KENNEY, SAMPLE
from support.postgres import PostgresUnavailable, create_database, postgres_server

# Property tests explore new examples on every local run; CI (CI=true) replays the same ones,
# so that a failure there is the code's and can be reproduced, not the luck of the draw.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

# Tests that need a server or a browser are slow by nature: ``-m "not slow"`` leaves them out.
SLOW_MARKERS = ("postgres", "milvus", "browser")


def pytest_configure(config: pytest.Config) -> None:
    """One ONNX model cache for the whole run (every data folder would export its own), shared
    with the CLI subprocesses the tests start. Exports are atomic, so concurrent use is safe."""
    if "OGASEARCH_MODELS" not in os.environ:
        os.environ["OGASEARCH_MODELS"] = tempfile.mkdtemp(prefix="ogasearch-models-")


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects on the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(name) for name in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)
    # A test that stops the session's Milvus server (only one can run per machine) runs last,
    # so that no test after it depends on the server coming back.
    items.sort(key=lambda item: item.get_closest_marker("stops_milvus") is not None)


@pytest.fixture(scope="session")
def crawl_tiles() -> Path:
    """Debian's crawl-tiles-data folder (see support.datasets)."""
    return CRAWL_TILES.require()


@pytest.fixture(scope="session")
def kenney_images() -> Path:
    """The Kenney images the arcade package ships (see support.datasets)."""
    return KENNEY.require()


@pytest.fixture(scope="session")
def sample_sprites() -> Path:
    """The Kenney files bundled with ogasearch's local site (see support.datasets)."""
    return SAMPLE.require()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A real PostgreSQL server (Debian's package) for the session; skipped only if none starts."""
    try:
        with postgres_server() as url:
            yield url
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL server could not be started: {exc}")


@pytest.fixture
def pg_url(pg_admin_url: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    return create_database(pg_admin_url, name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Milvus 2.3 standalone server (``milvus.MilvusServer``) for the session, stopped
    at the end. Its embedded etcd always takes port 2380, so only one such server can run on
    a machine: a test that starts another (the README's scale-out steps) stops this one first
    and starts it again after.
    """
    try:
        from milvus import MilvusServer, MilvusServerConfig
    except ImportError as exc:
        pytest.skip(f"Milvus server could not be started: the milvus package is missing ({exc})")
    # A server of our own rather than milvus.default_server, so no other user of that global
    # can stop or reconfigure it under us.
    server = MilvusServer(MilvusServerConfig())
    base = tmp_path_factory.mktemp("milvus-server")
    server.set_base_dir(str(base))
    server.listen_port = _free_port()  # the first free port from here on
    try:
        server.start()
    except Exception as exc:
        server.stop()
        logs = base / "logs" / "milvus-stderr.log"
        tail = logs.read_text(errors="replace")[-2000:] if logs.exists() else ""
        pytest.skip(f"Milvus server could not be started: {exc!r}\n{tail}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def milvus_server_uri(milvus_server: Any) -> str:
    """The session's Milvus server, for the index contract tests, the end-to-end search tests
    and the scale-out tests."""
    return f"http://{milvus_server.server_address}:{milvus_server.listen_port}"
