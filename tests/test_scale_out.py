"""Scale-out: several ``ogasearch update`` workers share one PostgreSQL catalog and one Milvus.

Two real worker processes (the CLI, as a user would start them on two machines) run the whole
pipeline at the same time against the local OGA site, with the catalog on PostgreSQL
(``--catalog``), the vectors on a Milvus server (``--vectors``) and one shared data folder (the
blob store; on several machines a shared mount). They must split the work: every content page
and file requested once, every image and tile embedded exactly once (the embed counts the two
workers print sum to the number of images + tiles, and both did some), nothing missing, the
catalog equal to a single worker's on the embedded default (SQLite + in-process HNSW), and
``ogasearch check --no-repair`` clean. A larger site (two listing pages) checks that the
workers walk the listing once between them and split the content pages. And the move a user
makes from the embedded default to this setup: the SQLite catalog copied to PostgreSQL
(``ogasearch copy-catalog``), Milvus filled from the catalog's vectors by ``ogasearch
check``, after which searches and ``update`` work there.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import create_engine, text

from ogasearch.localsite import RequestRecord, RunningSite, build_site, serve_site
from ogasearch.store.blobs import BlobStore
from support.catalog_dump import count_duplicates, dump_catalog
from support.runs import cli_args, cli_env, run_cli, sqlite_url

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.milvus]

WORKERS = 2
# Small embed batches: the claims interleave finely, so both workers get a share of the
# sample site's few hundred images and tiles even when one reaches the stage a little later.
EMBED_BATCH = "8"
# Per image (natural key): what the embed stage writes besides the vector.
EMBED_COLUMNS = (
    "SELECT f.url, i.archive_path, i.box, i.embed_state, i.indexed, i.canonical_sha256, "
    "i.structure_sha256, e.model, e.dim, e.vector FROM images i JOIN files f ON f.id = i.file_id "
    "LEFT JOIN embeddings e ON e.image_id = i.id"
)


@dataclass
class SingleRun:
    """``ogasearch update`` by one worker on the embedded default (SQLite + HNSW)."""

    data: Path
    fetches: Counter[str]  # content pages and files it requested


@pytest.fixture(scope="module")
def site() -> Iterator[RunningSite]:
    with serve_site(build_site()) as running:
        yield running


@pytest.fixture(scope="module")
def single(site: RunningSite, tmp_path_factory: pytest.TempPathFactory) -> SingleRun:
    data = tmp_path_factory.mktemp("single")
    site.clear_requests()
    run_cli(data, site.base_url, "update", timeout=600)
    fetches = _fetches(site.requests())
    assert fetches and max(fetches.values()) == 1
    return SingleRun(data, fetches)


def _stage_stats(stdout: str) -> dict[str, Any]:
    """``name: {json}`` lines printed by ``ogasearch update``, by stage name."""
    stats: dict[str, Any] = {}
    for line in stdout.splitlines():
        name, sep, rest = line.partition(": ")
        if sep and rest.startswith("{"):
            stats[name] = json.loads(rest)
    return stats


def _fetches(records: list[RequestRecord]) -> Counter[str]:
    """GETs of content pages and files (robots.txt and the listing are per worker)."""
    return Counter(
        r.path
        for r in records
        if r.method == "GET" and r.path.startswith(("/content/", "/sites/default/files/"))
    )


def _embedded(url: str) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(EMBED_COLUMNS))
            return {(r[0], r[1], str(r[2])): tuple(r[3:]) for r in rows}
    finally:
        engine.dispose()


def _drop_ogasearch_collections(uri: str) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    try:
        for name in client.list_collections():
            if name.startswith("ogasearch_"):
                client.drop_collection(name)
    finally:
        client.close()


def _start_worker(data: Path, site: str, catalog: str, *extra: str) -> subprocess.Popen[str]:
    args = cli_args(data, site, "update", *extra, catalog=catalog)
    return subprocess.Popen(
        args,
        env=cli_env(OGASEARCH_EMBED_BATCH=EMBED_BATCH),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _check(data: Path, site: RunningSite, catalog: str, vectors: str, *extra: str) -> Any:
    """``ogasearch check`` on PostgreSQL + Milvus; its JSON summary."""
    proc = run_cli(data, site.base_url, "check", *extra, "--vectors", vectors, catalog=catalog)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _finish(workers: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    """Wait for every worker; each must succeed. Their printed stage stats, in start order."""
    started = time.monotonic()
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=600))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    elapsed = time.monotonic() - started
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, f"a worker failed after {elapsed:.0f} s:\n{stderr[-4000:]}"
    return [_stage_stats(stdout) for stdout, _ in outputs]


def test_two_workers_split_the_work_exactly_once(
    site: RunningSite, single: SingleRun, pg_url: str, milvus_server_uri: str, tmp_path: Path
) -> None:
    # Scale-out: PostgreSQL + Milvus, two workers started together on one data folder (the
    # exported ONNX model comes from the test run's shared cache, OGASEARCH_MODELS).
    shared = tmp_path / "shared"
    _drop_ogasearch_collections(milvus_server_uri)
    site.clear_requests()
    workers = [
        _start_worker(shared, site.base_url, pg_url, "--vectors", milvus_server_uri)
        for _ in range(WORKERS)
    ]
    stats = _finish(workers)

    # Crawl and download: every content page and file fetched once over both workers.
    assert _fetches(site.requests()) == single.fetches

    # The catalog: the same rows as the single worker's, no duplicates.
    assert count_duplicates(pg_url) == dict.fromkeys(("pages", "files", "members", "images"), 0)
    assert dump_catalog(pg_url) == dump_catalog(sqlite_url(single.data))

    # Embed: each image and tile exactly once, by both workers together, all indexed.
    embedded = _embedded(pg_url)
    reference = _embedded(sqlite_url(single.data))
    total = len(reference)
    per_worker = [s["embed"]["embedded"] for s in stats]
    assert sum(per_worker) == total, f"embedded per worker {per_worker}, {total} images + tiles"
    assert all(n > 0 for n in per_worker), f"a worker embedded nothing: {per_worker}"
    assert sum(s["embed"]["failed"] for s in stats) == 0
    assert sum(s["index"]["vectors"]["indexed"] for s in stats) == total
    assert embedded.keys() == reference.keys()
    for key, (state, indexed, canon, structure, model, dim, vector) in embedded.items():
        ref_state, ref_indexed, ref_canon, ref_structure, ref_model, ref_dim, ref_vector = (
            reference[key]
        )
        assert (state, bool(indexed), canon, structure, model, dim) == (
            ref_state,
            bool(ref_indexed),
            ref_canon,
            ref_structure,
            ref_model,
            ref_dim,
        ), key
        # Batches of 8 and of 64 may round the last bits differently; float16 either way.
        ours = np.frombuffer(vector, dtype="<f2").astype(np.float32)
        theirs = np.frombuffer(ref_vector, dtype="<f2").astype(np.float32)
        assert float(ours @ theirs) > 0.999, key

    # The vector index on Milvus holds exactly the catalog's images.
    report = _check(shared, site, pg_url, milvus_server_uri, "--no-repair")
    assert report["clean"] and report["in_index"] == report["indexed_in_catalog"] == total
    _drop_ogasearch_collections(milvus_server_uri)


def test_workers_walk_the_listing_once_and_split_the_pages(
    pg_url: str, tmp_path: Path, crawl_tiles: Path
) -> None:
    """Three crawl workers start together on an empty PostgreSQL catalog (creating the tables
    at the same moment): one walks the listing, the others wait for it and then ask only for
    page 0, and the content pages are shared out with none fetched twice."""
    site = build_site(scale_source=crawl_tiles, pages=150)  # two listing pages of 144
    with serve_site(site) as running:
        workers = [
            _start_worker(tmp_path, running.base_url, pg_url, "--stage", "crawl") for _ in range(3)
        ]
        stats = [s["crawl"] for s in _finish(workers)]
        records = running.requests()
    listing = [r for r in records if r.method == "GET" and r.path == "/art-search-advanced"]
    walks = sorted(s["listing_pages"] for s in stats)
    assert walks[:-1] == [1, 1] and walks[-1] >= 2, f"listing pages per worker: {walks}"
    assert len(listing) == sum(walks)
    fetched = _fetches(records)
    assert len(fetched) == 150 and set(fetched.values()) == {1}
    assert sum(s["new"] for s in stats) == 150
    assert all(s["new"] > 0 for s in stats), f"pages per worker: {[s['new'] for s in stats]}"


def test_embedded_default_moves_to_postgresql_and_milvus(
    site: RunningSite, single: SingleRun, pg_url: str, milvus_server_uri: str, tmp_path: Path
) -> None:
    """The README's way from the embedded default to the scale-out setup, step by step."""
    moved = tmp_path / "moved"
    shutil.copytree(single.data, moved)  # the data folder (the blob store) moves as it is
    source = sqlite_url(moved)
    copy = subprocess.run(
        [sys.executable, "-m", "ogasearch", "copy-catalog", source, pg_url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert copy.returncode == 0, copy.stderr[-4000:]
    assert dump_catalog(pg_url) == dump_catalog(source)
    assert _embedded(pg_url) == _embedded(source)
    total = len(_embedded(source))

    # Milvus is filled from the catalog's vectors: no image is decoded or embedded again.
    _drop_ogasearch_collections(milvus_server_uri)
    repaired = _check(moved, site, pg_url, milvus_server_uri)
    assert repaired["repaired"] and repaired["missing_from_index"] == total
    report = _check(moved, site, pg_url, milvus_server_uri, "--no-repair")
    assert report["clean"] and report["in_index"] == total

    # Searches work there: an image finds itself, a keyword finds its page.
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            image_id, sha256, title = conn.execute(
                text(
                    "SELECT i.id, i.sha256, p.title FROM images i JOIN files f ON f.id ="
                    " i.file_id JOIN pages p ON p.id = f.page_id WHERE i.parent_id IS NULL"
                    " AND i.archive_path = '' AND i.width >= 16 ORDER BY i.id LIMIT 1"
                )
            ).one()
    finally:
        engine.dispose()
    blob = BlobStore(moved / "store").path(sha256)
    found = run_cli(
        moved,
        site.base_url,
        "search",
        str(blob),
        "--json",
        "--vectors",
        milvus_server_uri,
        catalog=pg_url,
    )
    first = json.loads(found.stdout)["results"][0]
    assert image_id in first["group_ids"], first
    word = max(title.split(), key=len)
    found = run_cli(
        moved,
        site.base_url,
        "search",
        "--text",
        word,
        "--json",
        "--vectors",
        milvus_server_uri,
        catalog=pg_url,
    )
    assert any(r["source"]["title"] == title for r in json.loads(found.stdout)["results"])

    # And update goes on from where the embedded catalog was: only a new submission is
    # fetched and embedded, into rows with fresh ids (the copy moved PostgreSQL's sequences).
    sprite = Image.fromarray(np.random.default_rng(7).integers(0, 256, (24, 24, 4), np.uint8))
    png = io.BytesIO()
    sprite.save(png, "PNG")
    site.site.add_page("Moved catalog newcomer", {"newcomer.png": png.getvalue()})
    update = run_cli(moved, site.base_url, "update", "--vectors", milvus_server_uri, catalog=pg_url)
    stats = _stage_stats(update.stdout)
    assert (stats["crawl"]["new"], stats["download"]["stored"]) == (1, 1), stats
    assert stats["embed"]["embedded"] == stats["index"]["vectors"]["indexed"] >= 1, stats
    report = _check(moved, site, pg_url, milvus_server_uri, "--no-repair")
    assert report["clean"] and report["in_index"] == total + stats["embed"]["embedded"]
    _drop_ogasearch_collections(milvus_server_uri)


README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_scale_out_block() -> str:
    """The one fenced shell block of the README's "Scale-out" section."""
    section = README.read_text().split("\n## Scale-out\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 1, f"expected one sh block in Scale-out, found {len(blocks)}"
    return str(blocks[0])


def _with_values(block: str, values: dict[str, str]) -> str:
    """``block`` with the values of some of the ``NAME=value`` lines it opens with replaced:
    everything else is run as the README has it."""
    lines = block.splitlines()
    declared: dict[str, int] = {}
    for number, line in enumerate(lines):
        found = re.match(r"([A-Z_]+)=\S+", line)
        if not found:
            break
        declared[found[1]] = number
    assert set(values) <= set(declared), f"the block declares {sorted(declared)}"
    for name, value in values.items():
        lines[declared[name]] = f"{name}={shlex.quote(value)}"
    return "\n".join(lines) + "\n"


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _stop_pid_file(pid_file: Path) -> None:
    """Stop the Milvus launcher as the README says (SIGINT: it stops its server first)."""
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("pg_createcluster"),
    reason="the README's PostgreSQL steps need root and Debian's postgresql-common",
)
@pytest.mark.stops_milvus
def test_readme_scale_out_block_runs_as_written(
    site: RunningSite, single: SingleRun, tmp_path: Path, milvus_server: Any
) -> None:
    """The README's move to PostgreSQL + Milvus, run verbatim (own ports and cluster name):
    afterwards ``--data DIR`` alone uses the new backends (``update`` fetches and embeds
    nothing again), ``check --no-repair`` names them and is clean, and the embedded files
    the README then allows to delete are really unused."""
    if shutil.which("milvus-server", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the milvus package (ogasearch[scale]) is not installed")
    work = tmp_path / "work"
    shutil.copytree(single.data, work / "oga")  # the README's DATA=./oga
    pg_port, milvus_port = _free_ports(2)
    cluster = f"ogasearch_test_{os.getpid()}"
    script = _with_values(
        _readme_scale_out_block(),
        {"PG_CLUSTER": cluster, "PG_PORT": str(pg_port), "MILVUS_PORT": str(milvus_port)},
    )
    env = cli_env(OGASEARCH_SITE=site.base_url)
    env.pop("OGASEARCH_DATA", None)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    pg_version = sorted(os.listdir("/usr/lib/postgresql"), key=int)[-1]
    milvus_server.stop()  # the block starts its own Milvus; etcd's port 2380 allows one
    site.clear_requests()
    try:
        proc = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}"
        assert "change-me" not in proc.stdout + proc.stderr  # the password is masked
        catalog = f"postgresql://ogasearch:***@127.0.0.1:{pg_port}/ogasearch"
        vectors = f"http://127.0.0.1:{milvus_port}"
        checks = [line for line in _json_lines(proc.stdout) if "clean" in line]
        filled, verified = checks[-2:]
        total = len(_embedded(sqlite_url(single.data)))
        assert filled["repaired"] and filled["missing_from_index"] == total
        assert verified["catalog"] == catalog and verified["vectors"] == vectors, verified
        assert verified["clean"] and verified["in_index"] == total
        # Step 6's update ran on PostgreSQL + Milvus: no page or file the embedded catalog
        # had was fetched again (only submissions added to the site since, if any), and only
        # their images were embedded.
        refetched = set(_fetches(site.requests())) & set(single.fetches)
        assert not refetched, sorted(refetched)[:5]
        stats = _stage_stats(proc.stdout)
        added = stats["embed"]["embedded"]
        assert added == stats["index"]["vectors"]["indexed"] < total, stats

        # What the README then allows to delete is not read any more.
        data = work / "oga"
        shutil.rmtree(data / "vectors")
        for path in data.glob("catalog.sqlite*"):
            path.unlink()
        shown = run_cli(data, site.base_url, "stats", **{"PATH": env["PATH"]})
        counts = json.loads(shown.stdout)
        assert (counts["catalog"], counts["vectors"]) == (catalog, vectors)
        assert counts["indexed"] == total + added
        again = json.loads(
            run_cli(data, site.base_url, "check", "--no-repair").stdout.strip().splitlines()[-1]
        )
        assert again["clean"] and again["in_index"] == total + added
        assert not list(data.glob("catalog.sqlite*")) and not (data / "vectors").exists()
    finally:
        _stop_pid_file(work / "milvus" / "server.pid")
        subprocess.run(
            ["pg_dropcluster", "--stop", pg_version, cluster], capture_output=True, timeout=120
        )
        milvus_server.start()


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
