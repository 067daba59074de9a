"""Query latency over HTTP at 10k, 100k and 1M indexed vectors, CNN included.

    python bench/bench_query.py                          # 10k, 100k, 1M vectors (1M: ~5 GB RAM)
    python bench/bench_query.py --sizes 10000 --queries 100   # a quick check
    python bench/bench_query.py --data ./bench-query --keep   # keep the filled index for reruns

A real data folder first: the local OGA copy (``--pages`` pages cut from Debian's
crawl-tiles-data) ingested by ``ogasearch update``. Synthetic vectors then fill its embedded
index (the default, in-process HNSW) up to each size: each one a random mix of two real
embeddings plus noise, renormalised, so they lie where real vectors lie and compete with them
as neighbours (ids far above the catalog's, so the search drops them when it joins the
catalog; tiles in the catalog's proportion). At each size ``ogasearch serve`` is started on
the folder and asked, one query at a time:

* ``POST /api/search/image`` with real images of the index, upscaled 2x (the product's main
  query: decode, canonicalise, CNN on the image and its mirror, both HNSW graphs, hash
  lookups, catalog join, grouping), once as a whole copy (found by its hash) and once with
  10% cut off its right and bottom edges (no hash matches: found by patch fingerprints or
  its vector, then pixel verification);
* ``GET /api/similar/{id}`` (no CNN: stored vector, HNSW, join), to split the CNN's share.

Every image query runs every path of ``search.matching.Matcher``: the CNN and HNSW search of
its views, the exact and colour-pattern hash lookups, the patch fingerprint lookup (the
catalog must hold patches: the run stops when it holds none) and pixel verification of the
candidates. The report counts which path found each query's first result, by kind.

Reports p50/p99 over HTTP (client and server on this machine), the server's own ``took_ms``,
its memory and the index's size on disk, and the target at 1M vectors (p50 <= 30 ms, p99 <=
100 ms).
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from sqlalchemy import create_engine, func, select

from _common import (
    CRAWL_TILES,
    Report,
    Server,
    add_report_arguments,
    ingest_local_site,
    own_settings,
    percentile,
    upscaled_pngs,
)
from ogasearch.catalog.fingerprints import KEY_DTYPE
from ogasearch.catalog.schema import embeddings, images
from ogasearch.catalog.vectors import decode_vectors

SYNTHETIC_BASE = 1 << 40  # synthetic ids start here, far above any catalog id
TARGET_P50_MS = 30.0
TARGET_P99_MS = 100.0
TARGET_SIZE = 1_000_000
CHUNK = 20_000
# what an image query runs through: the web app, the search service and matcher, the CNN
# and hashes, the index and the catalog reads
QUERY_CODE = [
    "src/ogasearch/web",
    "src/ogasearch/search",
    "src/ogasearch/embed",
    "src/ogasearch/index",
    "src/ogasearch/catalog",
    "src/ogasearch/workspace.py",
]


@dataclass
class Measured:
    size: int
    fill_seconds: float
    disk_mb: float
    rss_mb: float | None
    image_ms: dict[str, list[float]] = field(default_factory=dict)  # by query kind
    image_took_ms: list[float] = field(default_factory=list)
    similar_ms: list[float] = field(default_factory=list)
    errors: int = 0
    found_by: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, path)

    def all_image_ms(self) -> list[float]:
        return [t for times in self.image_ms.values() for t in times]


def real_vectors(data: Path) -> tuple[np.ndarray, np.ndarray, str, int]:
    """The catalog's embeddings (n, dim), their is-tile flags, model name and dim."""
    engine = create_engine(own_settings(data).catalog_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    embeddings.c.vector, embeddings.c.model, embeddings.c.dim, images.c.parent_id
                ).join(images, images.c.id == embeddings.c.image_id)
            ).all()
    finally:
        engine.dispose()
    if not rows:
        raise SystemExit(f"{data}: no embeddings in the catalog")
    dim, model = int(rows[0].dim), str(rows[0].model)
    vectors = decode_vectors([r.vector for r in rows], dim)
    tiles = np.array([r.parent_id is not None for r in rows], dtype=bool)
    return vectors, tiles, model, dim


def patch_count(data: Path) -> int:
    """Patch fingerprints in the catalog (none: the patch path would find nothing)."""
    engine = create_engine(own_settings(data).catalog_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(select(func.sum(func.length(embeddings.c.patches)))).scalar()
            return int(stored or 0) // KEY_DTYPE.itemsize
    finally:
        engine.dispose()


def fill(data: Path, size: int, seed: int) -> tuple[float, Path]:
    """Top the folder's embedded index up with synthetic vectors to ``size`` in all; the
    seconds taken and the index's folder."""
    from ogasearch.workspace import Workspace

    real, tiles, model, dim = real_vectors(data)
    started = time.perf_counter()
    with Workspace(own_settings(data)) as ws:  # the index `update` and `serve` open
        index = ws.index
        if (index.model, index.dim) != (model, dim):
            raise SystemExit(f"the catalog holds {model} {dim}-d vectors, the index {index!r}")
        have = len(index)
        synthetic = int((index.ids() >= SYNTHETIC_BASE).sum())
        rng = np.random.default_rng(seed + synthetic)  # a rerun continues the same sequence
        tile_share = float(tiles.mean()) if len(tiles) else 0.0
        while have < size:
            n = min(CHUNK, size - have)
            a, b = rng.integers(len(real), size=n), rng.integers(len(real), size=n)
            w = rng.uniform(0.3, 0.7, size=(n, 1)).astype(np.float32)
            mixed = w * real[a] + (1 - w) * real[b]
            mixed += rng.standard_normal((n, dim), dtype=np.float32) * (0.3 / np.sqrt(dim))
            mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
            ids = SYNTHETIC_BASE + synthetic + np.arange(n, dtype=np.int64)
            index.add(ids, mixed, rng.random(n) < tile_share)
            synthetic += n
            have += n
            print(f"\r  filling: {have:,} / {size:,} vectors", end="", flush=True)
        index.flush()
        print()
        folder = Path(index.folder)
    return time.perf_counter() - started, folder


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def query_material(data: Path, server: str, count: int, seed: int) -> tuple[list[bytes], list[int]]:
    """Upscaled PNGs of indexed catalog images (from the server) and catalog ids to ask for."""
    engine = create_engine(own_settings(data).catalog_url)
    try:
        with engine.connect() as conn:
            ids = [
                int(i) for i in conn.execute(select(images.c.id).where(images.c.indexed)).scalars()
            ]
    finally:
        engine.dispose()
    rng = random.Random(seed)
    chosen = rng.sample(ids, min(count, len(ids)))
    return upscaled_pngs(server, chosen), chosen


def cropped(png: bytes) -> bytes:
    """The picture with 10% cut off its right and bottom edges (at least one pixel)."""
    with Image.open(io.BytesIO(png)) as im:
        box = (0, 0, max(1, im.width * 9 // 10), max(1, im.height * 9 // 10))
        out = io.BytesIO()
        im.crop(box).save(out, "PNG")
    return out.getvalue()


def measure(
    data: Path, size: int, filled: tuple[float, Path], args: argparse.Namespace
) -> Measured:
    with Server(data, timeout=1800) as server:
        if server.stats.get("vectors") != size:
            raise SystemExit(f"the server sees {server.stats.get('vectors')} vectors, not {size}")
        copies, ids = query_material(data, server.url, args.distinct, args.seed)
        kinds = {"copy": copies, "crop": [cropped(png) for png in copies]}
        result = Measured(size, filled[0], folder_mb(filled[1]), None)
        rng = random.Random(args.seed)
        with httpx.Client(base_url=server.url, timeout=120) as client:
            for n in range(args.warmup + args.queries):
                pick = rng.randrange(len(copies))
                for kind, pictures in kinds.items():
                    files = {"image": ("query.png", pictures[pick], "image/png")}
                    started = time.perf_counter()
                    response = client.post("/api/search/image", files=files, data={"k": args.k})
                    elapsed = (time.perf_counter() - started) * 1000
                    if response.status_code != 200:
                        result.errors += 1
                    elif n >= args.warmup:
                        result.image_ms.setdefault(kind, []).append(elapsed)
                        answer = response.json()
                        result.image_took_ms.append(float(answer["took_ms"]))
                        first = answer["results"][0]["match"] if answer["results"] else "none"
                        result.found_by[kind, first] += 1
                started = time.perf_counter()
                response = client.get(f"/api/similar/{rng.choice(ids)}", params={"k": args.k})
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    result.errors += 1
                elif n >= args.warmup:
                    result.similar_ms.append(elapsed)
        result.rss_mb = server.rss_mb
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="Vectors."
    )
    parser.add_argument("--pages", type=int, default=100, help="Local site pages ingested.")
    parser.add_argument("--source", type=Path, default=CRAWL_TILES)
    parser.add_argument("--data", type=Path, help="Data folder (default: a temp folder).")
    parser.add_argument("--keep", action="store_true", help="Keep the temp data folder.")
    parser.add_argument("--queries", type=int, default=200, help="Timed queries per size.")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--distinct", type=int, default=50, help="Distinct query images.")
    parser.add_argument("-k", type=int, default=20, help="Results per query.")
    parser.add_argument("--seed", type=int, default=0)
    add_report_arguments(parser)
    args = parser.parse_args()
    report = Report("Query latency over HTTP by index size", args, depends=QUERY_CODE)
    report.target(p50_ms=TARGET_P50_MS, p99_ms=TARGET_P99_MS, at_vectors=TARGET_SIZE)
    temp = None
    if args.data is None:
        temp = tempfile.mkdtemp(prefix="bench-query-")
        args.data = Path(temp)
    results: list[Measured] = []
    try:
        ingest_seconds = 0.0
        if not (args.data / "catalog.sqlite").exists():
            print(f"ingesting a {args.pages}-page local site into {args.data} ...")
            started = time.perf_counter()
            ingest_local_site(args.data, args.pages, args.source)
            ingest_seconds = time.perf_counter() - started
        real, tiles, model, dim = real_vectors(args.data)
        fingerprints = patch_count(args.data)
        if not fingerprints:
            raise SystemExit(f"{args.data}: no patch fingerprints in the catalog")
        for size in sorted(args.sizes):
            print(f"{size:,} vectors:")
            results.append(measure(args.data, size, fill(args.data, size, args.seed), args))
    finally:
        if temp is not None and not args.keep:
            shutil.rmtree(temp, ignore_errors=True)

    report.line(
        f"Real part: a {args.pages}-page local site ingested by `ogasearch update`"
        + (f" ({ingest_seconds:.0f} s)" if ingest_seconds else "")
        + f": {len(real):,} real vectors ({int(tiles.sum()):,} tiles), model {model}, {dim}-d."
        " The rest of each index is synthetic (mixes of two real vectors plus noise), in the"
        " default embedded HNSW index (M=16, ef_construction=200, ef=128, float32)."
        f" {args.queries} timed rounds per size (after {args.warmup} warm-up) of a copy, a crop"
        f" and a similar query, one at a time, k={args.k}, from {args.distinct} distinct real"
        " images upscaled 2x (the crop: 10% cut off the right and bottom); client and"
        f" server on this machine. {fingerprints:,} patch fingerprints in the catalog."
    )
    report.line()
    paths = Counter[tuple[str, str]]()
    for m in results:
        paths.update(m.found_by)
    found_by = {
        kind: {path: n for (k, path), n in paths.most_common() if k == kind}
        for kind in dict.fromkeys(k for k, _ in paths)
    }
    report.line(
        "Path that found the first result of the timed image queries: "
        + "; ".join(
            f"{kind}: " + ", ".join(f"{path} {n}" for path, n in counts.items())
            for kind, counts in found_by.items()
        )
        + " (each query runs every path: vectors, hashes, patches, verification)."
    )
    report.line()
    rows = []
    for m in results:

        def ms(values: list[float], q: float) -> str:
            return f"{percentile(values, q):.1f}"

        rows.append(
            (
                f"{m.size:,}",
                ms(m.image_ms.get("copy", []), 50),
                ms(m.image_ms.get("copy", []), 99),
                ms(m.image_ms.get("crop", []), 50),
                ms(m.image_ms.get("crop", []), 99),
                ms(m.image_took_ms, 50),
                ms(m.similar_ms, 50),
                ms(m.similar_ms, 99),
                m.errors,
                f"{m.rss_mb:.0f}" if m.rss_mb else "n/a",
                f"{m.disk_mb:.0f}",
                f"{m.fill_seconds:.0f}",
            )
        )
    report.record(
        pages=args.pages,
        real_vectors=len(real),
        patch_fingerprints=fingerprints,
        first_result_found_by=found_by,
        queries=args.queries,
        by_vectors={
            str(m.size): {
                "image_p50_ms": round(percentile(m.all_image_ms(), 50), 1),
                "image_p99_ms": round(percentile(m.all_image_ms(), 99), 1),
                **{
                    f"{kind}_{q}_ms": round(percentile(times, int(q[1:])), 1)
                    for kind, times in m.image_ms.items()
                    for q in ("p50", "p99")
                },
                "image_server_p50_ms": round(percentile(m.image_took_ms, 50), 1),
                "similar_p50_ms": round(percentile(m.similar_ms, 50), 1),
                "similar_p99_ms": round(percentile(m.similar_ms, 99), 1),
                "errors": m.errors,
                "server_rss_mb": round(m.rss_mb) if m.rss_mb else None,
            }
            for m in results
        },
    )
    report.table(
        [
            "vectors",
            "copy p50 ms",
            "copy p99 ms",
            "crop p50 ms",
            "crop p99 ms",
            "server p50 ms (both)",
            "similar p50 ms",
            "similar p99 ms",
            "errors",
            "server RSS MB",
            "index on disk MB",
            "fill s",
        ],
        rows,
    )
    at_target = next((m for m in results if m.size >= TARGET_SIZE), None)
    if at_target is None:
        report.line(
            f"Target (p50 <= {TARGET_P50_MS:g} ms, p99 <= {TARGET_P99_MS:g} ms at"
            f" {TARGET_SIZE:,} vectors): not measured in this run."
        )
    else:
        times = at_target.all_image_ms()
        p50, p99 = percentile(times, 50), percentile(times, 99)
        verdicts = [
            f"p50 {p50:.1f} ms " + ("met" if p50 <= TARGET_P50_MS else "missed"),
            f"p99 {p99:.1f} ms " + ("met" if p99 <= TARGET_P99_MS else "missed"),
        ]
        report.line(
            f"Target at {at_target.size:,} vectors, copies and crops together (p50 <="
            f" {TARGET_P50_MS:g} ms, p99 <= {TARGET_P99_MS:g} ms): {', '.join(verdicts)}."
        )
    report.finish()


if __name__ == "__main__":
    main()
