"""Vector stores side by side: add throughput, single-query latency and recall@10.

The comparison the 2021 prototype's author wished for. Each store gets the same synthetic
256-d unit vectors and the same queries; recall@10 is measured against exact (brute-force)
cosine neighbours.

    # default: ogasearch's embedded index (hnswlib), and faiss HNSW if faiss is installed,
    # at 10k and 100k vectors
    python bench/bench_vector_stores.py
    # other sizes; Milvus Lite (slow: ~0.1 s a query at 100k); a Milvus server
    python bench/bench_vector_stores.py --sizes 10000 100000 1000000
    python bench/bench_vector_stores.py --stores hnsw milvus-lite --sizes 10000
    python bench/bench_vector_stores.py --stores milvus --milvus-uri http://127.0.0.1:19530

Data (``--data``): ``embedding`` (default) draws vectors from a 32-dimensional Gaussian latent
space mapped into 256-d plus noise, the kind of structure CNN embeddings have; ``uniform`` is
uniform on the 256-d sphere, which has no neighbourhood structure at all and is the worst case
for every approximate index. Queries are fresh draws from the same distribution, not indexed
vectors. Half the vectors are flagged as tiles; "tiles p50" is a search with tiles="only".

Stores:
    hnsw          ogasearch.index.HnswIndex (hnswlib, M=16, ef_construction=200, ef=128), the
                  default index, through its public interface (two graphs: whole and tiles)
    faiss         faiss IndexHNSWFlat, inner product, same M / efConstruction / efSearch
    milvus-lite   ogasearch.index.MilvusIndex on a Milvus Lite file
    milvus        ogasearch.index.MilvusIndex on the server at --milvus-uri

Adds use every core; each query is timed alone on one thread (p50/p99 of ``--queries``). The
report is printed and appended to docs/benchmarks.md with the machine, date and command.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from _common import Report, add_report_arguments

DIM = 256
K = 10
M, EF_CONSTRUCTION, EF_SEARCH = 16, 200, 128


@dataclass
class Result:
    store: str
    n: int
    add_per_s: float
    flush_s: float | None
    p50_ms: float
    p99_ms: float
    recall: float
    tiles_p50_ms: float | None
    disk_mb: float | None


# -- data ------------------------------------------------------------------------------------


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def make_data(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        out = np.empty((n, DIM), dtype=np.float32)
        for start in range(0, n, 100_000):
            stop = min(n, start + 100_000)
            out[start:stop] = unit(rng.standard_normal((stop - start, DIM), dtype=np.float32))
        return out
    basis = np.random.default_rng(12345).standard_normal((32, DIM)).astype(np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        latent = rng.standard_normal((stop - start, 32), dtype=np.float32)
        noise = rng.standard_normal((stop - start, DIM), dtype=np.float32)
        out[start:stop] = unit(latent @ basis + 0.1 * noise)
    return out


def exact_neighbours(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row ids of the true top-k by cosine (unit vectors: dot product), chunked for memory."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(data), 200_000):
        scores = queries @ data[start : start + 200_000].T
        ids = np.arange(start, start + scores.shape[1])
        both_scores = np.concatenate([best_scores, scores], axis=1)
        both_ids = np.concatenate([best_ids, np.broadcast_to(ids, scores.shape)], axis=1)
        top = np.argsort(-both_scores, axis=1)[:, :k]
        best_scores = np.take_along_axis(both_scores, top, axis=1)
        best_ids = np.take_along_axis(both_ids, top, axis=1)
    return best_ids


# -- stores ----------------------------------------------------------------------------------


@dataclass
class Store:
    """What the benchmark needs of a store: build it, search one query, clean up."""

    add: Callable[[np.ndarray, np.ndarray, np.ndarray], None]
    flush: Callable[[], None] | None
    search: Callable[[np.ndarray, str | None], list[int]]
    disk_bytes: Callable[[], int] | None
    close: Callable[[], None]


def ogasearch_store(uri: str | None, work: Path) -> Store:
    from ogasearch.index import open_index
    from ogasearch.index.milvus import MilvusIndex

    index = open_index(uri, work, DIM, "bench")

    def disk() -> int:
        folder = work / "vectors"
        return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())

    def search(query: np.ndarray, tiles: str | None) -> list[int]:
        return [i for i, _ in index.search(query[None, :], K, tiles=tiles)[0]]  # type: ignore[arg-type]

    def flush() -> None:
        index.flush()
        if isinstance(index, MilvusIndex):  # time the background index build too
            index.wait_indexed(timeout=1800)

    return Store(
        add=lambda ids, vectors, tiles: index.add(ids, vectors, tiles),
        flush=flush,
        search=search,
        disk_bytes=disk if uri is None else None,
        close=index.close,
    )


def faiss_store(work: Path) -> Store:
    import faiss

    index = faiss.IndexHNSWFlat(DIM, M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    index.hnsw.efSearch = EF_SEARCH
    path = work / "faiss.index"

    def add(ids: np.ndarray, vectors: np.ndarray, tiles: np.ndarray) -> None:
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        index.add(vectors)  # ids are row numbers here

    def search(query: np.ndarray, tiles: str | None) -> list[int]:
        _, found = index.search(query[None, :], K)
        return [int(i) for i in found[0] if i >= 0]

    def flush() -> None:
        faiss.write_index(index, str(path))
        faiss.omp_set_num_threads(1)  # queries are timed one at a time, on one thread

    return Store(
        add=add,
        flush=flush,
        search=search,
        disk_bytes=lambda: path.stat().st_size,
        close=lambda: None,
    )


def open_store(name: str, work: Path, milvus_uri: str | None) -> Store:
    if name == "hnsw":
        return ogasearch_store(None, work)
    if name == "faiss":
        return faiss_store(work)
    if name == "milvus-lite":
        return ogasearch_store(str(work / "bench.db"), work)
    if name == "milvus":
        if not milvus_uri:
            raise SystemExit("--stores milvus needs --milvus-uri")
        return ogasearch_store(milvus_uri, work)
    raise SystemExit(f"unknown store {name!r}")


def available(name: str) -> bool:
    modules = {"faiss": "faiss", "milvus-lite": "milvus_lite", "milvus": "pymilvus"}
    if name not in modules:
        return True
    try:
        __import__(modules[name])
    except ImportError:
        return False
    return True


# -- measuring -------------------------------------------------------------------------------


def run_one(
    name: str,
    data: np.ndarray,
    is_tile: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    milvus_uri: str | None,
) -> Result:
    n = len(data)
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        store = open_store(name, work, milvus_uri)
        ids = np.arange(n, dtype=np.int64)
        started = time.perf_counter()
        for start in range(0, n, 50_000):
            stop = start + 50_000
            store.add(ids[start:stop], data[start:stop], is_tile[start:stop])
        add_s = time.perf_counter() - started
        flush_s = None
        if store.flush is not None:
            started = time.perf_counter()
            store.flush()
            flush_s = time.perf_counter() - started
        for query in queries[:5]:  # warm up caches and threads
            store.search(query, None)

        latencies, hits = [], 0
        for query, expected in zip(queries, truth, strict=True):
            started = time.perf_counter()
            found = store.search(query, None)
            latencies.append(time.perf_counter() - started)
            hits += len(set(found) & set(expected.tolist()))
        tiles_p50 = None
        if name != "faiss":  # faiss' HNSW has no cheap filter; not comparable
            tile_latencies = []
            for query in queries:
                started = time.perf_counter()
                store.search(query, "only")
                tile_latencies.append(time.perf_counter() - started)
            tiles_p50 = float(np.percentile(tile_latencies, 50) * 1000)
        disk = store.disk_bytes() / 1e6 if store.disk_bytes is not None else None
        store.close()
        return Result(
            store=name,
            n=n,
            add_per_s=n / add_s,
            flush_s=flush_s,
            p50_ms=float(np.percentile(latencies, 50) * 1000),
            p99_ms=float(np.percentile(latencies, 99) * 1000),
            recall=hits / (len(queries) * K),
            tiles_p50_ms=tiles_p50,
            disk_mb=disk,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def versions() -> str:
    from importlib import metadata

    found = []
    for dist in ("hnswlib", "faiss-cpu", "pymilvus", "milvus-lite", "numpy"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def report(out: Report, results: list[Result], args: argparse.Namespace) -> None:
    """The runs' table and numbers, into ``out``."""

    def opt(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    out.line(
        f"Data: {DIM}-d unit vectors, `{args.data}` distribution, half flagged as tiles;"
        f" {args.queries} fresh queries, recall@{K} against exact cosine neighbours."
        f" HNSW parameters: M={M}, ef_construction={EF_CONSTRUCTION}, ef_search={EF_SEARCH}."
        f" Versions: {versions()}."
    )
    out.line()
    out.table(
        [
            "store",
            "N",
            "add vectors/s",
            "flush (+index build) s",
            "query p50 ms",
            "query p99 ms",
            "recall@10",
            "tiles-only p50 ms",
            "disk MB",
        ],
        [
            (
                r.store,
                f"{r.n:,}",
                f"{r.add_per_s:,.0f}",
                opt(r.flush_s, ".2f"),
                f"{r.p50_ms:.3f}",
                f"{r.p99_ms:.3f}",
                f"{r.recall:.3f}",
                opt(r.tiles_p50_ms, ".3f"),
                opt(r.disk_mb, ".1f"),
            )
            for r in results
        ],
    )
    out.record(
        runs=[
            {
                "store": r.store,
                "vectors": r.n,
                "query_p50_ms": round(r.p50_ms, 3),
                "query_p99_ms": round(r.p99_ms, 3),
                "recall10": round(r.recall, 3),
            }
            for r in results
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--stores",
        nargs="+",
        default=None,
        choices=["hnsw", "faiss", "milvus-lite", "milvus"],
        help="default: hnsw, and faiss when installed",
    )
    parser.add_argument("--data", choices=["embedding", "uniform"], default="embedding")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--milvus-uri", default=None)
    parser.add_argument("--seed", type=int, default=0)
    add_report_arguments(parser)
    args = parser.parse_args()
    stores = args.stores or [s for s in ("hnsw", "faiss") if available(s)]
    for name in stores:
        if not available(name):
            raise SystemExit(f"store {name!r} is not installed")

    out = Report("Vector stores", args, depends=["src/ogasearch/index"])
    results: list[Result] = []
    queries = make_data(args.data, args.queries, seed=args.seed + 1)
    for n in args.sizes:
        data = make_data(args.data, n, seed=args.seed)
        is_tile = np.random.default_rng(args.seed + 2).random(n) < 0.5
        truth = exact_neighbours(data, queries, K)
        for name in stores:
            print(f"{name} at {n:,} ...", file=sys.stderr, flush=True)
            results.append(run_one(name, data, is_tile, queries, truth, args.milvus_uri))
            print(results[-1], file=sys.stderr)
    report(out, results, args)
    out.finish()


if __name__ == "__main__":
    main()
