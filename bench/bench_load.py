"""Load test of ``ogasearch serve`` over loopback: concurrent clients, latency, errors, memory.

Bounded on purpose: a fixed number of clients for a fixed time, against 127.0.0.1 only.

    # start a server on a data folder, load it, stop it (default: 20 clients, 30 s, image queries)
    python bench/bench_load.py --data ./ogasearch-data
    # heavier, mixed image / keyword / similar queries
    python bench/bench_load.py --data ./ogasearch-data --clients 50 --duration 60 --mix mixed
    # against a server already running (give its pid to report its memory)
    python bench/bench_load.py --data ./ogasearch-data --url http://127.0.0.1:8000 --server-pid 1234

Query images are images of the index, fetched from the server and upscaled 2x (a typical
"found this sprite somewhere" query); keywords are words of indexed page titles. Reports
requests, errors by status, throughput, p50/p90/p99/max latency and the server's resident
memory before and after and sampled every ``--rss-every`` seconds during the load (with the
median of each third of the run, to tell a plateau from a leak), the latency of the answered
(200) queries apart from the 503s of admission control (refusals answer at once and would
hide the wait of the others), and the ratio of RSS after to before, and appends them to
docs/benchmarks.md with the machine, date and command. The client runs on the same machine
and takes CPU from the server: the numbers are a floor for the server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select

from _common import (
    Report,
    add_report_arguments,
    free_port,
    percentile,
    rss_mb,
    upscaled_pngs,
)
from ogasearch.catalog.schema import images, pages
from ogasearch.settings import load_settings

# what answers the load: the web app and the search behind it
LOAD_CODE = ["src/ogasearch/web", "src/ogasearch/search", "src/ogasearch/index"]
MIXES = {
    "image": {"image": 1.0},
    "mixed": {"image": 0.5, "text": 0.3, "similar": 0.2},
}


@dataclass
class Workload:
    uploads: list[bytes]
    words: list[str]
    image_ids: list[int]


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    answered: dict[str, list[float]] = field(default_factory=dict)  # status 200 only
    statuses: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, seconds: float, status: str) -> None:
        self.latencies.setdefault(kind, []).append(seconds)
        if status == "200":
            self.answered.setdefault(kind, []).append(seconds)
        self.statuses[status] += 1


def server_rss_mb(pid: int | None) -> float | None:
    """The server's resident memory (None when its pid is not known)."""
    return rss_mb(pid) if pid is not None else None


def sample_rss(
    pid: int | None, interval: float, samples: list[tuple[float, float]], stop: threading.Event
) -> None:
    """Append (seconds since start, RSS MB) of ``pid`` every ``interval`` s until ``stop``."""
    started = time.monotonic()
    while True:
        value = server_rss_mb(pid)
        if value is not None:
            samples.append((time.monotonic() - started, value))
        if stop.wait(interval):
            return


def rss_trend(samples: list[tuple[float, float]]) -> dict[str, float]:
    """Whether memory levels off: the median RSS of each third of the run, and the slope of
    the last half (MB per minute). A leak shows as thirds that keep climbing."""
    values = [mb for _, mb in samples]
    n = len(values)
    if n < 3:
        return {"samples": n}

    def median(part: list[float]) -> float:
        ordered = sorted(part)
        return ordered[len(ordered) // 2]

    thirds = [values[: n // 3], values[n // 3 : 2 * n // 3], values[2 * n // 3 :]]
    half = samples[n // 2 :]
    span = half[-1][0] - half[0][0]
    slope = (half[-1][1] - half[0][1]) / span * 60 if span > 0 else 0.0
    return {
        "samples": n,
        "first_third_mb": median(thirds[0]),
        "middle_third_mb": median(thirds[1]),
        "last_third_mb": median(thirds[2]),
        "peak_mb": max(values),
        "last_half_slope_mb_per_min": slope,
    }


def sample_workload(data: Path, base_url: str, count: int, seed: int) -> Workload:
    """Query material drawn from the data folder's catalog (and its images via the server)."""
    settings = load_settings(data=data)
    engine = create_engine(settings.catalog_url)
    with engine.connect() as conn:
        whole = [
            row.id
            for row in conn.execute(
                select(images.c.id).where(images.c.parent_id.is_(None), images.c.indexed)
            )
        ]
        every = [row.id for row in conn.execute(select(images.c.id).where(images.c.indexed))]
        titles = [row.title or "" for row in conn.execute(select(pages.c.title))]
    engine.dispose()
    if not every:
        raise SystemExit(f"{data}: no indexed images; run `ogasearch update` first")
    rng = random.Random(seed)
    chosen = rng.sample(whole or every, min(count, len(whole or every)))
    uploads = upscaled_pngs(base_url, chosen, timeout=60)
    words = sorted({w for t in titles for w in re.findall(r"[A-Za-z]{3,}", t)}) or ["art"]
    return Workload(uploads=uploads, words=words, image_ids=every)


async def client_loop(
    client: httpx.AsyncClient,
    work: Workload,
    mix: dict[str, float],
    k: int,
    deadline: float,
    tally: Tally,
    rng: random.Random,
) -> None:
    kinds, weights = list(mix), list(mix.values())
    while time.monotonic() < deadline:
        kind = rng.choices(kinds, weights)[0]
        started = time.perf_counter()
        try:
            if kind == "image":
                files = {"image": ("query.png", rng.choice(work.uploads), "image/png")}
                response = await client.post("/api/search/image", files=files, data={"k": k})
            elif kind == "text":
                q = " ".join(rng.sample(work.words, min(2, len(work.words))))
                response = await client.get("/api/search/text", params={"q": q, "k": k})
            else:
                image_id = rng.choice(work.image_ids)
                response = await client.get(f"/api/similar/{image_id}", params={"k": k})
            status = str(response.status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        tally.add(kind, time.perf_counter() - started, status)


async def run_load(
    base_url: str, work: Workload, clients: int, duration: float, mix: str, k: int, seed: int
) -> tuple[Tally, float]:
    tally = Tally()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        started = time.monotonic()
        deadline = started + duration
        await asyncio.gather(
            *(
                client_loop(client, work, MIXES[mix], k, deadline, tally, random.Random(seed + i))
                for i in range(clients)
            )
        )
        return tally, time.monotonic() - started


def start_server(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``serve`` on a free loopback port, in its own process (so its memory is its own)."""
    port = free_port()
    code = (
        "import sys; from ogasearch.settings import load_settings; "
        "from ogasearch.web.server import serve; "
        "serve(load_settings(data=sys.argv[1]), '127.0.0.1', int(sys.argv[2]))"
    )
    process = subprocess.Popen([sys.executable, "-c", code, str(data), str(port)])
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with status {process.returncode}")
        try:
            httpx.get(f"{base_url}/api/stats", timeout=5).raise_for_status()
            return process, base_url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("the server did not start within 120 s")


def report(
    out: Report,
    args: argparse.Namespace,
    tally: Tally,
    elapsed: float,
    rss: tuple[float | None, float | None],
    stats: dict,
    samples: list[tuple[float, float]] | None = None,
) -> None:
    """The run's body and numbers, into ``out``."""
    everything = [s for values in tally.latencies.values() for s in values]
    total = len(everything)
    ok = tally.statuses.get("200", 0)
    errors = {s: n for s, n in tally.statuses.items() if s != "200"}

    def ms(values: list[float], q: float) -> str:
        return f"{percentile(values, q) * 1000:.0f}"

    def mb(value: float | None) -> str:
        return f"{value:.0f} MB" if value is not None else "n/a"

    out.line(f"Data: {', '.join(f'{k} {v}' for k, v in stats.items() if isinstance(v, int))}.")
    out.line(
        f"Load: {args.clients} clients for {args.duration:g} s, mix {args.mix}, k={args.k};"
        " client and server on the same machine."
    )
    out.line()
    rows = [
        (kind, len(v), ms(v, 50), ms(v, 90), ms(v, 99), f"{max(v) * 1000:.0f}")
        for kind, v in sorted(tally.latencies.items())
    ]
    rows.append(
        (
            "all",
            total,
            ms(everything, 50),
            ms(everything, 90),
            ms(everything, 99),
            f"{max(everything, default=0) * 1000:.0f}",
        )
    )
    out.table(["query", "requests", "p50 ms", "p90 ms", "p99 ms", "max ms"], rows)
    ratio = f" ({rss[1] / rss[0]:.2f}x)" if rss[0] and rss[1] else ""
    out.line(
        f"Throughput {total / elapsed:.1f} requests/s ({ok} answered 200); other statuses:"
        f" {errors or 'none'}. Server RSS {mb(rss[0])} before, {mb(rss[1])} after{ratio}."
    )
    out.line()
    for kind, values in sorted(tally.answered.items()):
        out.line(
            f"- answered {kind} queries (200 only): {len(values)}, p50 {ms(values, 50)} ms,"
            f" p99 {ms(values, 99)} ms, max {max(values) * 1000:.0f} ms"
        )
    out.line()
    trend = rss_trend(samples) if samples else {}
    if samples:
        step = max(1, len(samples) // 12)
        shown = ", ".join(f"{t:.0f}s {v:.0f}" for t, v in samples[::step])
        out.line(f"Server RSS sampled every {args.rss_every:g} s during the load (MB): {shown}.")
        out.line(
            f"Median by third of the run: {trend.get('first_third_mb', 0):.0f} /"
            f" {trend.get('middle_third_mb', 0):.0f} / {trend.get('last_third_mb', 0):.0f} MB,"
            f" peak {trend.get('peak_mb', 0):.0f} MB, last-half slope"
            f" {trend.get('last_half_slope_mb_per_min', 0):+.1f} MB/min."
        )
    out.record(
        clients=args.clients,
        duration_s=args.duration,
        mix=args.mix,
        requests=total,
        # Admission control's 503s (with Retry-After) are answers, not errors.
        errors=sum(n for status, n in errors.items() if status != "503"),
        refused_503=errors.get("503", 0),
        answered_image_p99_ms=(
            round(percentile(tally.answered["image"], 99) * 1000)
            if tally.answered.get("image")
            else None
        ),
        p50_ms=round(percentile(everything, 50) * 1000),
        p99_ms=round(percentile(everything, 99) * 1000),
        rss_mb={"before": rss[0], "after": rss[1], **trend},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="The data folder served.")
    parser.add_argument("--url", help="A running server (default: start one on --data).")
    parser.add_argument("--server-pid", type=int, help="The running server's pid (for RSS).")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=30.0, help="Seconds of load.")
    parser.add_argument("--mix", choices=sorted(MIXES), default="image")
    parser.add_argument("-k", type=int, default=20, help="Results per query.")
    parser.add_argument("--queries", type=int, default=50, help="Distinct query images.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rss-every", type=float, default=3.0, help="Seconds between server RSS samples."
    )
    add_report_arguments(parser)
    args = parser.parse_args()
    if args.clients < 1 or args.clients > 200 or args.duration <= 0 or args.duration > 600:
        parser.error("keep it bounded: 1-200 clients, at most 600 s")

    # before the load: the load average at the start says how busy the machine was
    out = Report("Load test", args, depends=LOAD_CODE)
    out.target(errors=0)
    process = None
    samples: list[tuple[float, float]] = []
    base_url, pid = args.url, args.server_pid
    if base_url is None:
        process, base_url = start_server(args.data)
        pid = process.pid
    if httpx.URL(base_url).host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the load test only runs against a loopback server")
    try:
        work = sample_workload(args.data, base_url, args.queries, args.seed)
        stats = httpx.get(f"{base_url}/api/stats", timeout=30).json()
        # One of each first: models load and caches fill before the clock starts.
        asyncio.run(run_load(base_url, work, 1, 2.0, "mixed", args.k, args.seed))
        before = server_rss_mb(pid)
        stop = threading.Event()
        sampler = threading.Thread(
            target=sample_rss, args=(pid, args.rss_every, samples, stop), daemon=True
        )
        sampler.start()
        try:
            tally, elapsed = asyncio.run(
                run_load(base_url, work, args.clients, args.duration, args.mix, args.k, args.seed)
            )
        finally:
            stop.set()
            sampler.join(10)
        after = server_rss_mb(pid)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    report(out, args, tally, elapsed, (before, after), stats, samples)
    out.finish()


if __name__ == "__main__":
    main()
