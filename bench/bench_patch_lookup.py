"""Time of the matcher's patch lookup (``HashLookup.lookup_patches``) on an ingested folder,
and of its image hash lookup (``HashLookup.lookup``, SQL) for comparison.

    python bench/bench_patch_lookup.py --data DIR              # 50 queries of each kind
    python bench/bench_patch_lookup.py --data DIR --no-append  # only print the report

Queries are built from indexed images, as the matcher sees them: "sprite" is one image's
canonical pixels (one lookup per view of a query), "scene" a 4x3 grid of twelve of them (a
screenshot-sized picture with many more patches). Each lookup gets every sampled patch hash
of the picture (``embed.patches.image_patches``), like ``Matcher._patch_candidates``. The
first lookup is not timed (it opens the catalog or maps the table). "canonical hash" is one
``lookup("canonical", value)`` of an indexed image's canonical hash (the exact-copy path, one
indexed SQL query per view).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import select

from _common import Report, add_report_arguments, own_settings, percentile
from ogasearch.catalog.schema import images
from ogasearch.embed.patches import image_patches
from ogasearch.match.adapters import CatalogHashes, CatalogPixels
from ogasearch.workspace import Workspace


def scene(pictures: list[Image.Image]) -> Image.Image:
    cell = max(max(p.size) for p in pictures)
    out = Image.new("RGBA", (4 * cell, 3 * cell), (40, 90, 40, 255))
    for n, pic in enumerate(pictures[:12]):
        out.alpha_composite(pic.convert("RGBA"), ((n % 4) * cell, (n // 4) * cell))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="An ingested data folder.")
    parser.add_argument("--queries", type=int, default=50, help="Lookups of each kind.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", default="", help="What this run measures (e.g. the version).")
    add_report_arguments(parser)
    args = parser.parse_args()
    report = Report(f"Patch lookup {args.label}".strip(), args)
    rng = random.Random(args.seed)
    with Workspace(own_settings(args.data)) as ws:
        with ws.engine.connect() as conn:
            indexed = list(conn.execute(select(images.c.id).where(images.c.indexed)).scalars())
        chosen = rng.sample(sorted(indexed), min(len(indexed), 13 * args.queries))
        canon = CatalogPixels(ws).canonical_images(chosen)
        pictures = [canon[i].image for i in chosen if i in canon]
        kinds = {
            "sprite": pictures[: args.queries],
            "scene": [scene(pictures[n : n + 12]) for n in range(0, 12 * args.queries, 12)],
        }
        hashes = CatalogHashes(ws)
        hashes.lookup_patches([0])  # open the catalog / map the table: not timed
        rows = []
        with ws.engine.connect() as conn:
            values = conn.execute(
                select(images.c.canonical_sha256).where(images.c.id.in_(chosen[: args.queries]))
            ).scalars()
            canonical = [v for v in values if v]
        hash_ms: list[float] = []
        for value in canonical:
            start = time.perf_counter()
            hashes.lookup("canonical", value)
            hash_ms.append((time.perf_counter() - start) * 1000)
        for kind, queries in kinds.items():
            times: list[float] = []
            sent: list[int] = []
            got: list[int] = []
            for picture in queries:
                found = [int(h) for h in np.unique(image_patches(picture).hashes)]
                start = time.perf_counter()
                pairs = hashes.lookup_patches(found)
                times.append((time.perf_counter() - start) * 1000)
                sent.append(len(found))
                got.append(len(pairs))
            rows.append(
                (
                    kind,
                    len(queries),
                    f"{statistics.mean(sent):.0f}",
                    f"{statistics.mean(got):.0f}",
                    f"{statistics.mean(times):.2f}",
                    f"{percentile(times, 50):.2f}",
                    f"{percentile(times, 95):.2f}",
                )
            )
        rows.append(
            (
                "canonical hash",
                len(hash_ms),
                "1",
                "",
                f"{statistics.mean(hash_ms):.2f}",
                f"{percentile(hash_ms, 50):.2f}",
                f"{percentile(hash_ms, 95):.2f}",
            )
        )
    report.line(f"Data: {args.data}, {len(indexed):,} indexed images.")
    report.line()
    report.table(
        ["query", "lookups", "hashes sent", "pairs back", "mean ms", "p50 ms", "p95 ms"], rows
    )
    report.finish()


if __name__ == "__main__":
    main()
