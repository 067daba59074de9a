"""Ingest speed: ``ogasearch update`` from scratch against the large local site, stage by stage.

    python bench/bench_ingest.py                    # 800 pages, about 4,900 images (the target)
    python bench/bench_ingest.py --pages 100        # a quick check
    python bench/bench_ingest.py --pages 100 --profile   # + where the time goes, per function
    python bench/bench_ingest.py --workers 2        # embed's decode/preprocess worker processes

Builds the large local OGA copy (``build_site(scale_source=...)`` from Debian's
crawl-tiles-data), serves it over 127.0.0.1 from this process, and runs the real CLI,
``ogasearch update --delay 0``, in a child process on an empty data folder (empty catalog,
store and index; the exported ONNX model is copied in unless ``--export-model``, because the
export is a one-time install step, not ingest). The child logs the start of each stage; the
time and the child's CPU time at each start split the run into stages.

Reports pages/s, whole images/s and vectors/s (images + tiles), wall and CPU seconds per
stage, peak memory, and the target (the ~5,000-image site in under 3 minutes). ``--profile``
runs the update a second time under cProfile and lists the functions with the most own time
and the most cumulative time (cProfile slows Python code down, so its seconds are larger than
the plain run's; the shares are what to read).
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import CRAWL_TILES, Report, add_report_arguments, clean_env
from ogasearch.localsite import build_site, serve_site

TARGET_SECONDS = 180.0
TARGET_IMAGES = 5_000
STAGE_LINE = re.compile(r"ogasearch\.pipeline: stage (\w+)")
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    """One ``ogasearch update`` child: stage boundaries, printed stats, resources."""

    wall: float = 0.0
    cpu: float = 0.0
    max_rss_mb: float = 0.0
    marks: list[tuple[str, float, float]] = field(default_factory=list)  # stage, wall, cpu
    stats: dict[str, dict] = field(default_factory=dict)
    stderr_tail: list[str] = field(default_factory=list)

    def stages(self) -> list[tuple[str, float, float]]:
        """(stage, wall seconds, CPU seconds), from the marks and the end of the run."""
        ends = [*self.marks[1:], ("end", self.wall, self.cpu)]
        return [
            (name, end_wall - wall, end_cpu - cpu)
            for (name, wall, cpu), (_, end_wall, end_cpu) in zip(self.marks, ends, strict=True)
        ]


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process so far (``/proc/PID/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    # after the command: state(0) ... utime(11) stime(12) cutime(13) cstime(14)
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLOCK_TICK


def run_update(command: list[str], env: dict[str, str]) -> Run:
    run = Run()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stdout_lines: list[str] = []
    reader = threading.Thread(target=lambda: stdout_lines.extend(process.stdout or []), daemon=True)
    reader.start()
    for line in process.stderr or []:
        match = STAGE_LINE.search(line)
        if match:
            run.marks.append(
                (match.group(1), time.perf_counter() - started, process_cpu(process.pid))
            )
        elif "httpx" not in line:
            run.stderr_tail = [*run.stderr_tail[-40:], line.rstrip()]
    process.wait()
    reader.join()
    run.wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    run.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    run.max_rss_mb = after.ru_maxrss / 1024
    if process.returncode != 0:
        tail = "\n".join(run.stderr_tail)
        raise SystemExit(f"ogasearch update failed ({process.returncode}):\n{tail}")
    for line in stdout_lines:
        name, sep, rest = line.partition(": ")
        if sep and rest.startswith("{"):
            run.stats[name] = json.loads(rest)
    return run


def catalog_counts(data: Path) -> dict[str, int]:
    from ogasearch.catalog import open_catalog
    from ogasearch.catalog.stats import catalog_stats
    from ogasearch.settings import load_settings

    engine = open_catalog(load_settings(data=data).catalog_url)
    try:
        counts = catalog_stats(engine)
    finally:
        engine.dispose()
    return {
        "pages": int(counts["pages"].get("fetched", 0)),
        "files": int(sum(counts["files"].values())),
        "images": int(counts["images"]),
        "tiles": int(counts["tiles"]),
        "indexed": int(counts["indexed"]),
    }


def stage_items(stage: str, stats: dict[str, dict]) -> str:
    """What a stage did, in its own unit, from the stats the CLI printed."""
    s = stats.get(stage, {})
    if stage == "crawl":
        return f"{s.get('fetched', 0)} pages, {s.get('requests', 0)} requests"
    if stage == "download":
        return f"{s.get('stored', 0)} files, {s.get('bytes', 0) / 1e6:.1f} MB"
    if stage == "extract":
        return f"{s.get('files', 0)} files, {s.get('images', 0)} images"
    if stage == "tiles":
        return f"{s.get('images', 0)} images, {s.get('tiles', 0)} tiles"
    if stage == "embed":
        return f"{s.get('embedded', 0)} vectors"
    if stage == "index":
        return f"{s.get('vectors', {}).get('indexed', 0)} vectors"
    return ""


def stage_count(stage: str, stats: dict[str, dict]) -> int:
    s = stats.get(stage, {})
    key = {
        "crawl": "fetched",
        "download": "stored",
        "extract": "files",
        "tiles": "images",
        "embed": "embedded",
    }.get(stage)
    if key is not None:
        return int(s.get(key, 0))
    return int(s.get("vectors", {}).get("indexed", 0)) if stage == "index" else 0


def prepare_data(data: Path, export_model: bool) -> None:
    """An empty data folder; with the exported model copied in unless ``export_model``."""
    from ogasearch.embed.extractors import get_extractor
    from ogasearch.settings import load_settings

    data.mkdir(parents=True, exist_ok=True)
    if export_model:
        return
    settings = load_settings()
    # exports into the default data folder once
    extractor = get_extractor(settings.extractor, settings.models_dir)
    model_path = Path(extractor.model_path)  # type: ignore[attr-defined]
    (data / "models").mkdir(exist_ok=True)
    shutil.copy2(model_path, data / "models" / model_path.name)


def profile_table(
    path: Path, sort: str, limit: int, only_ours: bool = False
) -> list[tuple[str, str, str, str]]:
    """The top functions of a cProfile file; ``only_ours``: functions of ``ogasearch`` only,
    without the CLI and pipeline wrappers every stage runs under."""
    stats = pstats.Stats(str(path))
    stats.sort_stats(sort)
    rows = []
    for func in stats.fcn_list:  # type: ignore[attr-defined]
        calls, _, own, cumulative, _ = stats.stats[func]  # type: ignore[attr-defined]
        filename, line, name = func
        where = Path(filename)
        if only_ours and (
            "ogasearch" not in where.parts
            or where.name in ("cli.py", "__main__.py")
            or (where.name == "pipeline.py" and name == "update")
        ):
            continue
        short = "/".join(where.parts[-2:]) if where.parts else filename
        rows.append((f"`{short}:{line} {name}`", str(calls), f"{own:.1f}", f"{cumulative:.1f}"))
        if len(rows) == limit:
            break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=800, help="Pages of the local site.")
    parser.add_argument("--source", type=Path, default=CRAWL_TILES, help="Images to build it from.")
    parser.add_argument("--data", type=Path, help="Data folder (default: a new temp folder).")
    parser.add_argument("--keep", action="store_true", help="Keep the temp data folder.")
    parser.add_argument(
        "--export-model", action="store_true", help="Count the one-time ONNX export too."
    )
    parser.add_argument(
        "--workers", type=int, help="Passed to `ogasearch update --workers` (default: its own)."
    )
    parser.add_argument("--profile", action="store_true", help="Also run under cProfile.")
    parser.add_argument("--top", type=int, default=25, help="Functions listed per profile table.")
    add_report_arguments(parser)
    args = parser.parse_args()
    if not args.source.is_dir():
        raise SystemExit(f"{args.source}: no such folder (apt-get install crawl-tiles-data)")

    report = Report(
        "Ingest: `ogasearch update` from scratch on the local site", args, depends=["src/ogasearch"]
    )
    report.target(seconds=TARGET_SECONDS, images=TARGET_IMAGES)
    built = time.perf_counter()
    site = build_site(scale_source=args.source, pages=args.pages)
    built = time.perf_counter() - built
    temp = None
    if args.data is None:
        temp = tempfile.mkdtemp(prefix="bench-ingest-")
        args.data = Path(temp)
    elif args.data.exists() and any(args.data.iterdir()):
        raise SystemExit(f"{args.data} is not empty: ingest is measured from scratch")
    env = clean_env()
    try:
        with serve_site(site) as running:
            base = [sys.executable]
            update = ["-m", "ogasearch", "update", "-v", "--delay", "0", "--site"]
            update.append(running.base_url)
            if args.workers is not None:
                update += ["--workers", str(args.workers)]
            prepare_data(args.data / "plain", args.export_model)
            plain = run_update([*base, *update, "--data", str(args.data / "plain")], env)
            counts = catalog_counts(args.data / "plain")
            profiled = None
            if args.profile:
                prepare_data(args.data / "profiled", args.export_model)
                prof = args.data / "update.prof"
                profiled = run_update(
                    [
                        *base,
                        "-m",
                        "cProfile",
                        "-o",
                        str(prof),
                        *update,
                        "--data",
                        str(args.data / "profiled"),
                    ],
                    env,
                )
        vectors = counts["images"] + counts["tiles"]
        report.line(
            f"Local site: {args.pages} pages from `{args.source}` (built in {built:.1f} s),"
            " served from the benchmark process over 127.0.0.1 (its CPU is shared with the"
            " run). Model "
            + ("exported during the run." if args.export_model else "exported beforehand.")
            + (f" `--workers {args.workers}`." if args.workers is not None else "")
        )
        report.line()
        report.line(
            f"Result: {counts['pages']} pages, {counts['files']} files, {counts['images']}"
            f" images, {counts['tiles']} tiles cut from sheets, {counts['indexed']} vectors"
            f" indexed in **{plain.wall:.1f} s** wall, {plain.cpu:.1f} s CPU (peak RSS"
            f" {plain.max_rss_mb:.0f} MB): {counts['pages'] / plain.wall:.1f} pages/s,"
            f" {counts['images'] / plain.wall:.1f} images/s,"
            f" {vectors / plain.wall:.1f} vectors/s."
        )
        report.line()
        rows = []
        for name, wall, cpu in plain.stages():
            n = stage_count(name, plain.stats)
            rows.append(
                (
                    name,
                    f"{wall:.1f}",
                    f"{wall / plain.wall:.0%}",
                    f"{cpu:.1f}",
                    stage_items(name, plain.stats),
                    f"{n / wall:.1f}" if wall > 0 else "",
                )
            )
        startup = plain.marks[0][1] if plain.marks else float("nan")
        rows.insert(0, ("start-up (imports, catalog)", f"{startup:.1f}", "", "", "", ""))
        report.table(["stage", "wall s", "share", "CPU s", "items", "items/s"], rows)
        scaled = plain.wall * TARGET_IMAGES / max(counts["images"], 1)
        verdict = (
            "met"
            if scaled <= TARGET_SECONDS
            else f"missed by {scaled - TARGET_SECONDS:.0f} s ({scaled / TARGET_SECONDS:.1f}x)"
        )
        report.record(
            site_pages=args.pages,
            full_site_pages=parser.get_default("pages"),
            pages=counts["pages"],
            images=counts["images"],
            tiles=counts["tiles"],
            vectors=counts["indexed"],
            wall_s=round(plain.wall, 1),
            cpu_s=round(plain.cpu, 1),
            images_per_s=round(counts["images"] / plain.wall, 1),
            seconds_scaled_to_target=round(scaled),
        )
        report.line(
            f"Target: {TARGET_IMAGES:,} images from scratch in under {TARGET_SECONDS:.0f} s."
            f" This run, scaled linearly to {TARGET_IMAGES:,} images: {scaled:.0f} s, {verdict}."
        )
        if profiled is not None:
            report.line()
            report.line(
                f"Profiled run (cProfile, {profiled.wall:.1f} s wall): all functions by own time,"
                " then ogasearch's functions by cumulative time (seconds under the profiler)."
            )
            report.line()
            headers = ["function", "calls", "own s", "cumulative s"]
            report.table(headers, profile_table(prof, "tottime", args.top))
            report.table(headers, profile_table(prof, "cumulative", args.top, only_ours=True))
    finally:
        if temp is not None and not args.keep:
            shutil.rmtree(temp, ignore_errors=True)
    report.finish()


if __name__ == "__main__":
    main()
