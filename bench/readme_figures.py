"""The README's "at a glance" benchmark table, generated from the latest recorded runs.

    python bench/readme_figures.py            # rewrite the table in README.md
    python bench/readme_figures.py --check    # exit 1 when README.md is not what the runs give

Each benchmark script writes its latest run to ``docs/results/<script>.json`` (``_common.Report``:
date, machine, load, the commit of the code measured, the command, numbers and targets, and
the source paths the numbers depend on). Each row here is built from one such result: the
figure, the run's date and load, whether the run was reduced (smaller than the script's
defaults), and the verdict against the script's own targets, computed from the numbers.

A figure older than the code it describes says so: when ``git log <commit>..HEAD`` lists a
change to one of the result's source paths, the row reads "stale: measured before <change>"
(the first such commit). A result of code with uncommitted changes, or of a commit this
history does not hold, is marked too. The table sits in README.md between
``<!-- figures:start -->`` and ``<!-- figures:end -->``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import git

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "docs" / "results"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"
HEADERS = ("what", "ogasearch", "2021 prototype approach", "target", "run")

Result = dict[str, Any]
Row = tuple[str, str, str, str]  # what, ogasearch, prototype, target (the run is added)


def met(ok: bool) -> str:
    return "met" if ok else "not met"


def staleness(result: Result, root: Path = ROOT) -> str | None:
    """Why a result no longer describes the code at HEAD of ``root``, or None while it does."""
    here = ("-C", str(root.resolve()))  # after _common's own -C: this repository
    commit = result.get("commit")
    if not commit or git(*here, "cat-file", "-e", f"{commit}^{{commit}}") is None:
        return f"stale: measured at commit {str(commit)[:10]}, not in this history"
    if result.get("uncommitted"):
        return "stale: measured with uncommitted changes to " + ", ".join(result["uncommitted"])
    changes = git(
        *here, "log", "--reverse", "--format=%h %s", f"{commit}..HEAD", "--", *result["depends"]
    )
    if changes:
        first = changes.splitlines()[0]
        subject = first if len(first) <= 60 else first[:57].rstrip() + "..."
        return "stale: measured before " + subject.replace("|", "/")
    return None


def reduced(numbers: dict[str, Any], parts: Sequence[tuple[str, str, str]]) -> str | None:
    """What a run used smaller than its script's defaults ("reduced: ..."), or None; ``parts``
    are (label, number key, default key) in ``numbers``."""
    if all(numbers.get(n) is None or numbers[n] >= numbers.get(d, 0) for _, n, d in parts):
        return None
    ran = ", ".join(f"{numbers[n]:,} {label}" for label, n, _ in parts)
    full = ", ".join(f"{numbers[d]:,}" for _, _, d in parts)
    return f"reduced: {ran} (full run: {full})"


def quality_reduced(result: Result) -> str | None:
    parts = [
        ("images", "size", "full_size"),
        ("queries each", "queries_per_transform", "full_queries_per_transform"),
    ]
    return reduced(result["numbers"], parts)


def ingest_reduced(result: Result) -> str | None:
    return reduced(result["numbers"], [("pages", "site_pages", "full_site_pages")])


def query_reduced(result: Result) -> str | None:
    largest = max(int(n) for n in result["numbers"]["by_vectors"])
    at = result["targets"]["at_vectors"]
    return None if largest >= at else f"reduced: up to {largest:,} vectors (full run: {at:,})"


# --------------------------------------------------------------------------------------------
# One function per benchmark: its rows, from its result


def quality_rows(result: Result) -> list[Row]:
    numbers, targets = result["numbers"], result["targets"]
    ours, proto = numbers["pipelines"]["ogasearch"], numbers["pipelines"].get("prototype")
    each = sorted(ours["recall1_by_transform"].items(), key=lambda kv: (-kv[1], kv[0]))
    low = [f"{t} {v:.2f}" for t, v in each if v < targets["recall1_each"]]
    misses = [
        f"overall {ours['recall1']:.3f}" if ours["recall1"] < targets["recall1"] else "",
        f"recall@10 {ours['recall10']:.3f}" if ours["recall10"] < targets["recall10"] else "",
        f"below {targets['recall1_each']:g}: {', '.join(low)}" if low else "",
    ]
    missed = "; ".join(m for m in misses if m)
    verdict = met(not missed) + (f" ({missed})" if missed else "")
    what = (
        f"reverse lookup recall@1, {len(each)} transforms x {numbers['queries_per_transform']:,}"
        f" queries, {numbers['size']:,} images ({numbers['corpus_images']:,} with the tiles"
        " cut from sheets) (`bench/eval_quality.py`)"
    )
    figure = f"{ours['recall1']:.3f} overall (recall@10 {ours['recall10']:.3f}); " + ", ".join(
        f"{t.replace('_', ' ')} {v:.2f}" for t, v in each
    )
    baseline = f"{proto['recall1']:.3f} (recall@10 {proto['recall10']:.3f})" if proto else ""
    target = (
        f">= {targets['recall1']:g} overall, >= {targets['recall1_each']:g} each, recall@10 >="
        f" {targets['recall10']:g}: {verdict}"
    )
    rows = [(what, figure, baseline, target)]
    similar = (
        '"more like this": same-category precision@10 (`bench/eval_quality.py`)',
        f"{ours['precision10']:.3f}",
        f"{proto['precision10']:.3f}" if proto else "",
        "no target",
    )
    return [*rows, similar]


def embed_rows(result: Result) -> list[Row]:
    runs, target = result["numbers"]["default_onnxruntime_by_threads"], result["targets"]
    rows = []
    for threads, run in sorted(runs.items(), key=lambda kv: int(kv[0])):
        ratio = run["ratio_vs_vgg16"]
        rows.append(
            (
                f"embedding throughput (`bench/bench_embed.py`, onnxruntime, {threads}"
                f" thread{'s' if int(threads) > 1 else ''})",
                f"{run['images_per_s']:.0f} img/s ({run['model']})",
                f"VGG16@224: {run['vgg16_images_per_s']:.1f} img/s",
                f">= {target['ratio_vs_vgg16']:g}x: {ratio:.1f}x, "
                + met(ratio >= target["ratio_vs_vgg16"]),
            )
        )
    return rows


def query_rows(result: Result) -> list[Row]:
    numbers, target = result["numbers"], result["targets"]
    sizes = sorted(numbers["by_vectors"].items(), key=lambda kv: int(kv[0]))

    def kinds(m: dict[str, float]) -> str:
        """p50/p99 of each query kind (a whole copy, a crop), or of all image queries."""
        named = [k for k in ("copy", "crop") if f"{k}_p50_ms" in m]
        if not named:
            return f"p50 {m['image_p50_ms']:.0f} ms, p99 {m['image_p99_ms']:.0f} ms"
        return ", ".join(
            f"{k} p50 {m[f'{k}_p50_ms']:.0f} / p99 {m[f'{k}_p99_ms']:.0f} ms" for k in named
        )

    figure = "; ".join(f"{kinds(m)} at {int(n):,} vectors" for n, m in sizes)

    def verdict(m: dict[str, float]) -> str:
        return met(m["image_p50_ms"] <= target["p50_ms"] and m["image_p99_ms"] <= target["p99_ms"])

    at = target["at_vectors"]
    largest_n, largest = sizes[-1]
    if int(largest_n) >= at:
        outcome = verdict(largest)
    else:
        outcome = f"not measured at {at:,}; at {int(largest_n):,}: {verdict(largest)}"
    return [
        (
            "image query over HTTP, CNN included (`bench/bench_query.py`)",
            figure,
            "",
            f"p50 <= {target['p50_ms']:g}, p99 <= {target['p99_ms']:g} ms at {at:,}: {outcome}",
        )
    ]


def footprint_rows(result: Result) -> list[Row]:
    numbers, target = result["numbers"], result["targets"]
    stored = numbers["catalog_vector_bytes"]
    return [
        (
            "vector bytes per image (`bench/bench_footprint.py`)",
            f"{stored:,} B in the catalog ({numbers['dim']}-d float16),"
            f" {numbers['index_vector_bytes']:,} B in the index",
            f"{numbers['prototype_vector_bytes']:,} B",
            f"<= {target['vector_bytes']:,} B: " + met(stored <= target["vector_bytes"]),
        )
    ]


def ingest_rows(result: Result) -> list[Row]:
    numbers, target = result["numbers"], result["targets"]
    scaled = numbers["seconds_scaled_to_target"]
    return [
        (
            f"ingest of a {numbers['images']:,}-image local site (`bench/bench_ingest.py`)",
            f"{numbers['wall_s']:.0f} s ({numbers['images_per_s']:.0f} img/s)",
            "",
            f"< {target['seconds']:g} s for {target['images']:,}: {scaled} s scaled, "
            + met(scaled < target["seconds"]),
        )
    ]


def load_rows(result: Result) -> list[Row]:
    numbers = result["numbers"]
    return [
        (
            f"web load, {numbers['clients']} clients x {numbers['duration_s']:g} s"
            f" {numbers['mix']} (`bench/bench_load.py`)",
            f"{numbers['errors']} errors in {numbers['requests']:,} requests,"
            f" p50 {numbers['p50_ms']} ms",
            "",
            f"{result['targets']['errors']} errors: "
            + met(numbers["errors"] <= result["targets"]["errors"]),
        )
    ]


Reduction = Callable[[Result], str | None]
# (result file, its rows, what a reduced run says)
FIGURES: list[tuple[str, Callable[[Result], list[Row]], Reduction | None]] = [
    ("eval_quality", quality_rows, quality_reduced),
    ("bench_embed", embed_rows, None),
    ("bench_query", query_rows, query_reduced),
    ("bench_footprint", footprint_rows, None),
    ("bench_ingest", ingest_rows, ingest_reduced),
    ("bench_load", load_rows, None),
]


def run_cell(result: Result, reduction: str | None, root: Path) -> str:
    """The run's date and 1-minute load at its start, then what qualifies it."""
    load = str(result["load_average"]["start"]).split(" / ")[0]
    notes = [f"{result['date'][:10]}, load {load}"]
    notes += [n for n in (reduction, staleness(result, root)) if n]
    return "; ".join(notes)


def table(results: Path = RESULTS, root: Path = ROOT) -> str:
    """The Markdown table the recorded results give."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for name, rows, reduction in FIGURES:
        path = results / f"{name}.json"
        if not path.exists():
            script = f"`bench/{name}.py`"
            lines.append(f"| {script} | no recorded run in docs/results | | | |")
            continue
        result = json.loads(path.read_text(encoding="utf-8"))
        cell = run_cell(result, reduction(result) if reduction else None, root)
        for row in rows(result):
            lines.append("| " + " | ".join([*row, cell]) + " |")
    return "\n".join(lines) + "\n"


def render(readme: str, block: str) -> str:
    """``readme`` with the text between the markers replaced by ``block``."""
    if (
        readme.count(START) != 1
        or readme.count(END) != 1
        or readme.index(START) > readme.index(END)
    ):
        raise SystemExit(f"README: expected one {START} ... {END} block")
    head, rest = readme.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{block}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="Only compare; exit 1 on a difference."
    )
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    current = args.readme.read_text(encoding="utf-8")
    wanted = render(current, table(args.results))
    if args.check:
        if wanted != current:
            print(
                f"{args.readme.name}: the benchmark figures differ from {args.results}"
                " (run python bench/readme_figures.py)",
                file=sys.stderr,
            )
            return 1
        return 0
    if wanted != current:
        args.readme.write_text(wanted, encoding="utf-8")
        print(f"{args.readme}: figures rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
