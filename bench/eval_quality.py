"""Retrieval quality benchmark: ogasearch's matcher against the 2021 prototype's pipeline, in one
run, on real pixel art.

Corpus: the dev set (``bench/devset.py``: Dungeon Crawl cells, Kenney, Teeworlds, Chromium
B.S.U. and Minetest art), split by source pack into a tuning part and a validation part that
is never tuned on. Each split is evaluated on its own index (its whole images, its sheets kept
whole and the tiles ogasearch cuts from them with ``ogasearch.tiles.find_tiles``, as its tiles
stage does; the prototype indexed whole files only), both pipelines in the same run.

Queries: indexed images put through what happens to art on the web (nearest upscale 2-8x; JPEG
q60-90 and q60-80 of a 2-4x upscale flattened on white; 90% crop then 2x; mirror; hue +60
degrees; the sprite pasted at 2-3x into a busy "screenshot" (a Crawl title painting or a floor
of Crawl tiles); a "dense screenshot": the sprite among other catalogued sprites of its split at
the same 2-3x scale, overlapping, cropped to about 3x the sprite around it; one tile of a sheet,
1-3x; alpha flattened onto white; sprites with >5% partly transparent pixels flattened on
white, on black and on a random flat colour; a 2x bilinear (browser-zoomed) upscale). A query
is answered right when the target (or an exact canonical copy of it, or the sheet of a target
tile) is in the top k.

Reports recall@1 / recall@10 per transform and overall for each split, the same split into
queries on partial-alpha targets and the rest, precision@10 of same-category neighbours ("more
like this": an indexed image's own vector, itself excluded), and timings. The JSON result's
``pipelines`` are the validation split's numbers (the held-back figure) when it was run.

    python bench/eval_quality.py                  # full run (2,000 images per split)
    python bench/eval_quality.py --size 400 --queries 40 --no-append   # quick look
    python bench/eval_quality.py --split validation   # the held-back split only
    python bench/devset.py                        # what the dev set holds
"""

from __future__ import annotations

import argparse
import colorsys
import io
import os
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from _common import CRAWL_TILES, Report, add_report_arguments
from devset import SPLITS, Entry, all_entries, atlas_cells, select
from ogasearch.embed.codec import CodedExtractor, fit_codec
from ogasearch.embed.extractors import FeatureExtractor, OnnxEfficientNet, PoolingSpec
from ogasearch.embed.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    canonical,
    canonicalise,
    pixel_hash,
    to_rgba,
)
from ogasearch.embed.signatures import signatures
from ogasearch.match.matching import MatchConfig, Matcher
from ogasearch.match.memory import InMemoryHashes, InMemoryPixels, InMemoryVectors
from ogasearch.tiles.grid import find_tiles

TRANSFORMS = (
    "upscale",
    "jpeg",
    "crop",
    "flip",
    "hue",
    "screenshot",
    "sheet_tile",
    "white_bg",
    "flat_white",
    "flat_black",
    "flat_colour",
    "jpeg_low",
    "dense_screenshot",
    "bilinear",
)
ROOT = Path(__file__).resolve().parent.parent
# Targets of the reverse lookup: recall@1 overall and for each transform, recall@10 overall.
TARGET_RECALL1 = 0.95
TARGET_RECALL1_EACH = 0.90
TARGET_RECALL10 = 0.98
TARGET_RECALL10_SCREENSHOT = 0.95  # each screenshot transform
# what the numbers measure: the matcher and what it calls, the CNN, hashes and sheet cutting,
# on the dev set's images
QUALITY_CODE = [
    "src/ogasearch/search",
    "src/ogasearch/match",
    "src/ogasearch/embed",
    "src/ogasearch/tiles",
    "bench/devset.py",
]


@dataclass
class Item:
    id: int
    image: Image.Image  # RGBA
    category: str
    parent: int | None = None  # sheet id of a tile
    is_sheet: bool = False
    partial: bool = False  # more than 5% of its pixels partly transparent


def build_corpus(entries: list[Entry]) -> list[Item]:
    """The dev-set images as indexed items: whole images, sheets kept whole and their tiles
    (a tile may equal a whole image, as in the catalog)."""
    items: list[Item] = []
    for e in entries:
        items.append(Item(len(items), e.image, e.category, None, e.is_sheet, e.partial_alpha))
    for sheet in [i for i in items if i.is_sheet]:
        for box in find_tiles(sheet.image):
            tile = sheet.image.crop(box.pil_box)
            items.append(Item(len(items), tile, sheet.category, parent=sheet.id))
    return items


# --- transforms -------------------------------------------------------------------------------


def _upscale(img: Image.Image, k: int) -> Image.Image:
    return img.resize((img.width * k, img.height * k), Image.Resampling.NEAREST)


def flatten(img: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """``img`` composited on an opaque flat ``colour``: RGB, edges mixed with the colour."""
    base = Image.new("RGBA", img.size, (*colour, 255))
    return Image.alpha_composite(base, img).convert("RGB")


def _content(img: Image.Image) -> Image.Image:
    box = img.getchannel("A").getbbox()
    return img.crop(box) if box else img


def t_upscale(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    return _upscale(img, rng.randint(2, 8))


def jpeg_on_white(rng: random.Random, img: Image.Image, quality: tuple[int, int]) -> Image.Image:
    """A 2-4x nearest upscale flattened on white, saved as JPEG of a quality in ``quality``."""
    buf = io.BytesIO()
    flatten(_upscale(img, rng.randint(2, 4)), (255, 255, 255)).save(
        buf, "JPEG", quality=rng.randint(*quality)
    )
    return Image.open(io.BytesIO(buf.getvalue()))


def t_jpeg(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    return jpeg_on_white(rng, img, (60, 90))


def t_jpeg_low(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    return jpeg_on_white(rng, img, (60, 80))


def t_crop(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    c = _content(img)
    w, h = c.size
    cw, ch = max(1, round(w * 0.9)), max(1, round(h * 0.9))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return _upscale(c.crop((x, y, x + cw, y + ch)), 2)


def t_flip(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def hue_shift(img: Image.Image, degrees: float) -> Image.Image:
    a = np.asarray(img.convert("RGBA")).astype(np.float64) / 255.0
    flat = a[..., :3].reshape(-1, 3)
    colours, inverse = np.unique(flat, axis=0, return_inverse=True)
    shifted = np.array(
        [
            colorsys.hsv_to_rgb((h + degrees / 360.0) % 1.0, s, v)
            for h, s, v in (colorsys.rgb_to_hsv(*c) for c in colours)
        ]
    )
    out = a.copy()
    out[..., :3] = shifted[inverse.ravel()].reshape((*a.shape[:2], 3))
    return Image.fromarray(np.rint(out * 255).astype(np.uint8))


def t_hue(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    return hue_shift(img, 60)


def t_screenshot(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    sprite = _upscale(_content(img), rng.randint(2, 3))
    w, h = max(320, sprite.width + 64), max(240, sprite.height + 64)
    if rng.random() < 0.5:
        title = rng.choice(ctx.titles)
        scale = max(w / title.width, h / title.height, 1.0)
        if scale > 1.0:
            title = title.resize((int(title.width * scale) + 1, int(title.height * scale) + 1))
        x, y = rng.randint(0, title.width - w), rng.randint(0, title.height - h)
        scene = title.crop((x, y, x + w, y + h)).convert("RGBA")
    else:  # a dungeon floor of crawl tiles at 2x, like a game screen
        k = 2
        cols, rows = w // (32 * k) + 2, h // (32 * k) + 2
        floor = Image.new("RGBA", (cols * 32, rows * 32))
        for r in range(rows):
            for c in range(cols):
                floor.paste(rng.choice(ctx.floors), (c * 32, r * 32))
        floor = _upscale(floor, k)
        ox, oy = rng.randint(0, 32 * k - 1), rng.randint(0, 32 * k - 1)
        scene = floor.crop((ox, oy, ox + w, oy + h))
    x, y = rng.randint(0, w - sprite.width), rng.randint(0, h - sprite.height)
    scene.alpha_composite(sprite, (x, y))
    return scene.convert("RGB")


def dense_screenshot(
    rng: random.Random, img: Image.Image, others: list[Image.Image], k: int
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """``img`` at ``k``x on top of ``others`` at the same scale, overlapping until they cover
    the scene about three times over, cropped to about 3x the sprite around it: the scene (RGB)
    and where the sprite is in it."""
    sprite = _upscale(_content(img), k)
    w, h = 3 * sprite.width, 3 * sprite.height
    scene = Image.new("RGBA", (w, h), (*(rng.randint(0, 255) for _ in range(3)), 255))
    covered = 0
    while covered < 3 * w * h:
        other = _upscale(_content(rng.choice(others)), k)
        x = rng.randint(-other.width // 2, w - other.width // 2)
        y = rng.randint(-other.height // 2, h - other.height // 2)
        scene.alpha_composite(other, (max(0, x), max(0, y)), (max(0, -x), max(0, -y)))
        covered += other.width * other.height
    x = rng.randint(sprite.width // 2, w - sprite.width - sprite.width // 2)
    y = rng.randint(sprite.height // 2, h - sprite.height - sprite.height // 2)
    scene.alpha_composite(sprite, (x, y))
    return scene.convert("RGB"), (x, y, x + sprite.width, y + sprite.height)


def t_dense_screenshot(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    others = [o for o in ctx.sprites if o is not img]
    return dense_screenshot(rng, img, others, rng.randint(2, 3))[0]


def t_sheet_tile(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    return _upscale(img, rng.randint(1, 3))


def t_white_bg(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    return flatten(img, (255, 255, 255))


def t_flat_white(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    return flatten(img, (255, 255, 255))


def t_flat_black(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    return flatten(img, (0, 0, 0))


def t_flat_colour(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    return flatten(img, (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255)))


def t_bilinear(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    return img.resize((img.width * 2, img.height * 2), Image.Resampling.BILINEAR)


@dataclass
class Context:
    titles: list[Image.Image]
    floors: list[Image.Image]
    sprites: list[Image.Image]  # the split's catalogued sprites, a dense screenshot's background


TRANSFORM_FNS: dict[str, Callable[[random.Random, Image.Image, Context], Image.Image]] = {
    "upscale": t_upscale,
    "jpeg": t_jpeg,
    "crop": t_crop,
    "flip": t_flip,
    "hue": t_hue,
    "screenshot": t_screenshot,
    "sheet_tile": t_sheet_tile,
    "white_bg": t_white_bg,
    "flat_white": t_flat_white,
    "flat_black": t_flat_black,
    "flat_colour": t_flat_colour,
    "jpeg_low": t_jpeg_low,
    "dense_screenshot": t_dense_screenshot,
    "bilinear": t_bilinear,
}


def _has_alpha(img: Image.Image) -> bool:
    return bool(np.asarray(img.getchannel("A")).min() < 255)


def eligible(items: list[Item], transform: str) -> list[Item]:
    if transform == "sheet_tile":
        return [i for i in items if i.parent is not None]
    whole = [i for i in items if i.parent is None and not i.is_sheet]
    if transform in ("screenshot", "white_bg", "dense_screenshot"):
        return [i for i in whole if _has_alpha(i.image) and max(i.image.size) <= 160]
    if transform.startswith("flat_"):  # the sprites with partial alpha
        return [i for i in whole if i.partial]
    return whole


# --- the two pipelines ------------------------------------------------------------------------


class Prototype:
    """The 2021 pipeline: convert('RGB'), bilinear 224x224, global CNN features, whole files."""

    name = "prototype (RGB, bilinear 224, global CNN)"

    def __init__(self, models_dir: Path, variant: str) -> None:
        self.extractor = OnnxEfficientNet(
            variant, 224, models_dir, PoolingSpec((("head", "avg", 1.0),))
        )

    def _input(self, img: Image.Image) -> np.ndarray:
        rgb = img.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)
        x = (np.asarray(rgb, dtype=np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        return x.transpose(2, 0, 1)

    def index(self, items: list[Item]) -> None:
        whole = [i for i in items if i.parent is None]
        self.vectors = InMemoryVectors(self.extractor.dim)
        for start in range(0, len(whole), 64):
            chunk = whole[start : start + 64]
            vecs = self.extractor.embed(np.stack([self._input(i.image) for i in chunk]))
            self.vectors.add([i.id for i in chunk], vecs)

    def query(self, img: Image.Image, k: int) -> list[int]:
        vec = self.extractor.embed(self._input(img)[None])
        return [i for i, _ in self.vectors.search(vec, k)[0]]

    def similar(self, item: Item, k: int) -> list[int]:
        vec = self.extractor.embed(self._input(item.image)[None])
        return [i for i, _ in self.vectors.search(vec, k + 1)[0] if i != item.id][:k]


class Ogasearch:
    name = "ogasearch (canonical pixels, hashes, CNN + mirror, regions, tiles)"

    def __init__(
        self,
        models_dir: Path,
        variant: str,
        size: int,
        workers: int,
        config: MatchConfig,
        codec_dim: int = 0,
    ) -> None:
        self.extractor: FeatureExtractor = OnnxEfficientNet(variant, size, models_dir)
        self.workers = workers
        self.config = config
        self.codec_dim = codec_dim

    def index(self, items: list[Item]) -> None:
        vecs, hashes = signatures([i.image for i in items], self.extractor, workers=self.workers)
        if self.codec_dim:  # as `ogasearch update` stores them: fitted here, float16
            codec = fit_codec(vecs, self.extractor.name, dim=self.codec_dim)
            self.extractor = CodedExtractor(self.extractor, codec)
            vecs = codec.project(vecs).astype(np.float16).astype(np.float32)
        self.vectors = InMemoryVectors(self.extractor.dim)
        self.vectors.add([i.id for i in items], vecs, [i.parent is not None for i in items])
        self.hashes = InMemoryHashes()
        ids = [i.id for i in items]
        self.hashes.add_many(ids, "canonical", [h.canonical_sha256 for h in hashes])
        self.hashes.add_many(ids, "structure", [h.structure_sha256 for h in hashes])
        for ident, h in zip(ids, hashes, strict=True):
            self.hashes.add_patches(ident, h.patches)
        self.own = dict(zip(ids, vecs, strict=True))
        pixels = InMemoryPixels({i.id: canonicalise(i.image) for i in items})
        self.matcher = Matcher(self.extractor, self.vectors, self.hashes, self.config, pixels)

    def query(self, img: Image.Image, k: int) -> list[int]:
        return [m.id for m in self.matcher.search(img, k)]

    def similar(self, item: Item, k: int) -> list[int]:
        hits = self.vectors.search(self.own[item.id][None], k + 1, tiles="exclude")[0]
        return [i for i, _ in hits if i != item.id][:k]


# --- evaluation -------------------------------------------------------------------------------


@dataclass
class Query:
    transform: str
    image: Image.Image
    correct: set[int]
    partial: bool  # the target has partial alpha


def make_queries(items: list[Item], per_transform: int, seed: int) -> list[Query]:
    ctx = Context(
        titles=[Image.open(p).convert("RGB") for p in sorted(CRAWL_TILES.glob("title_*.png"))],
        floors=[c for _, c in atlas_cells(to_rgba(Image.open(CRAWL_TILES / "floor.png")))],
        sprites=[i.image for i in eligible(items, "dense_screenshot")],
    )
    by_hash: dict[str, set[int]] = defaultdict(set)
    canon_of: dict[int, str] = {}
    for item in items:
        if item.is_sheet:
            continue
        h = pixel_hash(canonical(item.image))
        by_hash[h].add(item.id)
        canon_of[item.id] = h
    out: list[Query] = []
    for t in TRANSFORMS:
        rng = random.Random(f"{seed}:{t}")
        pool = eligible(items, t)
        for item in rng.sample(pool, min(per_transform, len(pool))):
            correct = set(by_hash[canon_of[item.id]])
            if item.parent is not None:
                correct.add(item.parent)
            image = TRANSFORM_FNS[t](rng, item.image, ctx)
            out.append(Query(t, image, correct, item.partial))
    return out


def evaluate(
    pipeline: Prototype | Ogasearch,
    queries: list[Query],
    items: list[Item],
    similar_n: int,
    seed: int,
) -> dict[str, object]:
    t0 = time.perf_counter()
    pipeline.index(items)
    index_s = time.perf_counter() - t0
    per: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    by_alpha: dict[tuple[str, bool], list[tuple[bool, bool]]] = defaultdict(list)
    qtime: dict[str, float] = defaultdict(float)
    for q in tqdm(queries, desc=f"{pipeline.name.split()[0]} queries", unit="q", file=sys.stderr):
        t1 = time.perf_counter()
        ranked = pipeline.query(q.image, 10)
        qtime[q.transform] += time.perf_counter() - t1
        hit = (
            bool(ranked[:1] and ranked[0] in q.correct),
            any(r in q.correct for r in ranked[:10]),
        )
        per[q.transform].append(hit)
        by_alpha[q.transform, q.partial].append(hit)
    rng = random.Random(f"{seed}:similar")
    whole = [i for i in items if i.parent is None and not i.is_sheet]
    sample = rng.sample(whole, min(similar_n, len(whole)))
    cat = {i.id: i.category for i in items}
    precisions = []
    for item in sample:
        neigh = pipeline.similar(item, 10)
        precisions.append(sum(cat.get(n) == item.category for n in neigh) / 10)
    return {
        "index_s": index_s,
        "n_indexed": len(items)
        if isinstance(pipeline, Ogasearch)
        else sum(i.parent is None for i in items),
        "recall": {
            t: (float(np.mean([a for a, _ in v])), float(np.mean([b for _, b in v])))
            for t, v in per.items()
        },
        "overall": (
            float(np.mean([a for v in per.values() for a, _ in v])),
            float(np.mean([b for v in per.values() for _, b in v])),
        ),
        # per transform, queries on targets with partial alpha (True) and the rest: n, r@1, r@10
        "by_alpha": {
            (t, partial): (
                len(v),
                float(np.mean([a for a, _ in v])),
                float(np.mean([b for _, b in v])),
            )
            for (t, partial), v in by_alpha.items()
        },
        "qtime_ms": {t: 1000 * qtime[t] / len(per[t]) for t in per},
        "precision10": float(np.mean(precisions)),
    }


Run = dict[str, object]  # what evaluate() returns


def recall_table(runs: dict[str, list[tuple[str, Run]]], transforms: list[str]) -> list[str]:
    """Recall@1 / recall@10 per transform (rows), each split and pipeline side by side."""
    cols = [(split, name, r) for split, results in runs.items() for name, r in results]
    head = "| transform | " + " | ".join(f"{s} {n} r@1 | r@10" for s, n, _ in cols) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(cols)]

    def cells(pairs: list[tuple[float, float] | None]) -> str:
        return " | ".join("n/a | n/a" if p is None else f"{p[0]:.3f} | {p[1]:.3f}" for p in pairs)

    for t in transforms:
        recalls = [r["recall"].get(t) for _, _, r in cols]  # type: ignore[attr-defined]
        lines.append(f"| {t} | {cells(recalls)} |")
    lines.append(f"| **overall** | {cells([r['overall'] for _, _, r in cols])} |")  # type: ignore[misc]
    return lines


def alpha_table(runs: dict[str, list[tuple[str, Run]]], transforms: list[str]) -> list[str]:
    """ogasearch's recall per transform and split, queries on targets with >5% partly
    transparent pixels apart from the rest."""
    lines = [
        "| pipeline | split | transform | partial alpha: n | r@1 | r@10 | other: n | r@1 | r@10 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for split, results in runs.items():
        for name, r in results[:1]:
            by_alpha = r["by_alpha"]
            assert isinstance(by_alpha, dict)
            for t in transforms:
                row = []
                for partial in (True, False):
                    n, r1, r10 = by_alpha.get((t, partial), (0, float("nan"), float("nan")))
                    row.append(f"{n} | {r1:.3f} | {r10:.3f}" if n else "0 | - | -")
                lines.append(f"| {name} | {split} | {t} | " + " | ".join(row) + " |")
    return lines


def cost_table(runs: dict[str, list[tuple[str, Run]]]) -> list[str]:
    lines = [
        "| split | pipeline | precision@10 same category | images indexed | index time | "
        "query ms (mean over transforms) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for split, results in runs.items():
        for name, r in results:
            qt = r["qtime_ms"]
            assert isinstance(qt, dict)
            lines.append(
                f"| {split} | {name} | {r['precision10']:.3f} | {r['n_indexed']} |"
                f" {r['index_s']:.1f} s | {np.mean(list(qt.values())):.0f}"
                f" (screenshot {qt.get('screenshot', 0):.0f}) |"
            )
    return lines


def numbers(results: list[tuple[str, Run]]) -> dict[str, object]:
    """The JSON numbers of one split: per pipeline ("ogasearch", "prototype")."""
    return {
        key: {
            "recall1": round(r["overall"][0], 3),  # type: ignore[index]
            "recall10": round(r["overall"][1], 3),  # type: ignore[index]
            "recall1_by_transform": {
                t: round(v[0], 3)
                for t, v in r["recall"].items()  # type: ignore[attr-defined]
            },
            "recall10_by_transform": {
                t: round(v[1], 3)
                for t, v in r["recall"].items()  # type: ignore[attr-defined]
            },
            "precision10": round(r["precision10"], 3),  # type: ignore[call-overload]
        }
        for key, (_, r) in zip(["ogasearch", "prototype"], results, strict=False)
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=2000, help="whole images per split")
    ap.add_argument("--queries", type=int, default=300, help="queries per transform and split")
    ap.add_argument("--similar", type=int, default=300, help="images for precision@10")
    ap.add_argument("--split", default="both", choices=[*SPLITS, "both"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant", default="lite0", choices=["lite0", "lite1", "lite2"])
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the prototype's pipeline (default: yes)",
    )
    ap.add_argument("--transforms", default=",".join(TRANSFORMS))
    ap.add_argument(
        "--codec",
        type=int,
        default=256,
        help="compact vectors as `update` stores them: fitted dimensions (default 256; 0: full)",
    )
    ap.add_argument("--no-mirror", action="store_true")
    ap.add_argument("--no-hashes", action="store_true")
    ap.add_argument("--no-regions", action="store_true")
    ap.add_argument("--no-verify", action="store_true", help="no pixel verification")
    ap.add_argument("--no-patches", action="store_true", help="no patch fingerprint path")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument(
        "--models",
        type=Path,
        default=ROOT / "ogasearch-data" / "models",
        help="ONNX model cache (exported on first use)",
    )
    add_report_arguments(ap)
    args = ap.parse_args(argv)
    report = Report("Quality: reverse lookup and similarity", args, depends=QUALITY_CODE)
    report.target(
        recall1=TARGET_RECALL1,
        recall1_each=TARGET_RECALL1_EACH,
        recall10=TARGET_RECALL10,
        recall10_screenshot=TARGET_RECALL10_SCREENSHOT,
    )
    transforms = [t for t in args.transforms.split(",") if t]
    unknown = sorted(set(transforms) - set(TRANSFORMS))
    if unknown:
        ap.error(f"unknown transforms {', '.join(unknown)} (known: {', '.join(TRANSFORMS)})")
    splits = list(SPLITS) if args.split == "both" else [args.split]
    config = MatchConfig(
        mirror=not args.no_mirror,
        hashes=not args.no_hashes,
        regions=not args.no_regions,
        verify_top=0 if args.no_verify else MatchConfig.verify_top,
        patches=not args.no_patches,
    )
    labels = [f"ogasearch ({args.variant}, {args.input_size}px)"]
    labels += [f"prototype-style ({args.variant}, 224px)"] if args.baseline else []
    t0 = time.perf_counter()
    entries = all_entries()
    print(
        f"dev set: {len(entries)} images read in {time.perf_counter() - t0:.1f} s", file=sys.stderr
    )
    runs: dict[str, list[tuple[str, Run]]] = {}
    sizes: dict[str, dict[str, int]] = {}
    for split in splits:
        t0 = time.perf_counter()
        items = build_corpus(select(entries, split, args.size, args.seed))
        queries = [
            q for q in make_queries(items, args.queries, args.seed) if q.transform in transforms
        ]
        n_tiles = sum(i.parent is not None for i in items)
        n_sheets = sum(i.is_sheet for i in items)
        sizes[split] = {"corpus_images": len(items), "tiles": n_tiles, "queries": len(queries)}
        print(
            f"{split}: {len(items)} images ({n_tiles} tiles of {n_sheets} sheets),"
            f" {len(queries)} queries, built in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
        pipelines: list[Prototype | Ogasearch] = [
            Ogasearch(args.models, args.variant, args.input_size, args.workers, config, args.codec)
        ]
        if args.baseline:
            pipelines.append(Prototype(args.models, args.variant))
        runs[split] = []
        for label, p in zip(labels, pipelines, strict=True):
            r = evaluate(p, queries, items, args.similar, args.seed)
            runs[split].append((label, r))
            print(f"{split}, {p.name}: overall {r['overall']}", file=sys.stderr)
        report.line(
            f"{split.capitalize()} split: {len(items)} images ({n_tiles} tiles of {n_sheets}"
            f" sheets), {len(queries)} queries (up to {args.queries} per transform)."
        )
    report.line(f"Seed {args.seed}; the split is by source pack (`bench/devset.py`).")
    report.line()
    for line in [*recall_table(runs, transforms), "", *alpha_table(runs, transforms)]:
        report.line(line)
    report.line()
    for line in cost_table(runs):
        report.line(line)
    shown = "validation" if "validation" in runs else splits[0]
    report.record(
        split=shown,
        corpus_images=sizes[shown]["corpus_images"],
        size=args.size,
        queries_per_transform=args.queries,
        codec_dim=args.codec,
        queries=sizes[shown]["queries"],
        full_size=ap.get_default("size"),
        full_queries_per_transform=ap.get_default("queries"),
        pipelines=numbers(runs[shown]),
        splits={split: {**sizes[split], "pipelines": numbers(r)} for split, r in runs.items()},
    )
    report.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
