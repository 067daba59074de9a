"""Cost of hostile query images: wall time and server memory of each, over loopback.

Bounded on purpose: a fixed set of images, each posted a few times, to 127.0.0.1 only.

    # generate the set, start ``ogasearch serve`` on a data folder, post each image
    python bench/bench_adversarial.py --data ./ogasearch-data
    # the small versions (what the tests use), printed only
    python bench/bench_adversarial.py --data ./ogasearch-data --size small --no-append

The set (``adversarial_set``): a 4000 x 4000 PNG tiling a random 16 x 16 block of 8 palette
colours (the pattern that cost 28 s and 1.1 GB before queries had a budget), random noise
(palette and RGB), patterns of period 2 and 3, a huge flat canvas with one sprite, 1 x 4000
and 4000 x 1 strips, and an animation with as many frames as the query limit allows. Each is
posted ``--repeat`` times to ``POST /api/search/image``; the report gives the worst wall time,
the status codes and the server's resident memory before the first and after the worst query
(sampled every 50 ms during each request, so the peak is seen too). Appended to
docs/benchmarks.md with the machine, date and command.
"""

from __future__ import annotations

import argparse
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from _common import load_average, machine, rss_mb
from bench_load import start_server

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"full": 4000, "small": 400}
FRAMES = {"full": 2000, "small": 50}  # ``max_image_frames``, the query limit


def _png(img: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG", **options)
    return out.getvalue()


def tiled_palette(side: int, seed: int = 0) -> bytes:
    """A random 16 x 16 block of 8 palette colours tiled over ``side`` x ``side``."""
    rng = np.random.default_rng(seed)
    block = rng.integers(0, 8, (16, 16), dtype=np.uint8)
    img = Image.fromarray(np.tile(block, (side // 16 + 1, side // 16 + 1))[:side, :side])
    img.putpalette(rng.integers(0, 256, 8 * 3, dtype=np.uint8).tolist())
    return _png(img, optimize=True)


def palette_noise(side: int, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 8, (side, side), dtype=np.uint8))
    img.putpalette(rng.integers(0, 256, 8 * 3, dtype=np.uint8).tolist())
    return _png(img)


def rgb_noise(side: int, seed: int = 2) -> bytes:
    """RGB noise, as large as fits the default 20 MiB upload limit (2400 x 2400)."""
    side = min(side, 2400)
    rng = np.random.default_rng(seed)
    return _png(Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)))


def period(side: int, step: int) -> bytes:
    """Stripes and checks of period ``step``: an edge on every ``step``-th pixel both ways."""
    y, x = np.mgrid[:side, :side]
    cells = ((x % step == 0) ^ (y % step == 0)).astype(np.uint8) * 255
    return _png(Image.fromarray(cells), optimize=True)


def flat_with_sprite(side: int) -> bytes:
    """A flat canvas with one 16 x 16 sprite pasted at 3x in its middle."""
    rng = np.random.default_rng(3)
    canvas = np.full((side, side, 3), (40, 90, 160), dtype=np.uint8)
    sprite = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8).repeat(3, 0).repeat(3, 1)
    mid = side // 2
    canvas[mid : mid + 48, mid : mid + 48] = sprite
    return _png(Image.fromarray(canvas), optimize=True)


def strip(length: int, vertical: bool) -> bytes:
    rng = np.random.default_rng(4)
    line = rng.integers(0, 256, (length, 3), dtype=np.uint8)
    pixels = line[:, None, :] if vertical else line[None, :, :]
    return _png(Image.fromarray(np.ascontiguousarray(pixels)))


def animation(frames: int, side: int = 64) -> bytes:
    """An animated GIF with ``frames`` frames (each a little different)."""
    rng = np.random.default_rng(5)
    base = rng.integers(0, 16, (side, side), dtype=np.uint8)
    images = []
    for i in range(frames):
        frame = base.copy()
        frame[i % side, :] = (i % 15) + 1
        img = Image.fromarray(frame)
        img.putpalette(rng.integers(0, 256, 16 * 3, dtype=np.uint8).tolist())
        images.append(img)
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=40, loop=0)
    return out.getvalue()


def adversarial_set(size: str = "full") -> dict[str, bytes]:
    """The hostile query images by name, at ``size`` ("full" or "small")."""
    side = SIZES[size]
    makers: dict[str, Callable[[], bytes]] = {
        "tiled-palette-16px": lambda: tiled_palette(side),
        "palette-noise": lambda: palette_noise(side),
        "rgb-noise": lambda: rgb_noise(side),
        "period-2": lambda: period(side, 2),
        "period-3": lambda: period(side, 3),
        "flat-canvas-one-sprite": lambda: flat_with_sprite(side),
        "strip-1xN": lambda: strip(side, vertical=False),
        "strip-Nx1": lambda: strip(side, vertical=True),
        "animation-max-frames": lambda: animation(FRAMES[size]),
    }
    return {name: make() for name, make in makers.items()}


@dataclass
class Outcome:
    name: str
    kib: float
    pixels: str
    statuses: list[int]
    worst_s: float
    rss_before_mb: float
    rss_peak_mb: float


def _peak_rss(pid: int, stop: threading.Event, peak: list[float]) -> None:
    while not stop.is_set():
        value = rss_mb(pid)
        if value is not None:
            peak[0] = max(peak[0], value)
        stop.wait(0.05)


def measure(base_url: str, pid: int, name: str, data: bytes, repeat: int) -> Outcome:
    statuses, times = [], []
    before = rss_mb(pid) or 0.0
    peak = [before]
    stop = threading.Event()
    sampler = threading.Thread(target=_peak_rss, args=(pid, stop, peak), daemon=True)
    sampler.start()
    try:
        with httpx.Client(base_url=base_url, timeout=120) as client:
            for _ in range(repeat):
                started = time.perf_counter()
                files = {"image": (f"{name}.png", data, "application/octet-stream")}
                response = client.post("/api/search/image", files=files)
                times.append(time.perf_counter() - started)
                statuses.append(response.status_code)
    finally:
        stop.set()
        sampler.join(5)
    with Image.open(io.BytesIO(data)) as im:
        frames = getattr(im, "n_frames", 1)
        shape = f"{im.width}x{im.height}" + (f" x{frames} frames" if frames > 1 else "")
    return Outcome(name, len(data) / 1024, shape, statuses, max(times), before, peak[0])


def report(args: argparse.Namespace, outcomes: list[Outcome], host: str, stats: dict) -> str:
    lines = [
        f"## Adversarial queries ({args.size}), {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}"
        " UTC",
        "",
        f"- Machine: {host}",
        f"- Command: `python bench/bench_adversarial.py --size {args.size}"
        f" --repeat {args.repeat}` (server: `ogasearch serve` on the data folder,"
        " default settings)",
        f"- Data: {', '.join(f'{k} {v}' for k, v in stats.items() if isinstance(v, int))}",
        "- Each image posted to `POST /api/search/image`; RSS of the server process, sampled every"
        " 50 ms; extra = peak during the requests minus RSS before them",
        "",
        "| image | KiB | pixels | statuses | worst s | RSS before MB | extra MB |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.name} | {o.kib:.0f} | {o.pixels} | {' '.join(map(str, o.statuses))}"
            f" | {o.worst_s:.2f} | {o.rss_before_mb:.0f}"
            f" | {o.rss_peak_mb - o.rss_before_mb:.0f} |"
        )
    worst = max(o.worst_s for o in outcomes)
    extra = max(o.rss_peak_mb - o.rss_before_mb for o in outcomes)
    lines += ["", f"Worst wall time {worst:.2f} s; largest extra memory {extra:.0f} MB.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="The data folder served.")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--repeat", type=int, default=2, help="Posts of each image.")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "benchmarks.md", help="Report appended here."
    )
    parser.add_argument("--no-append", action="store_true", help="Only print the report.")
    args = parser.parse_args()
    if not 1 <= args.repeat <= 10:
        parser.error("keep it bounded: 1-10 repeats")
    host = f"{machine()}, load average {load_average()} at start"
    images = adversarial_set(args.size)
    process, base_url = start_server(args.data)
    try:
        stats = httpx.get(f"{base_url}/api/stats", timeout=30).json()
        # a small query first: the model loads before the clock starts
        measure(base_url, process.pid, "warm-up", strip(64, vertical=False), 1)
        outcomes = [measure(base_url, process.pid, n, d, args.repeat) for n, d in images.items()]
    finally:
        process.terminate()
        process.wait(timeout=30)
    text = report(args, outcomes, host, stats)
    print(text)
    if not args.no_append:
        with args.out.open("a", encoding="utf-8") as f:
            f.write("\n" + text)
        print(f"appended to {args.out}")


if __name__ == "__main__":
    main()
