"""What every benchmark script shares: the machine it ran on, percentiles, and the report.

A benchmark prints a Markdown section and appends it to ``docs/benchmarks.md`` with the
machine (CPU, cores, memory, Python), how busy the machine was (load average at the start and
the end: the numbers of a loaded machine are a floor), the date and the exact command, so any
number in that file can be traced back and re-run. The same run is also written as data to
``docs/results/<script>.json`` (the latest run of each script: date, machine, load, the git
commit of the code measured, the command, its numbers and targets, and the source paths the
numbers depend on), which ``bench/readme_figures.py`` turns into the README's table.

    from _common import Report, add_report_arguments
    report = Report("Embedding throughput", args, depends=["src/ogasearch/embed"])
    report.line("...") / report.table(headers, rows)
    report.record(images_per_s=88.3) / report.target(ratio=40.0)   # the JSON's numbers
    report.finish()                  # prints; appends and writes the JSON unless --no-append

Also here: running the real CLI as a benchmark needs it (``clean_env``, ``ingest_local_site``,
``Server``: ``ogasearch serve`` in a child process on a free loopback port).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ogasearch.localsite import Manifest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "docs" / "benchmarks.md"
RESULTS = "results"  # folder beside the Markdown record for the JSON results
# The image data sets the benchmarks read (tests/support/datasets.py describes the same ones).
CRAWL_TILES = Path("/usr/share/crawl/dat/tiles")  # Debian's crawl-tiles-data (CC0)
TEEWORLDS = Path("/usr/share/games/teeworlds/data")  # Debian's teeworlds-data (CC-BY-SA 3.0)
CHROMIUM_BSU = Path("/usr/share/games/chromium-bsu/png")  # chromium-bsu-data (Clarified Artistic)
# Debian's minetest-data: Minetest Game's textures (CC-BY-SA 3.0; exceptions in its copyright file)
MINETEST = Path("/usr/share/games/minetest/games/minetest_game/mods")


def kenney_images() -> Path:
    """The Kenney CC0 images the arcade package ships (the ``test`` extra)."""
    import arcade

    return Path(arcade.__file__).parent / "resources" / "assets" / "images"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, e.g. ``7.9 / 6.5 / 5.7``."""
    with contextlib.suppress(OSError):
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "n/a"


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    with contextlib.suppress(OSError, IndexError):
        kb = int(re.findall(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[0])
        return kb / 1024 / 1024
    return None


def machine() -> str:
    """CPU, core count, memory and Python version of this machine."""
    memory = memory_gib()
    ram = f", {memory:.0f} GiB RAM" if memory is not None else ""
    return f"{cpu_name()}, {os.cpu_count()} CPUs{ram}, Python {platform.python_version()}"


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process, in MB (None when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``; NaN when there are none."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def command_line() -> str:
    """The command as typed, relative to the repository: ``python bench/x.py --flag``."""
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(ROOT)
    return " ".join(shlex.quote(a) for a in ["python", str(script), *sys.argv[1:]])


def git(*args: str) -> str | None:
    """``git`` in this repository: its output, stripped, or None when git cannot answer."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return proc.stdout.strip("\n")  # newlines only: porcelain lines start with a space


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=BENCHMARKS, help="Markdown file the report is appended to."
    )
    parser.add_argument("--no-append", action="store_true", help="Only print the report.")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Lines of a Markdown table; columns after the first are right-aligned (numbers)."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


class Report:
    """One run of a benchmark: a section of ``docs/benchmarks.md`` (a heading, the run's
    context, then the body) and its data in ``docs/results/<script>.json``.

    ``depends`` names the source paths (files or folders, relative to the repository) whose
    code the numbers measure; the script itself and this module are always added. A result
    whose commit is older than a change to one of them is stale.
    """

    def __init__(self, title: str, args: argparse.Namespace, depends: Sequence[str] = ()) -> None:
        self.title = title
        self.args = args
        self.name = Path(sys.argv[0]).stem
        self.depends = [*depends, f"bench/{self.name}.py", "bench/_common.py"]
        self.started = datetime.now(UTC)
        self.load_at_start = load_average()  # before the run adds its own load
        self.commit = git("rev-parse", "HEAD")
        # paths measured with changes not in that commit (the numbers are not the commit's)
        changed = git("status", "--porcelain", "--", *self.depends)
        self.uncommitted = [line[3:] for line in (changed or "").splitlines()]
        self.body: list[str] = []
        self.numbers: dict[str, object] = {}
        self.targets: dict[str, object] = {}

    def line(self, text: str = "") -> None:
        self.body.append(text)

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
        self.body += [*markdown_table(headers, rows), ""]

    def record(self, **numbers: object) -> None:
        """Numbers of this run for the JSON result (JSON types: numbers, strings, dicts)."""
        self.numbers.update(numbers)

    def target(self, **targets: object) -> None:
        """The targets the numbers are held to, as the script defines them."""
        self.targets.update(targets)

    def text(self) -> str:
        head = [
            f"## {self.title}, {self.started:%Y-%m-%d %H:%M} UTC",
            "",
            f"- Machine: {machine()}",
            f"- Load average (1/5/15 min): {self.load_at_start} at the start, {load_average()}"
            " at the end; other work on the machine slows every number here",
            f"- Command: `{command_line()}`",
            f"- Code measured: commit {(self.commit or 'unknown')[:10]}"
            + (
                f" with uncommitted changes to {', '.join(self.uncommitted)}"
                if self.uncommitted
                else ""
            ),
            "",
        ]
        return "\n".join(head + self.body).rstrip() + "\n"

    def data(self) -> dict[str, object]:
        """The run as the JSON result holds it."""
        return {
            "bench": self.name,
            "title": self.title,
            "date": self.started.isoformat(timespec="seconds"),
            "machine": machine(),
            "load_average": {"start": self.load_at_start, "end": load_average()},
            "commit": self.commit,
            "uncommitted": self.uncommitted,
            "depends": self.depends,
            "command": command_line(),
            "numbers": self.numbers,
            "targets": self.targets,
        }

    def finish(self) -> str:
        """Print the section; append it to ``--out`` and write the JSON result beside it, in
        ``results/<script>.json`` (unless ``--no-append``)."""
        text = self.text()
        print(text)
        if not getattr(self.args, "no_append", False):
            out: Path = self.args.out
            out.parent.mkdir(parents=True, exist_ok=True)
            new = not out.exists() or out.stat().st_size == 0
            with out.open("a", encoding="utf-8") as f:
                f.write(("# Benchmarks\n\n" if new else "\n") + text)
            result = out.parent / RESULTS / f"{self.name}.json"
            result.parent.mkdir(parents=True, exist_ok=True)
            result.write_text(json.dumps(self.data(), indent=2) + "\n", encoding="utf-8")
            print(f"appended to {out}, data in {result}")
        return text


def own_settings(data: Path):  # type: ignore[no-untyped-def]
    """Settings of a benchmark's own data folder: its SQLite catalog and embedded index, even
    when the caller's environment names a catalog or an index elsewhere."""
    from ogasearch.settings import load_settings

    settings = load_settings(data=data)
    settings.catalog = None
    settings.vectors = None
    return settings


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the caller's ``OGASEARCH_*`` settings (a catalog or an index
    elsewhere must not leak into a benchmark), progress bars off, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OGASEARCH_")}
    return env | {"OGASEARCH_PROGRESS": "0", "OGASEARCH_DELAY": "0", **extra}


def ingest_local_site(
    data: Path, pages: int | None, source: Path = CRAWL_TILES, stages: Sequence[str] = ()
) -> Manifest:
    """``ogasearch update`` of a fresh local OGA copy into ``data``: the sample site when
    ``pages`` is None, else a scale site of that many pages cut from ``source``; only
    ``stages`` when given. Returns the site's manifest (what a complete crawl holds)."""
    from ogasearch.localsite import build_site, serve_site

    site = build_site() if pages is None else build_site(scale_source=source, pages=pages)
    with serve_site(site) as running:
        command = [sys.executable, "-m", "ogasearch", "update", "--data", str(data)]
        command += ["--site", running.base_url, "--delay", "0"]
        command += [arg for stage in stages for arg in ("--stage", stage)]
        manifest = running.manifest()
        proc = subprocess.run(command, env=clean_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"ogasearch update failed:\n{proc.stderr[-4000:]}")
    return manifest


def upscaled_pngs(base_url: str, image_ids: Iterable[int], timeout: float = 120) -> list[bytes]:
    """Indexed images fetched from a server and upscaled 2x (nearest), as PNG bytes: a
    typical "found this sprite somewhere" query."""
    import httpx
    from PIL import Image

    uploads = []
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        for image_id in image_ids:
            response = client.get(f"/images/{image_id}.png")
            response.raise_for_status()
            with Image.open(io.BytesIO(response.content)) as im:
                big = im.resize((im.width * 2, im.height * 2), Image.Resampling.NEAREST)
                out = io.BytesIO()
                big.save(out, "PNG")
                uploads.append(out.getvalue())
    return uploads


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``ogasearch serve`` on a free loopback port in a child process (its memory its own)."""

    def __init__(self, data: Path, timeout: float = 600.0, *extra: str) -> None:
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "ogasearch", "serve", "--data", str(data)]
        command += ["--port", str(self.port), *extra]
        self.process = subprocess.Popen(
            command, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                err = (self.process.stderr.read() if self.process.stderr else b"").decode()
                raise SystemExit(f"ogasearch serve exited ({self.process.returncode}):\n{err}")
            try:
                # /api/stats counts the vectors: the index is loaded once this answers.
                self.stats = httpx.get(f"{self.url}/api/stats", timeout=timeout).json()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(
                        f"ogasearch serve did not answer within {timeout:g} s"
                    ) from None
                time.sleep(0.3)

    @property
    def rss_mb(self) -> float | None:
        return rss_mb(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
