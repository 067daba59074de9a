"""The labelled set for sheet detection: which pictures are sprite sheets, and their cells.

Every sample comes from freely licensed art on this machine (Debian's crawl-tiles-data, CC0;
the Kenney CC0 art and the CC0 backgrounds the ``arcade`` package ships, with their licence
files) or is drawn here from a seed (effects, text), so the set is rebuilt the same anywhere.

Classes (``Sample.kind``) and their truth:

* sheets: ``atlas`` (a real atlas; cells from the source's cell size, or unknown for Crawl's
  packed atlases, which then count for detection only), ``gutters`` (single sprites composed
  with margin and spacing), ``dense`` (tiles side by side, no gutter), ``opaque`` (sprites on
  an opaque background colour), ``strip`` (the frames of one animation in a row);
* not sheets: ``sprite`` (a big single sprite), ``scene`` (sprites overlapping on a ground),
  ``effect`` (soft alpha: glows, sparks, smoke), ``logo`` (logos and text), ``portrait``
  (illustrations, title screens).

Strips of equal frames are labelled sheets: each frame is a separate picture that a user
may hold on its own (docs/benchmarks.md says why; ``eval_sheets.py`` also scores them the
other way).

The set is split by source pack: ``TUNING`` packs are what the rules were developed on,
``VALIDATION`` packs were only ever measured.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ogasearch.tiles.grid import TileBox
from sheet_art import CLEAR, compose, glow, grid_cells, grid_truth, scene, smoke, sparks, text

CRAWL = Path("/usr/share/crawl/dat/tiles")  # Debian's crawl-tiles-data (CC0)

SHEET_KINDS = ("atlas", "gutters", "dense", "opaque", "strip")
OTHER_KINDS = ("sprite", "scene", "effect", "logo", "portrait")
TUNING = ("crawl-atlases", "crawl-titles", "kenney-platformer", "fx-light")
VALIDATION = (
    "kenney-spritesheets",
    "kenney-characters",
    "kenney-tanks",
    "kenney-space",
    "kenney-cards",
    "arcade-backgrounds",
    "fx-smoke",
    "text",
)


@dataclass(frozen=True)
class Sample:
    name: str
    pack: str
    kind: str
    image: Image.Image
    cells: tuple[TileBox, ...] | None = None  # true cells of a sheet; None: unknown

    @property
    def sheet(self) -> bool:
        return self.kind in SHEET_KINDS


def kenney() -> Path:
    """The arcade package's bundled images, found without importing arcade (OpenGL)."""
    spec = importlib.util.find_spec("arcade")
    if spec is None or spec.origin is None:
        raise SystemExit("the arcade package is missing: pip install -e '.[test]'")
    return Path(spec.origin).parent / "resources" / "assets" / "images"


def _open(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGBA")


def _file(path: Path) -> Image.Image:
    """A whole file as the tiles stage opens it: its own mode and format (JPEG matters)."""
    with Image.open(path) as im:
        im.load()
        return im


def _load(paths: list[Path]) -> list[Image.Image]:
    return [_open(p) for p in sorted(paths)]


def _upscale(img: Image.Image, factor: int) -> Image.Image:
    return img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)


def _sheet(name: str, pack: str, kind: str, built: tuple[Image.Image, list[TileBox]]) -> Sample:
    return Sample(name, pack, kind, built[0], tuple(built[1]))


def _crawl() -> Iterator[Sample]:
    floor, wall = _open(CRAWL / "floor.png"), _open(CRAWL / "wall.png")
    yield Sample("floor.png", "crawl-atlases", "atlas", floor, tuple(grid_truth(floor, 32)))
    yield Sample("wall.png", "crawl-atlases", "atlas", wall, tuple(grid_truth(wall, 32)))
    for name in ("main.png", "feat.png", "gui.png", "player.png", "icons.png"):
        yield Sample(name, "crawl-atlases", "atlas", _open(CRAWL / name))
    for seed in range(4):
        tiles = grid_cells(floor if seed % 2 else wall, 32, 24, seed)
        yield _sheet(f"dense-{seed}", "crawl-atlases", "dense", compose(tiles, 8))
        yield _sheet(
            f"gutters-{seed}",
            "crawl-atlases",
            "gutters",
            compose(tiles, 8, margin=seed, spacing=1 + seed),
        )
        bg = ((0, 0, 0, 255), (255, 0, 255, 255))[seed % 2]
        yield _sheet(
            f"opaque-{seed}",
            "crawl-atlases",
            "opaque",
            compose(tiles, 6, margin=2, spacing=2, background=bg),
        )
        ground = grid_cells(floor, 32, 1, 10 + seed)[0]
        props = grid_cells(wall, 32, 6, 20 + seed)
        yield Sample(
            f"scene-{seed}", "crawl-atlases", "scene", scene(ground, (320, 240), props, seed)
        )
    for path in sorted(CRAWL.glob("title_*.png")):
        yield Sample(path.name, "crawl-titles", "portrait", _file(path))
    yield Sample("icon-512", "crawl-titles", "sprite", _open(CRAWL / "stone_soup_icon-512x512.png"))
    for name in ("logo.png", "logosmall.png"):
        yield Sample(name, "crawl-titles", "logo", _open(CRAWL / name))


def _platformer(root: Path) -> Iterator[Sample]:
    pack = "kenney-platformer"
    items = _load([p for p in (root / "items").glob("*.png") if _open(p).size == (128, 128)])
    enemies = _load(list((root / "enemies").glob("*.png")))
    tiles = _load(list((root / "tiles").glob("*.png")))
    solid = [t for t in tiles if t.getchannel("A").getextrema()[0] == 255]
    aliens = _load(list((root / "alien").glob("*.png")))
    for seed in range(3):
        part = items[seed * 8 : seed * 8 + 12]
        yield _sheet(
            f"items-{seed}", pack, "gutters", compose(part, 4, margin=seed * 2, spacing=2 + seed)
        )
        yield _sheet(
            f"enemies-{seed}",
            pack,
            "opaque",
            compose(
                enemies[seed * 4 : seed * 4 + 10],
                5,
                spacing=4,
                background=((255, 0, 255, 255), (70, 110, 160, 255), (0, 0, 0, 255))[seed],
            ),
        )
        yield _sheet(f"tiles-{seed}", pack, "dense", compose(solid[seed * 4 : seed * 4 + 12], 6))
        yield _sheet(f"blocks-{seed}", pack, "dense", compose(tiles[seed * 30 : seed * 30 + 30], 6))
        sky = ((120, 180, 230, 255), (40, 40, 60, 255), (200, 220, 255, 255))[seed]
        yield Sample(
            f"level-{seed}",
            pack,
            "scene",
            scene(sky, (640, 400), [*tiles[seed::9], *enemies[seed::3]], seed),
        )
        yield Sample(
            f"level-tiled-{seed}",
            pack,
            "scene",
            scene(solid[seed], (512, 384), enemies[seed::4] + items[seed::5], seed),
        )
    for i, sprite in enumerate(aliens[:4] + enemies[:3] + items[:3]):
        yield Sample(f"big-{i}", pack, "sprite", _upscale(sprite, 1 + i % 3))
    yield _sheet("alien-poses", pack, "strip", compose(aliens, len(aliens)))


def _tuning_fx() -> Iterator[Sample]:
    for seed in range(6):
        yield Sample(f"glow-{seed}", "fx-light", "effect", glow(64 + 32 * seed, seed))
        yield Sample(f"sparks-{seed}", "fx-light", "effect", sparks(96 + 32 * seed, seed))


def _spritesheets(root: Path) -> Iterator[Sample]:
    pack = "kenney-spritesheets"
    for name, pitch in (("tiles.png", 128), ("number_sheet.png", 16), ("explosion.png", 256)):
        img = _open(root / "spritesheets" / name)
        yield Sample(name, pack, "atlas", img, tuple(grid_truth(img, pitch)))


def _characters(root: Path) -> Iterator[Sample]:
    pack = "kenney-characters"
    folders = sorted(p for p in (root / "animated_characters").iterdir() if p.is_dir())
    idles = []
    for folder in folders:
        frames = _load(list(folder.glob("*_walk*.png")))
        yield _sheet(f"{folder.name}-walk", pack, "strip", compose(frames, len(frames)))
        idle = _load(list(folder.glob("*_idle.png")))[0]
        idles += (
            _load(list(folder.glob("*_jump.png"))) + _load(list(folder.glob("*_fall.png"))) + [idle]
        )
        yield Sample(f"{folder.name}-idle", pack, "sprite", _upscale(idle, 2))
    yield _sheet("poses", pack, "gutters", compose(idles, 6, margin=4, spacing=4))
    yield _sheet("poses-dense", pack, "dense", compose(idles[:12], 4))


def _tanks(root: Path) -> Iterator[Sample]:
    pack = "kenney-tanks"
    folder = root / "topdown_tanks"
    ground = _load(list(folder.glob("tile*.png")))
    props = _load([p for p in folder.glob("*.png") if not p.name.startswith("tile")])
    bodies = [p for p in props if 30 <= p.width <= 90]
    for seed in range(3):
        yield _sheet(
            f"ground-{seed}", pack, "dense", compose(ground[seed * 12 : seed * 12 + 18], 6)
        )
        yield _sheet(
            f"props-{seed}",
            pack,
            "gutters",
            compose(bodies[seed * 5 : seed * 5 + 10], 5, margin=1, spacing=1 + seed),
        )
        yield Sample(
            f"battle-{seed}", pack, "scene", scene(ground[seed], (512, 384), bodies[seed::3], seed)
        )
    yield Sample("huge-tank", pack, "sprite", _open(folder / "tankBody_huge_outline.png"))


def _space(root: Path) -> Iterator[Sample]:
    pack = "kenney-space"
    ships = _load(list((root / "space_shooter").glob("*.png")))
    ships = [s for s in ships if s.width >= 16 and s.height >= 16]
    yield _sheet(
        "ships-black",
        pack,
        "opaque",
        compose(ships, 5, margin=2, spacing=3, background=(0, 0, 0, 255)),
    )
    yield _sheet("ships", pack, "gutters", compose(ships, 6, spacing=6))
    for seed in range(3):
        yield Sample(
            f"battle-{seed}", pack, "scene", scene((0, 0, 0, 255), (800, 600), ships[seed::2], seed)
        )
    for i, ship in enumerate(ships[:4]):
        yield Sample(f"ship-{i}", pack, "sprite", _upscale(ship, 2 + i % 2))


def _cards(root: Path) -> Iterator[Sample]:
    pack = "kenney-cards"
    cards = _load(list((root / "cards").glob("*.png")))
    yield _sheet("deck", pack, "gutters", compose(cards[:26], 13, margin=2, spacing=4))
    yield _sheet("deck-dense", pack, "dense", compose(cards[26:52], 13))
    for i in range(0, 60, 12):
        yield Sample(f"card-{i}", pack, "sprite", cards[i])


def _backgrounds(root: Path) -> Iterator[Sample]:
    pack = "arcade-backgrounds"
    for folder in ("backgrounds", "cybercity_background", "miami_synth_parallax/layers"):
        for path in sorted((root / folder).glob("*.*")):
            if path.suffix in (".png", ".jpg"):
                yield Sample(f"{folder}/{path.name}", pack, "scene", _file(path))
    car = _load(list((root / "miami_synth_parallax" / "car").glob("car-running*.png")))
    yield _sheet("car-strip", pack, "strip", compose(car, len(car)))


def _validation_fx() -> Iterator[Sample]:
    for seed in range(6):
        yield Sample(f"smoke-{seed}", "fx-smoke", "effect", smoke(96 + 32 * seed, 100 + seed))
    lines = ["GAME OVER", "Dungeon Quest", "PRESS START", "Level 3 - The Caves", "Score 004250"]
    for i, words in enumerate(lines):
        bg = ((0, 0, 0, 255), CLEAR, (30, 60, 90, 255))[i % 3]
        yield Sample(f"text-{i}", "text", "logo", text(words, 24 + 8 * i, (255, 220, 90, 255), bg))


BUILDERS: tuple[Callable[[], Iterator[Sample]], ...] = (
    _crawl,
    lambda: _platformer(kenney()),
    _tuning_fx,
    lambda: _spritesheets(kenney()),
    lambda: _characters(kenney()),
    lambda: _tanks(kenney()),
    lambda: _space(kenney()),
    lambda: _cards(kenney()),
    lambda: _backgrounds(kenney()),
    _validation_fx,
)


def build_set() -> list[Sample]:
    """Every sample of the labelled set, tuning packs first."""
    samples = [s for build in BUILDERS for s in build()]
    unknown = {s.pack for s in samples} - set(TUNING) - set(VALIDATION)
    assert not unknown, f"packs in neither split: {unknown}"
    return samples
