"""The dev set: the one place that says which images the quality evaluation uses, where each
comes from, what kind of art it is, and whether it may be tuned on.

Sources (all read in place; nothing is copied into the repository):

- ``crawl``: Dungeon Crawl Stone Soup's tiles (CC0, Debian's ``crawl-tiles-data``): atlases cut
  on their 32x32 grid (empty, flat cells dropped); the wall atlas is kept whole as a sheet.
- ``kenney``: Kenney's CC0 sprites that the ``arcade`` package ships, one pack per folder;
  ``spritesheets/tiles.png`` kept whole as a sheet.
- ``teeworlds``: Teeworlds' art (CC-BY-SA 3.0, Debian's ``teeworlds-data``): skin parts and UI
  icons with soft edges; the emoticon sheet kept whole. The country flags (flat rectangles, a
  quarter of the package) and the 1024px map backgrounds are left out.
- ``chromium-bsu``: Chromium B.S.U.'s sprites (Clarified Artistic licence, Debian's
  ``chromium-bsu-data``): glows, shots and ships, most with partial alpha. One folder, so a pack
  is a family of frames (``enemyAmmo00`` .. ``enemyAmmo04`` = ``enemyAmmo``).
- ``minetest``: Minetest Game's 16x16 textures (CC-BY-SA 3.0, a few MIT or CC-BY-SA 4.0; see
  ``/usr/share/doc/minetest-data/copyright``), one pack per mod.

Every image has a source pack (an atlas, a folder, a sheet, a family of frames), a category
(the atlas or folder: "same kind of art") and a split, ``tuning`` or ``validation``, given by
a stable hash of its source and pack alone (:func:`split_of`), so that near-identical frames
of one pack never land on both sides. About 30% of the packs are held back for validation; the
salt is the first ``devset-<n>`` under which every source keeps 15-50% of its images back and
each split has a sheet (:func:`salt_fits`; tests/test_devset.py holds that).

    python bench/devset.py        # images per source and split, and the partial-alpha shares
"""

from __future__ import annotations

import hashlib
import random
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from _common import CHROMIUM_BSU, CRAWL_TILES, MINETEST, TEEWORLDS, kenney_images
from ogasearch.embed.preprocess import to_rgba

SPLITS = ("tuning", "validation")
VALIDATION_SHARE = 0.30  # of the packs, by hash
SALT = "devset-63"  # the first salt_fits() accepts
PARTIAL_ALPHA = 0.05  # an image "has partial alpha" when more of its pixels are partly transparent
MAX_SIDE = 512  # whole images larger than this are left out (backgrounds, not sprites)

CRAWL_CUT = ("main", "player", "floor", "feat", "gui")
CRAWL_SHEETS = ("wall",)
KENNEY_SHEETS = ("spritesheets/tiles.png",)
KENNEY_SKIP = ("backgrounds", "spritesheets", "miami_synth_parallax/layers", "cybercity_background")
TEEWORLDS_SHEETS = ("emoticons.png",)
TEEWORLDS_SKIP = ("countryflags", "mapres", "editor")


@dataclass(frozen=True)
class Entry:
    """One image of the dev set."""

    source: str
    pack: str
    category: str
    name: str  # file (and cell) inside the source: unique within it
    image: Image.Image  # RGBA
    is_sheet: bool = False

    @property
    def split(self) -> str:
        return split_of(self.source, self.pack)

    @property
    def partial_alpha(self) -> bool:
        return partial_alpha_share(self.image) > PARTIAL_ALPHA


def split_of(source: str, pack: str, salt: str = SALT) -> str:
    """``tuning`` or ``validation`` for a pack: a hash of the source and pack, nothing else."""
    digest = hashlib.sha256(f"{salt}|{source}|{pack}".encode()).digest()
    return (
        "validation" if int.from_bytes(digest[:8], "big") / 2**64 < VALIDATION_SHARE else "tuning"
    )


def salt_fits(entries: list[Entry], salt: str) -> bool:
    """Whether every source keeps 15-50% of its whole images back under ``salt`` and each split
    has a sheet (tiles cut from sheets are a transform of their own)."""
    for source in {e.source for e in entries}:
        whole = [e for e in entries if e.source == source and not e.is_sheet]
        held = sum(split_of(e.source, e.pack, salt) == "validation" for e in whole)
        if not 0.15 <= held / len(whole) <= 0.50:
            return False
    return {split_of(e.source, e.pack, salt) for e in entries if e.is_sheet} == set(SPLITS)


def partial_alpha_share(img: Image.Image) -> float:
    """The share of an RGBA image's pixels that are partly transparent (0 < alpha < 255)."""
    a = np.asarray(img.getchannel("A"))
    return float(((a > 0) & (a < 255)).mean())


def _rgba(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return to_rgba(im).copy()


def atlas_cells(
    atlas: Image.Image, cell: int = 32
) -> Iterator[tuple[tuple[int, int], Image.Image]]:
    """The cells of an atlas with something in them: (x, y) and the cell."""
    a = np.asarray(atlas)
    for y in range(0, a.shape[0] - cell + 1, cell):
        for x in range(0, a.shape[1] - cell + 1, cell):
            c = a[y : y + cell, x : x + cell]
            if (c[..., 3] > 0).sum() < 24 or len(np.unique(c.reshape(-1, 4), axis=0)) < 3:
                continue
            yield (x, y), Image.fromarray(c.copy())


def _files(base: Path, skip: tuple[str, ...]) -> Iterator[tuple[str, str, Image.Image]]:
    """(folder, relative path, image) of the PNGs under ``base`` outside ``skip``, small enough."""
    for path in sorted(base.rglob("*.png")):
        folder = path.parent.relative_to(base).as_posix()
        if any(folder.startswith(s) for s in skip):
            continue
        img = _rgba(path)
        if max(img.size) <= MAX_SIDE:
            yield folder, path.relative_to(base).as_posix(), img


def crawl() -> Iterator[Entry]:
    for atlas in CRAWL_CUT:
        for (x, y), cell in atlas_cells(_rgba(CRAWL_TILES / f"{atlas}.png")):
            yield Entry("crawl", atlas, f"crawl/{atlas}", f"{atlas}.png#{x},{y}", cell)
    for name in CRAWL_SHEETS:
        img = _rgba(CRAWL_TILES / f"{name}.png")
        yield Entry("crawl", name, f"crawl/{name}", f"{name}.png", img, is_sheet=True)


def kenney() -> Iterator[Entry]:
    base = kenney_images()
    for folder, rel, img in _files(base, KENNEY_SKIP):
        yield Entry("kenney", folder, f"kenney/{folder}", rel, img)
    for rel in KENNEY_SHEETS:
        yield Entry("kenney", rel, "kenney/spritesheets", rel, _rgba(base / rel), is_sheet=True)


def teeworlds() -> Iterator[Entry]:
    for folder, rel, img in _files(TEEWORLDS, TEEWORLDS_SKIP):
        if rel in TEEWORLDS_SHEETS:
            yield Entry("teeworlds", rel, "teeworlds/sheets", rel, img, is_sheet=True)
        else:
            pack = folder if folder != "." else "data"
            yield Entry("teeworlds", pack, f"teeworlds/{pack}", rel, img)


def chromium_bsu() -> Iterator[Entry]:
    for _, rel, img in _files(CHROMIUM_BSU, ()):
        family = re.sub(r"\d*(-[a-z]+)?$", "", Path(rel).stem)  # enemy01-extra -> enemy
        yield Entry("chromium-bsu", family, f"chromium-bsu/{family}", rel, img)


def minetest() -> Iterator[Entry]:
    for folder, rel, img in _files(MINETEST, ()):
        mod = folder.split("/")[0]
        yield Entry("minetest", mod, f"minetest/{mod}", rel, img)


SOURCES: dict[str, Callable[[], Iterator[Entry]]] = {
    "crawl": crawl,
    "kenney": kenney,
    "teeworlds": teeworlds,
    "chromium-bsu": chromium_bsu,
    "minetest": minetest,
}


def missing_data() -> list[str]:
    """What is missing of the sources' data on this machine, and how to get it."""
    probes = {
        "crawl-tiles-data": CRAWL_TILES / "main.png",
        "teeworlds-data": TEEWORLDS / "emoticons.png",
        "chromium-bsu-data": CHROMIUM_BSU / "hero.png",
        "minetest-data": MINETEST / "default" / "textures" / "default_stone.png",
    }
    out = [f"apt-get install {pkg}" for pkg, probe in probes.items() if not probe.is_file()]
    try:
        kenney_images()
    except ImportError:
        out.append('pip install -e ".[test]" (arcade)')
    return out


def all_entries() -> list[Entry]:
    """Every image of every source, exact duplicates (same pixels) kept once: the first met.
    Exits with one line when a source's data is not installed."""
    missing = missing_data()
    if missing:
        raise SystemExit(
            f"dev set data missing: {'; '.join(missing)} (bash scripts/setup.sh test installs all)"
        )
    seen: set[str] = set()
    out = []
    for load in SOURCES.values():
        for entry in load():
            key = hashlib.sha1(np.asarray(entry.image).tobytes() + str(entry.image.size).encode())
            if key.hexdigest() in seen:
                continue
            seen.add(key.hexdigest())
            out.append(entry)
    return out


def select(entries: list[Entry], split: str, size: int, seed: int) -> list[Entry]:
    """About ``size`` whole images of one split, taken in turn from each source (so a small
    source gives all it has), plus every sheet of that split."""
    rng = random.Random(f"{seed}:{split}")
    by_source: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        if e.split == split and not e.is_sheet:
            by_source[e.source].append(e)
    queues = []
    for source in sorted(by_source):
        pool = by_source[source]
        rng.shuffle(pool)
        queues.append(pool)
    chosen: list[Entry] = []
    while len(chosen) < size and any(queues):
        for q in queues:
            if q and len(chosen) < size:
                chosen.append(q.pop())
    return chosen + [e for e in entries if e.split == split and e.is_sheet]


def summary(entries: list[Entry]) -> list[tuple[str, str, int, int, int, float]]:
    """(source, split, packs, images, images with partial alpha, their share) per source and
    split, then per split over all sources ("all")."""
    packs: dict[tuple[str, str], set[str]] = defaultdict(set)
    images: Counter[tuple[str, str]] = Counter()
    partial: Counter[tuple[str, str]] = Counter()
    for e in entries:
        for key in ((e.source, e.split), ("all", e.split)):
            packs[key].add(f"{e.source}/{e.pack}")
            images[key] += 1
            partial[key] += e.partial_alpha
    return [
        (src, split, len(packs[src, split]), images[src, split], partial[src, split],
         partial[src, split] / max(1, images[src, split]))
        for src in [*SOURCES, "all"]
        for split in SPLITS
    ]  # fmt: skip


def main() -> int:
    entries = all_entries()
    print(f"{'source':14} {'split':10} {'packs':>5} {'images':>6} {'>5% partly transparent':>24}")
    for src, split, n_packs, n, n_partial, share in summary(entries):
        print(f"{src:14} {split:10} {n_packs:5} {n:6} {n_partial:9} ({share:6.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
