"""Kenney's CC0 sprites bundled in ``sample/kenney/``, and the ways the sample pages use them:
the files as bytes or images, sprites as archive entries, a montage preview, a truncated PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources
from io import BytesIO

from PIL import Image

from ogasearch.localsite import imaging, packing
from ogasearch.localsite.packing import Entry

SAMPLE_ROOT = resources.files("ogasearch.localsite") / "sample"


@cache
def sprite_bytes(path: str) -> bytes:
    """A committed Kenney file, by its path under ``sample/kenney/``."""
    return (SAMPLE_ROOT / "kenney" / path).read_bytes()


def sprite(path: str) -> Image.Image:
    image = Image.open(BytesIO(sprite_bytes(path)))
    image.load()
    return image


def kenney_licence() -> bytes:
    return sprite_bytes("License.txt")


def entries(folder: str, paths: Sequence[str]) -> list[Entry]:
    """Sprites as archive entries under ``folder/``, keeping their file names."""
    return [Entry(f"{folder}/{path.rsplit('/', 1)[-1]}", sprite_bytes(path)) for path in paths]


def preview(paths: Sequence[str], columns: int, factor: int = 1) -> bytes:
    images = [imaging.upscale(sprite(p), factor) if factor > 1 else sprite(p) for p in paths]
    return packing.png(
        imaging.montage(images, columns, spacing=4, margin=4, background=(40, 44, 52, 255))
    )


def broken_png(path: str) -> bytes:
    data = sprite_bytes(path)
    return packing.truncated(data, len(data) * 3 // 5)


ADVENTURER = "animated_characters/female_adventurer/femaleAdventurer_"
WALK = [f"{ADVENTURER}walk{i}.png" for i in range(8)]
ADVENTURER_ALL = [
    f"{ADVENTURER}{pose}.png"
    for pose in ("climb0", "climb1", "fall", "idle", "jump", *(f"walk{i}" for i in range(8)))
]
ALIEN = [
    f"alien/alienBlue_{pose}.png"
    for pose in ("climb1", "climb2", "fall", "front", "jump", "walk1", "walk2")
]
PLATFORMER_SINGLES = [
    f"tiles/{t}.png"
    for t in ("grass", "grassMid", "grassLeft", "grassRight", "dirt", "boxCrate", "water", "bush")
]
ITEMS = [
    f"items/{i}.png"
    for i in (
        "coinGold",
        "coinSilver",
        "coinBronze",
        "gemBlue",
        "gemGreen",
        "gemRed",
        "gemYellow",
        "keyBlue",
        "keyRed",
        "star",
    )
]
