""" "More like this" quality: which vector finds the same kind of art, on a dev set labelled by
category, with a tuning part to choose on and a held-back validation part.

Corpus: the dev set (``bench/devset.py``: Crawl, Kenney, Teeworlds, Chromium B.S.U. and
Minetest art, sheets cut into tiles as ``eval_quality`` does), about ``--size`` whole images
from each of its two parts. Category and source pack (the same art style) are the dev set's;
its tuning / validation split is by source pack (``devset.split_of``); queries are the part's
images that are not sheets, answered from the whole corpus. A category whose images are all
tiles of one sheet has no query (its neighbours of the same category are all excluded).

For every candidate vector it reports, per part:

* precision@10 same category: neighbours of the query's category among its first 10, the
  query itself, its own sheet and its sheet's other tiles excluded (they are not "like this",
  they are the same file);
* precision@10 same source pack;
* palette swap recall@10: a hue-rotated copy (+120 degrees) of every query is added to the
  corpus; is it among the query's first 10?

Candidates are poolings of the one forward pass the embed stage runs (stage 5 and the head of
EfficientNet-Lite0 at 128 px), some of a greyscale copy of the input (one more pass), against
the lookup vector and the 2021 pipeline (``eval_quality.Prototype``). Each candidate's stored
size (float16) is shown; the search keeps only vectors of at most 512 bytes.

    python bench/eval_similar.py --size 800             # about 5 minutes on a shared machine
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import devset
from _common import Report, add_report_arguments
from eval_quality import ROOT, Item, Prototype, build_corpus, hue_shift
from ogasearch.embed.extractors import (
    OnnxEfficientNet,
    gem,
    kind_vector,
    l2_normalise,
)
from ogasearch.embed.preprocess import IMAGENET_MEAN, IMAGENET_STD
from ogasearch.embed.signatures import prepare_image
from ogasearch.progress import progress

SWAP_DEGREES = 120.0
MAX_BYTES = 512
QUALITY_CODE = ["src/ogasearch/embed"]


LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def grey_input(batch: np.ndarray) -> np.ndarray:
    """(n, 3, s, s) normalised model input -> the same input in grey (luma in all three
    channels), normalised again: for candidates that a palette swap should not move."""
    mean = IMAGENET_MEAN[None, :, None, None]
    std = IMAGENET_STD[None, :, None, None]
    pixels = batch * std + mean
    luma = np.einsum("c,nchw->nhw", LUMA, pixels)[:, None]
    return ((luma - mean) / std).astype(np.float32)


Maps = dict[str, np.ndarray]
Candidate = Callable[[Maps, Maps, np.ndarray], np.ndarray]  # colour maps, grey maps, input


def _pca(tuning: np.ndarray, dims: int, whiten: bool) -> Callable[[np.ndarray], np.ndarray]:
    """A projection fitted on the tuning part only (what a shipped matrix would be)."""
    mean = tuning.mean(axis=0)
    _, s, vt = np.linalg.svd(tuning - mean, full_matrices=False)
    proj = vt[:dims].T
    if whiten:
        proj = proj / np.maximum(s[:dims], 1e-6)
    return lambda x: l2_normalise((x - mean) @ proj)


def _lookup(extractor: OnnxEfficientNet) -> Candidate:
    return lambda c, g, x: extractor.pool(c, x)


CANDIDATES: dict[str, Candidate] = {
    "stage5 GeM (192)": lambda c, g, x: l2_normalise(gem(c["stage5"])),
    "stage5 avg (192): kind_vector": lambda c, g, x: kind_vector(c),
    "grey stage5 GeM (192)": lambda c, g, x: l2_normalise(gem(g["stage5"])),
    "grey stage5 avg (192)": lambda c, g, x: l2_normalise(g["stage5"].mean(axis=(2, 3))),
    "stage5 GeM, colour+grey mean (192)": lambda c, g, x: l2_normalise(
        l2_normalise(gem(c["stage5"])) + l2_normalise(gem(g["stage5"]))
    ),
    "stage5 avg, colour+grey mean (192)": lambda c, g, x: l2_normalise(
        l2_normalise(c["stage5"].mean(axis=(2, 3))) + l2_normalise(g["stage5"].mean(axis=(2, 3)))
    ),
}


def forward(extractor: OnnxEfficientNet, arrays: list[np.ndarray]) -> tuple[Maps, Maps, np.ndarray]:
    """Feature maps of the inputs and of their grey copies, in batches of 64."""
    colour: dict[str, list[np.ndarray]] = {}
    grey: dict[str, list[np.ndarray]] = {}
    with progress(len(arrays), "forward", "img") as bar:
        for start in range(0, len(arrays), 64):
            batch = np.stack(arrays[start : start + 64])
            for out, b in ((colour, batch), (grey, grey_input(batch))):
                for name, m in extractor.feature_maps(b).items():
                    out.setdefault(name, []).append(m)
            bar.update(len(batch))
    return (
        {k: np.concatenate(v) for k, v in colour.items()},
        {k: np.concatenate(v) for k, v in grey.items()},
        np.stack(arrays),
    )


def scores(
    vectors: np.ndarray,
    items: list[Item],
    packs: list[str],
    queries: list[int],
    swap_of: dict[int, int],
) -> dict[str, float]:
    """The three measures for ``queries`` (indexes of ``items``) with ``vectors`` (rows: items,
    then the swaps)."""
    cat = [i.category for i in items]
    pack = packs
    group = [i.parent if i.parent is not None else i.id for i in items]
    n = len(items)
    same_cat, same_pack, swap_hits = [], [], []
    for q in queries:
        sims = vectors @ vectors[q]
        sims[q] = -np.inf
        order = np.argsort(-sims)
        swap = swap_of[q]
        swap_hits.append(swap in order[:10])
        kept = [
            int(j) for j in order[:200] if j < n and group[j] != group[q] and j != items[q].parent
        ][:10]
        same_cat.append(sum(cat[j] == cat[q] for j in kept) / 10)
        same_pack.append(sum(pack[j] == pack[q] for j in kept) / 10)
    return {
        "same_category": float(np.mean(same_cat)),
        "same_pack": float(np.mean(same_pack)),
        "palette_swap": float(np.mean(swap_hits)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=800, help="whole images per part")
    ap.add_argument("--queries", type=int, default=300, help="queries per part (at most)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", type=Path, default=ROOT / "ogasearch-data" / "models")
    ap.add_argument("--no-baseline", action="store_true", help="skip the 2021 pipeline")
    add_report_arguments(ap)
    args = ap.parse_args(argv)
    report = Report('Quality: "more like this" (kind of art)', args, depends=QUALITY_CODE)
    report.target(same_category="2021 + 0.10", same_pack=">= 2021", max_bytes=MAX_BYTES)

    entries = devset.all_entries()
    chosen = [
        e for part in devset.SPLITS for e in devset.select(entries, part, args.size, args.seed)
    ]
    items = build_corpus(chosen)
    # a tile takes its sheet's entry: its split and its source pack
    entry_of = [chosen[i.parent if i.parent is not None else i.id] for i in items]
    packs = [f"{e.source}/{e.pack}" for e in entry_of]
    rng = np.random.default_rng(args.seed)
    parts: dict[str, list[int]] = {"tuning": [], "validation": []}
    members: dict[str, set[int]] = {}
    for item in items:
        members.setdefault(item.category, set()).add(
            item.parent if item.parent is not None else item.id
        )
    for i, item in enumerate(items):
        # a query needs other images of its category than its own sheet's tiles
        if not item.is_sheet and len(members[item.category]) > 1:
            parts[entry_of[i].split].append(i)
    for name, ids in parts.items():
        if len(ids) > args.queries:
            parts[name] = sorted(rng.choice(ids, args.queries, replace=False).tolist())
    queries = parts["tuning"] + parts["validation"]
    swaps = [hue_shift(items[q].image, SWAP_DEGREES) for q in queries]
    swap_of = {q: len(items) + k for k, q in enumerate(queries)}
    cats = {p: sorted({items[q].category for q in ids}) for p, ids in parts.items()}
    print(
        f"corpus {len(items)} images; tuning {len(parts['tuning'])} queries in"
        f" {len(cats['tuning'])} categories, validation {len(parts['validation'])} in"
        f" {len(cats['validation'])}",
        file=sys.stderr,
    )

    extractor = OnnxEfficientNet("lite0", 128, args.models)
    t0 = time.perf_counter()
    arrays = [prepare_image(i.image, 128).array for i in items]
    arrays += [prepare_image(s, 128).array for s in swaps]
    colour, grey, inputs = forward(extractor, arrays)
    print(f"features in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    vectors: dict[str, np.ndarray] = {
        "lookup vector (960)": _lookup(extractor)(colour, grey, inputs)
    }
    for name, fn in CANDIDATES.items():
        vectors[name] = fn(colour, grey, inputs)
    tuning_rows = np.array([i for i, e in enumerate(entry_of) if e.split == "tuning"])
    for source, maps in (("", colour), ("grey ", grey)):
        pooled = maps["head"].mean(axis=(2, 3))
        for whiten in (False, True):
            proj = _pca(pooled[tuning_rows], 256, whiten)
            label = f"{source}head avg, PCA{' whitened' if whiten else ''} on tuning (256)"
            vectors[label] = proj(pooled)
    if not args.no_baseline:
        proto = Prototype(args.models, "lite0")
        rows = [proto._input(i.image) for i in items] + [proto._input(s) for s in swaps]
        out = [proto.extractor.embed(np.stack(rows[s : s + 64])) for s in range(0, len(rows), 64)]
        vectors["2021 pipeline (head avg, 224 px, 1280)"] = np.concatenate(out)

    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, vecs in vectors.items():
        results[name] = {
            p: scores(vecs.astype(np.float32), items, packs, ids, swap_of)
            for p, ids in parts.items()
        }
        print(name, results[name], file=sys.stderr)
    report.line(
        f"Corpus: {len(items)} images (the dev set's); queries: {len(parts['tuning'])}"
        f" tuning ({len(cats['tuning'])} categories), {len(parts['validation'])} validation"
        f" ({len(cats['validation'])} categories: {', '.join(cats['validation'])})."
        " Own image, own sheet and sheet siblings excluded."
    )
    report.line()
    rows_out = []
    for name, r in results.items():
        t, v = r["tuning"], r["validation"]
        dim = vectors[name].shape[1]
        rows_out.append(
            [
                name,
                f"{dim * 2} B",
                f"{t['same_category']:.3f}",
                f"{v['same_category']:.3f}",
                f"{t['same_pack']:.3f}",
                f"{v['same_pack']:.3f}",
                f"{t['palette_swap']:.3f}",
                f"{v['palette_swap']:.3f}",
            ]
        )
    report.table(
        [
            "vector",
            "float16 size",
            "same category (tuning)",
            "same category (validation)",
            "same pack (tuning)",
            "same pack (validation)",
            "palette swap @10 (tuning)",
            "palette swap @10 (validation)",
        ],
        rows_out,
    )
    report.record(results=results, dims={k: int(v.shape[1]) for k, v in vectors.items()})
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
