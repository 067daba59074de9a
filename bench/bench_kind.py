"""What the kind vector ("more like this") costs: embedding with it (``embed_with_kind``, the
embed stage's call: the kind vector pooled from the same forward pass) against the lookup
vector alone (``embed``), interleaved round by round on the same batches of Crawl tiles; and the
exact scan over kind vectors (``search.kinds.nearest``) and their decoding from float16 bytes
(``catalog.vectors.decode_vectors``, a reload after an ``update``, besides the SQL read) at
catalog sizes of 10,000 images and more.

    python bench/bench_kind.py --sizes 10000,100000 --rounds 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import CRAWL_TILES, ROOT, Report, add_report_arguments
from ogasearch.catalog.kinds import KindVectors
from ogasearch.catalog.vectors import decode_vectors, encode_vector
from ogasearch.embed.extractors import OnnxEfficientNet
from ogasearch.embed.preprocess import prepare
from ogasearch.search.kinds import nearest

DIM = 192
K = 100  # the first pool of a "more like this" of 20 results


def embedding(models: Path, rounds: int) -> list[list[str]]:
    """images/s of ``embed`` and ``embed_with_kind`` on batches of 64 Crawl tiles."""
    extractor = OnnxEfficientNet("lite0", 128, models)
    atlas = np.asarray(Image.open(CRAWL_TILES / "main.png").convert("RGBA"))
    tiles = [
        Image.fromarray(atlas[y : y + 32, x : x + 32].copy())
        for y in range(0, 256, 32)
        for x in range(0, 256, 32)
    ]
    batch = np.stack([prepare(t, 128) for t in tiles])
    calls = {"embed (lookup vector)": extractor.embed, "embed_with_kind": extractor.embed_with_kind}
    for call in calls.values():  # warm-up: onnxruntime's first run allocates
        call(batch[:8])
    wall = dict.fromkeys(calls, 0.0)
    cpu = dict.fromkeys(calls, 0.0)
    for _ in range(rounds):
        for name, call in calls.items():
            w, c = time.perf_counter(), time.process_time()
            call(batch)
            wall[name] += time.perf_counter() - w
            cpu[name] += time.process_time() - c
    n = len(batch) * rounds
    return [[name, f"{n / wall[name]:.0f}", f"{n / cpu[name]:.0f}"] for name in calls]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved embedding rounds")
    ap.add_argument("--models", type=Path, default=ROOT / "ogasearch-data" / "models")
    add_report_arguments(ap)
    args = ap.parse_args(argv)
    title = '"More like this": exact scan over kind vectors'
    report = Report(title, args, ["src/ogasearch/search", "src/ogasearch/embed"])
    embed_rows = embedding(args.models, args.rounds)
    report.table(["call", "images/s (wall)", "images per CPU-second"], embed_rows)
    rng = np.random.default_rng(0)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        raw = rng.standard_normal((n, DIM)).astype(np.float32)
        blobs = [encode_vector(v) for v in raw]
        t0 = time.perf_counter()
        vectors = decode_vectors(blobs, DIM)
        decode_ms = (time.perf_counter() - t0) * 1000
        kinds = KindVectors(np.arange(n, dtype=np.int64), rng.random(n) < 0.5, vectors)
        t0 = time.perf_counter()
        for q in rng.integers(0, n, args.queries):
            nearest(kinds, vectors[q], K, "exclude")
        scan_ms = (time.perf_counter() - t0) * 1000 / args.queries
        rows.append([f"{n:,}", f"{n * DIM * 2 / 1e6:.1f} MB", f"{scan_ms:.2f}", f"{decode_ms:.0f}"])
        report.record(**{f"n{n}": {"scan_ms": scan_ms, "decode_ms": decode_ms}})
        print(rows[-1], file=sys.stderr)
    report.table(
        ["kind vectors", "float16 bytes", f"scan ms (k={K}, tile filter)", "decode ms (reload)"],
        rows,
    )
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
