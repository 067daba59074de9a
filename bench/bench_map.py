"""The map of all the art: layout choice, layout time, tile pyramid, and what a browser loads.

1. umap-learn against openTSNE on the same synthetic vectors (``--compare`` points): fit time
   and neighbourhood preservation (share of each point's 10 nearest neighbours in the vectors,
   cosine, that are among its 10 nearest on the map; 1,000 points sampled). umap-learn is not
   a dependency: ``pip install umap-learn==0.5.12`` to run this part.
2. The map's own layout (``artmap.layout.fit_layout``) at ``--points`` points, and placing
   1,000 new points into it (``Layout.place``).
3. The tile pyramid (``artmap.pyramid.draw_tiles``) with synthetic 16x16 sprites.
4. ``/map`` served by the real web app in headless Chromium: bytes transferred and time to the
   first drawn tile for the first view, then bytes per zoom step.

The vectors are synthetic (clusters with a low-dimensional spread, 256-d like the kind
vector); the sprites are random pixel art with one palette per cluster.

    python bench/bench_map.py --points 50000 --compare 10000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import Report, add_report_arguments, own_settings

DIM = 256
TARGETS = {"layout_300k_minutes": 30, "first_view_mb": 2.0, "first_paint_s": 2.0, "zoom_kb": 500}


def vectors(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors in 200 clusters, each spread along an 8-d manifold; and the clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, DIM)).astype(np.float32)
    spread = rng.normal(size=(8, DIM)).astype(np.float32)
    which = rng.integers(0, len(centres), n)
    latent = np.tanh(rng.normal(size=(n, 8)).astype(np.float32) * 0.5)
    x = centres[which] + 0.3 * latent @ spread + 0.05 * rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), which


def recall_at_10(x: np.ndarray, xy: np.ndarray, seed: int = 0) -> float:
    from sklearn.neighbors import NearestNeighbors

    sample = np.random.default_rng(seed).choice(len(x), min(1000, len(x)), replace=False)
    high = NearestNeighbors(n_neighbors=11, metric="cosine").fit(x)
    low = NearestNeighbors(n_neighbors=11).fit(xy)
    a = high.kneighbors(x[sample], return_distance=False)[:, 1:]
    b = low.kneighbors(xy[sample], return_distance=False)[:, 1:]
    return float(np.mean([len(set(p) & set(q)) / 10 for p, q in zip(a, b, strict=True)]))


def compare(n: int, report: Report) -> None:
    from openTSNE import TSNE

    x, _ = vectors(n, seed=1)
    rows = []
    try:
        import umap

        started = time.perf_counter()
        xy = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine").fit_transform(x)
        rows.append(("umap-learn 0.5.12", time.perf_counter() - started, recall_at_10(x, xy)))
    except ImportError:
        report.line("umap-learn is not installed: only openTSNE measured.")
    started = time.perf_counter()
    xy = np.asarray(TSNE(metric="cosine", n_jobs=-1, random_state=0).fit(x))
    rows.append(("openTSNE 1.0.4", time.perf_counter() - started, recall_at_10(x, xy)))
    report.line(f"Layout choice, {n:,} synthetic {DIM}-d vectors:")
    report.line()
    report.table(
        ("library", "fit s", "10-NN kept"), [(a, f"{t:.0f}", f"{r:.3f}") for a, t, r in rows]
    )
    report.record(compare={a: {"seconds": t, "recall10": r} for a, t, r in rows})


def sprites(which: np.ndarray, seed: int = 0) -> dict[int, Image.Image]:
    """A 16x16 random sprite per point, its palette its cluster's (thumbnail() applied)."""
    from ogasearch.artmap.pyramid import thumbnail

    rng = np.random.default_rng(seed)
    palettes = rng.integers(0, 256, size=(int(which.max()) + 1, 4, 4), dtype=np.uint8)
    palettes[:, :, 3] = 255
    palettes[:, 0, 3] = 0  # colour 0: transparent
    out = {}
    for i, c in enumerate(which):
        pixels = palettes[c][rng.integers(0, 4, size=(16, 16))]
        out[i] = thumbnail(Image.fromarray(pixels))
    return out


def browse(data: Path, report: Report) -> dict[str, float]:
    """First view and three zoom steps of /map in headless Chromium."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from ogasearch.web.app import create_app
    from ogasearch.web.server import running_server
    from support.browser import chromium

    sizes: list[int] = []
    with running_server(create_app(own_settings(data))) as url, chromium() as browser:
        context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 800})
        page = context.new_page()

        def count(response) -> None:  # type: ignore[no-untyped-def]
            with contextlib.suppress(Exception):
                sizes.append(len(response.body()))

        page.on("response", count)
        started = time.perf_counter()
        page.goto("/map")
        page.wait_for_selector("#map img.leaflet-tile-loaded")
        first_paint = time.perf_counter() - started
        page.wait_for_load_state("networkidle")
        first_view = sum(sizes)
        steps = []
        for _ in range(3):
            sizes.clear()
            page.click(".leaflet-control-zoom-in")
            page.wait_for_timeout(400)
            page.wait_for_load_state("networkidle")
            steps.append(sum(sizes))
        context.close()
    return {"first_view_bytes": first_view, "first_paint_s": first_paint, "zoom_bytes": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--compare", type=int, default=10_000, help="0: skip the comparison")
    add_report_arguments(parser)
    args = parser.parse_args()

    from ogasearch.artmap.info import MapInfo, write_info
    from ogasearch.artmap.labels import region_labels
    from ogasearch.artmap.layout import fit_layout
    from ogasearch.artmap.pyramid import draw_tiles, max_zoom

    report = Report("The map of all the art", args, depends=["src/ogasearch/artmap"])
    report.target(**TARGETS)
    if args.compare:
        compare(args.compare, report)
    x, which = vectors(args.points)
    started = time.perf_counter()
    layout, xy = fit_layout(x[:-1000], seed=0)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    xy = np.concatenate([xy, layout.place(x[-1000:])])
    place_s = time.perf_counter() - started
    recall = recall_at_10(x, xy)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        ids = list(range(len(xy)))
        zoom = max_zoom(len(ids))
        thumbs = sprites(which)
        started = time.perf_counter()
        tiles = draw_tiles(data, ids, xy, xy, zoom, lambda wanted: {i: thumbs[i] for i in wanted})
        tiles_s = time.perf_counter() - started
        disk = sum(p.stat().st_size for p in (data / "map").rglob("*.webp"))
        vocab = {i: {f"word{c}", f"theme{c % 20}"} for i, c in enumerate(which)}
        labels = region_labels(xy, ids, vocab, zoom)
        write_info(data, MapInfo(max_zoom=zoom, points=len(ids), labels=labels))
        seen = browse(data, report)
    per_300k_min = fit_s / len(x) * 300_000 / 60  # linear: FFT t-SNE is O(n) per iteration
    report.line()
    report.line(f"The map's layout, {args.points:,} synthetic {DIM}-d vectors:")
    report.line()
    report.table(
        ("step", "value"),
        [
            (f"fit {len(x) - 1000:,} points", f"{fit_s:.0f} s"),
            ("place 1,000 new points", f"{place_s:.1f} s"),
            ("10-NN kept (fitted + placed)", f"{recall:.3f}"),
            ("300k points, extrapolated linearly", f"{per_300k_min:.0f} min (target <= 30)"),
            (
                f"tile pyramid, zoom 0-{zoom}",
                f"{tiles:,} tiles in {tiles_s:.0f} s, {disk / 1e6:.1f} MB",
            ),
            ("first view transferred", f"{seen['first_view_bytes'] / 1e6:.2f} MB (<= 2)"),
            ("first tile drawn", f"{seen['first_paint_s']:.2f} s (<= 2)"),
            (
                "each zoom step",
                " / ".join(f"{b / 1e3:.0f} KB" for b in seen["zoom_bytes"]) + " (<= 500)",
            ),
        ],
    )
    report.record(
        points=args.points,
        fit_s=fit_s,
        place_1000_s=place_s,
        recall10=recall,
        layout_300k_minutes_extrapolated=per_300k_min,
        tiles=tiles,
        tiles_s=tiles_s,
        tiles_bytes=disk,
        **{k: v for k, v in seen.items()},
    )
    print(json.dumps(report.numbers, default=str))
    report.finish()


if __name__ == "__main__":
    main()
