"""Sheet detection on the labelled set (``sheet_set.py``): is each picture cut, and are the
cells of the real sheets exactly the true ones?

For the tuning and the validation packs apart: precision and recall of "this picture is a
sheet" (a picture counts as detected when ``find_tiles`` returns any box), the share of true
cells whose box ``find_tiles`` returns exactly (sheets whose cells are known), and the tiles
cut from pictures that are no sheets. Strips are scored both ways: as sheets (the set's
label) and as pictures that are no sheets (the issue's first reading).

    python bench/eval_sheets.py              # prints and appends to docs/benchmarks.md
    python bench/eval_sheets.py --no-append --misses   # and name every wrong picture
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Report, add_report_arguments
from ogasearch.tiles.grid import TileBox, find_tiles
from sheet_set import OTHER_KINDS, SHEET_KINDS, TUNING, VALIDATION, Sample, build_set


@dataclass
class Outcome:
    sample: Sample
    boxes: list[TileBox]
    seconds: float

    @property
    def cut(self) -> bool:
        return bool(self.boxes)

    @property
    def exact(self) -> int:
        """True cells whose box was found exactly."""
        return len(set(self.sample.cells or ()) & set(self.boxes))


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    cells: int = 0
    exact: int = 0
    stray_tiles: int = 0  # tiles cut from pictures that are no sheets
    misses: list[str] = field(default_factory=list)

    def add(self, o: Outcome, sheet: bool) -> None:
        name = f"{o.sample.pack}/{o.sample.name} ({o.sample.kind}, {len(o.boxes)} tiles)"
        if sheet and o.cut:
            self.tp += 1
        elif sheet:
            self.fn += 1
            self.misses.append("missed " + name)
        elif o.cut:
            self.fp += 1
            self.stray_tiles += len(o.boxes)
            self.misses.append("cut " + name)
        else:
            self.tn += 1
        if sheet and o.sample.cells:
            self.cells += len(o.sample.cells)
            self.exact += o.exact
            if o.exact < 0.95 * len(o.sample.cells):
                self.misses.append(f"cells {name}: {o.exact}/{len(o.sample.cells)} exact")

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def exact_rate(self) -> float:
        return self.exact / self.cells if self.cells else 1.0


def score(outcomes: list[Outcome], strips_are_sheets: bool) -> Score:
    result = Score()
    for o in outcomes:
        sheet = o.sample.sheet if strips_are_sheets or o.sample.kind != "strip" else False
        result.add(o, sheet)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="Name every wrong picture.")
    add_report_arguments(parser)
    args = parser.parse_args()
    outcomes: list[Outcome] = []
    for sample in build_set():
        start = time.perf_counter()
        boxes = find_tiles(sample.image)
        outcomes.append(Outcome(sample, boxes, time.perf_counter() - start))
    report = Report(
        "Sheet detection",
        args,
        depends=["src/ogasearch/tiles", "bench/sheet_set.py", "bench/sheet_art.py"],
    )
    scores: dict[str, dict[str, float]] = {}
    split = {"tuning": TUNING, "validation": VALIDATION}
    rows, kinds = [], []
    for label, packs in split.items():
        part = [o for o in outcomes if o.sample.pack in packs]
        for strips_are_sheets in (True, False):
            s = score(part, strips_are_sheets)
            rows.append(
                [
                    label,
                    "sheets" if strips_are_sheets else "not sheets",
                    len(part),
                    f"{s.tp}/{s.fp}/{s.fn}/{s.tn}",
                    f"{s.precision:.3f}",
                    f"{s.recall:.3f}",
                    f"{s.exact}/{s.cells} = {s.exact_rate:.3f}",
                    s.stray_tiles,
                ]
            )
            if strips_are_sheets:
                scores[label] = {
                    "precision": round(s.precision, 3),
                    "recall": round(s.recall, 3),
                    "exact_cells": round(s.exact_rate, 3),
                }
            if args.misses and strips_are_sheets:
                print(f"-- {label}:", *s.misses, sep="\n  ")
        by_kind: dict[str, list[Outcome]] = defaultdict(list)
        for o in part:
            by_kind[o.sample.kind].append(o)
        for kind in (*SHEET_KINDS, *OTHER_KINDS):
            group = by_kind.get(kind, [])
            cells = sum(len(o.sample.cells or ()) for o in group)
            exact = sum(o.exact for o in group)
            cut = sum(o.cut for o in group)
            kinds.append([label, kind, len(group), cut, f"{exact}/{cells}" if cells else "-"])
    seconds = sum(o.seconds for o in outcomes)
    report.line(
        f"{len(outcomes)} pictures from `bench/sheet_set.py`, `find_tiles` on each "
        f"({seconds:.1f} s in all). Tuning packs: {', '.join(TUNING)}. "
        f"Validation packs (never tuned on): {', '.join(VALIDATION)}."
    )
    report.line()
    headers = ["split", "strips", "pictures", "tp/fp/fn/tn", "precision", "recall"]
    report.table([*headers, "exact cells", "tiles from non-sheets"], rows)
    report.table(["split", "kind", "pictures", "cut", "exact cells"], kinds)
    report.record(pictures=len(outcomes), strips_as_sheets=scores)
    report.finish()


if __name__ == "__main__":
    main()
