"""Retrieval quality benchmark: ogasearch's matcher against the 2021 prototype's pipeline, in one
run, on real pixel art.

Corpus (all CC0, from Debian's crawl-tiles-data and the Kenney sprites in the arcade package):
Dungeon Crawl atlases cut on their 32x32 grid (empty, flat and duplicate cells dropped;
category = atlas), Kenney sprites (category = folder), and whole sprite sheets (a Crawl atlas
and Kenney's tiles.png) that ogasearch cuts into tiles with ``ogasearch.tiles.find_tiles``, as
its tiles stage does (the prototype indexed whole files only).

Queries: indexed images put through what happens to art on the web (nearest upscale 2-8x; JPEG
q60-90 of a 2-4x upscale flattened on white; 90% crop then 2x; mirror; hue +60 degrees; the
sprite pasted at 2-3x into a busy "screenshot" (a Crawl title painting or a floor of Crawl
tiles); one tile of a sheet, 1-3x; alpha flattened onto white). A query is answered right when
the target (or an exact canonical copy of it, or the sheet of a target tile) is in the top k.

Reports recall@1 / recall@10 per transform and overall, precision@10 of same-category
neighbours ("more like this": an indexed image's own vector, itself excluded), and timings.

    python bench/eval_quality.py                  # full run (about 2,000 images)
    python bench/eval_quality.py --size 400 --queries 40 --no-append   # quick look
"""

from __future__ import annotations

import argparse
import colorsys
import hashlib
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

from _common import CRAWL_TILES, Report, add_report_arguments, kenney_images
from ogasearch.embed.codec import CodedExtractor, fit_codec
from ogasearch.embed.extractors import FeatureExtractor, OnnxEfficientNet, PoolingSpec
from ogasearch.embed.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    canonical,
    canonicalise,
    pixel_hash,
)
from ogasearch.embed.signatures import signatures
from ogasearch.match.matching import MatchConfig, Matcher
from ogasearch.match.memory import InMemoryHashes, InMemoryPixels, InMemoryVectors
from ogasearch.tiles.grid import find_tiles

CRAWL_CUT = ("main", "player", "floor", "feat", "gui")
CRAWL_WHOLE = ("wall",)
KENNEY_WHOLE = ("spritesheets/tiles.png",)
KENNEY_SKIP = ("backgrounds", "spritesheets", "miami_synth_parallax/layers", "cybercity_background")
TRANSFORMS = (
    "upscale",
    "jpeg",
    "crop",
    "flip",
    "hue",
    "screenshot",
    "sheet_tile",
    "white_bg",
)
ROOT = Path(__file__).resolve().parent.parent
# Targets of the reverse lookup: recall@1 overall and for each transform, recall@10 overall.
TARGET_RECALL1 = 0.95
TARGET_RECALL1_EACH = 0.90
TARGET_RECALL10 = 0.98
# what the numbers measure: the matcher and what it calls, the CNN, hashes and sheet cutting
QUALITY_CODE = ["src/ogasearch/search", "src/ogasearch/embed", "src/ogasearch/tiles"]


@dataclass
class Item:
    id: int
    image: Image.Image  # RGBA
    category: str
    parent: int | None = None  # sheet id of a tile
    is_sheet: bool = False


def _rgba(img: Image.Image) -> Image.Image:
    from ogasearch.embed.preprocess import to_rgba

    return to_rgba(img).copy()


def _cells(atlas: Image.Image, cell: int = 32) -> list[Image.Image]:
    a = np.asarray(atlas)
    out = []
    for y in range(0, a.shape[0] - cell + 1, cell):
        for x in range(0, a.shape[1] - cell + 1, cell):
            c = a[y : y + cell, x : x + cell]
            if (c[..., 3] > 0).sum() < 24:
                continue
            if len(np.unique(c.reshape(-1, 4), axis=0)) < 3:
                continue
            out.append(Image.fromarray(c.copy()))
    return out


def build_corpus(size: int, seed: int) -> list[Item]:
    """Whole images (about ``size``), then the sheets kept whole and their tiles."""
    rng = random.Random(seed)
    items: list[Item] = []
    seen: set[str] = set()

    def add(img: Image.Image, category: str, tile: bool = False, **kw: object) -> Item | None:
        # whole images are distinct; a tile may equal a whole image (as in the catalog)
        key = hashlib.sha1(np.asarray(img).tobytes() + str(img.size).encode()).hexdigest()
        key = f"tile:{key}" if tile else key
        if key in seen:
            return None
        seen.add(key)
        item = Item(len(items), img, category, **kw)  # type: ignore[arg-type]
        items.append(item)
        return item

    kenney: list[tuple[Image.Image, str]] = []
    base = kenney_images()
    for path in sorted(base.rglob("*.png")):
        rel = path.relative_to(base).as_posix()
        folder = path.parent.relative_to(base).as_posix()
        if rel in KENNEY_WHOLE or any(folder.startswith(s) for s in KENNEY_SKIP):
            continue
        img = _rgba(Image.open(path))
        if max(img.size) > 512:
            continue
        kenney.append((img, "kenney/" + folder))
    crawl: list[tuple[Image.Image, str]] = []
    for atlas in CRAWL_CUT:
        img = _rgba(Image.open(CRAWL_TILES / f"{atlas}.png"))
        crawl.extend((c, "crawl/" + atlas) for c in _cells(img))
    rng.shuffle(kenney)
    rng.shuffle(crawl)
    n_kenney = min(len(kenney), size // 3)
    for img, cat in kenney[:n_kenney]:
        add(img, cat)
    for img, cat in crawl:
        if len(items) >= size:
            break
        add(img, cat)
    sheets = [(_rgba(Image.open(CRAWL_TILES / f"{n}.png")), "crawl/" + n) for n in CRAWL_WHOLE]
    sheets += [(_rgba(Image.open(base / n)), "kenney/spritesheets") for n in KENNEY_WHOLE]
    for img, cat in sheets:
        sheet = add(img, cat, is_sheet=True)
        assert sheet is not None
        for box in find_tiles(img):
            add(img.crop(box.pil_box), cat, tile=True, parent=sheet.id)
    return items


# --- transforms -------------------------------------------------------------------------------


def _upscale(img: Image.Image, k: int) -> Image.Image:
    return img.resize((img.width * k, img.height * k), Image.Resampling.NEAREST)


def _flatten(img: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    base = Image.new("RGBA", img.size, (*colour, 255))
    return Image.alpha_composite(base, img).convert("RGB")


def _content(img: Image.Image) -> Image.Image:
    box = img.getchannel("A").getbbox()
    return img.crop(box) if box else img


def t_upscale(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    return _upscale(img, rng.randint(2, 8))


def t_jpeg(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    buf = io.BytesIO()
    _flatten(_upscale(img, rng.randint(2, 4)), (255, 255, 255)).save(
        buf, "JPEG", quality=rng.randint(60, 90)
    )
    return Image.open(io.BytesIO(buf.getvalue()))


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


def t_sheet_tile(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    return _upscale(img, rng.randint(1, 3))


def t_white_bg(rng: random.Random, img: Image.Image, ctx: Context) -> Image.Image:
    return _flatten(img, (255, 255, 255))


@dataclass
class Context:
    titles: list[Image.Image]
    floors: list[Image.Image]


TRANSFORM_FNS: dict[str, Callable[[random.Random, Image.Image, Context], Image.Image]] = {
    "upscale": t_upscale,
    "jpeg": t_jpeg,
    "crop": t_crop,
    "flip": t_flip,
    "hue": t_hue,
    "screenshot": t_screenshot,
    "sheet_tile": t_sheet_tile,
    "white_bg": t_white_bg,
}


def _has_alpha(img: Image.Image) -> bool:
    return img.getchannel("A").getextrema()[0] < 255


def eligible(items: list[Item], transform: str) -> list[Item]:
    if transform == "sheet_tile":
        return [i for i in items if i.parent is not None]
    whole = [i for i in items if i.parent is None and not i.is_sheet]
    if transform in ("screenshot", "white_bg"):
        return [i for i in whole if _has_alpha(i.image) and max(i.image.size) <= 160]
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


def make_queries(items: list[Item], per_transform: int, seed: int) -> list[Query]:
    ctx = Context(
        titles=[Image.open(p).convert("RGB") for p in sorted(CRAWL_TILES.glob("title_*.png"))],
        floors=_cells(_rgba(Image.open(CRAWL_TILES / "floor.png"))),
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
            out.append(Query(t, TRANSFORM_FNS[t](rng, item.image, ctx), correct))
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
    qtime: dict[str, float] = defaultdict(float)
    for q in queries:
        t1 = time.perf_counter()
        ranked = pipeline.query(q.image, 10)
        qtime[q.transform] += time.perf_counter() - t1
        per[q.transform].append(
            (bool(ranked[:1] and ranked[0] in q.correct), any(r in q.correct for r in ranked[:10]))
        )
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
        "qtime_ms": {t: 1000 * qtime[t] / len(per[t]) for t in per},
        "precision10": float(np.mean(precisions)),
    }


def table(results: list[tuple[str, dict[str, object]]], transforms: list[str]) -> str:
    head = "| pipeline | metric | " + " | ".join(transforms) + " | overall |"
    sep = "|" + "---|" * (len(transforms) + 3)
    lines = [head, sep]
    for name, r in results:
        rec = r["recall"]
        assert isinstance(rec, dict)
        for j, metric in enumerate(("recall@1", "recall@10")):
            cells = [f"{rec[t][j]:.3f}" for t in transforms]
            overall = r["overall"][j]  # type: ignore[index]
            lines.append(f"| {name} | {metric} | " + " | ".join(cells) + f" | {overall:.3f} |")
    lines.append("")
    lines.append(
        "| pipeline | precision@10 same category | images indexed | index time | "
        "query ms (mean over transforms) |"
    )
    lines.append("|---|---|---|---|---|")
    for name, r in results:
        qt = r["qtime_ms"]
        assert isinstance(qt, dict)
        lines.append(
            f"| {name} | {r['precision10']:.3f} | {r['n_indexed']} | {r['index_s']:.1f} s | "
            f"{np.mean(list(qt.values())):.0f} (screenshot {qt.get('screenshot', 0):.0f}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=2000, help="whole images in the corpus")
    ap.add_argument("--queries", type=int, default=300, help="queries per transform")
    ap.add_argument("--similar", type=int, default=300, help="images for precision@10")
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
        "--codec", type=int, default=0, help="compact vectors: fitted dimensions (0: full)"
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
        recall1=TARGET_RECALL1, recall1_each=TARGET_RECALL1_EACH, recall10=TARGET_RECALL10
    )

    transforms = [t for t in args.transforms.split(",") if t]
    t0 = time.perf_counter()
    items = build_corpus(args.size, args.seed)
    queries = [q for q in make_queries(items, args.queries, args.seed) if q.transform in transforms]
    n_tiles = sum(i.parent is not None for i in items)
    print(
        f"corpus: {len(items)} images ({n_tiles} tiles of {sum(i.is_sheet for i in items)} "
        f"sheets), {len(queries)} queries, built in {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    config = MatchConfig(
        mirror=not args.no_mirror,
        hashes=not args.no_hashes,
        regions=not args.no_regions,
        verify_top=0 if args.no_verify else MatchConfig.verify_top,
        patches=not args.no_patches,
    )
    pipelines: list[Prototype | Ogasearch] = [
        Ogasearch(args.models, args.variant, args.input_size, args.workers, config, args.codec)
    ]
    if args.baseline:
        pipelines.append(Prototype(args.models, args.variant))
    results = []
    for p in pipelines:
        r = evaluate(p, queries, items, args.similar, args.seed)
        results.append((p.name, r))
        print(f"{p.name}: overall {r['overall']}", file=sys.stderr)
    label = [f"ogasearch ({args.variant}, {args.input_size}px)"] + (
        [f"prototype-style ({args.variant}, 224px)"] if args.baseline else []
    )
    text = table([(n, r) for n, (_, r) in zip(label, results, strict=True)], transforms)
    report.line(
        f"Corpus: {len(items)} images ({n_tiles} tiles of {sum(i.is_sheet for i in items)}"
        f" sheets), {args.queries} queries per transform ({len(queries)} in all), seed"
        f" {args.seed}."
    )
    report.line()
    report.line(text)
    report.record(
        corpus_images=len(items),
        size=args.size,
        queries_per_transform=args.queries,
        codec_dim=args.codec,
        queries=len(queries),
        full_size=ap.get_default("size"),
        full_queries_per_transform=ap.get_default("queries"),
        pipelines={
            key: {
                "recall1": round(r["overall"][0], 3),  # type: ignore[index]
                "recall10": round(r["overall"][1], 3),  # type: ignore[index]
                "recall1_by_transform": {
                    t: round(v[0], 3)
                    for t, v in r["recall"].items()  # type: ignore[attr-defined]
                },
                "precision10": round(r["precision10"], 3),  # type: ignore[arg-type]
            }
            for key, (_, r) in zip(["ogasearch", "prototype"], results, strict=False)
        },
    )
    report.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
