"""Patch fingerprints and paste grids on real pixel art (Dungeon Crawl cells)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ogasearch.embed.patches import MAX_PER_IMAGE, fingerprints, image_patches, patches
from ogasearch.match.regions import find_grids
from support.datasets import CRAWL_TILES

CRAWL = CRAWL_TILES.path
pytestmark = pytest.mark.usefixtures("crawl_tiles")


def cell(atlas: str, index: int) -> Image.Image:
    a = np.asarray(Image.open(CRAWL / f"{atlas}.png").convert("RGBA"))
    per_row = a.shape[1] // 32
    y, x = divmod(index, per_row)
    return Image.fromarray(a[y * 32 : y * 32 + 32, x * 32 : x * 32 + 32].copy())


def up(img: Image.Image, k: int) -> Image.Image:
    return img.resize((img.width * k, img.height * k), Image.Resampling.NEAREST)


@pytest.fixture(scope="module")
def sprite() -> Image.Image:
    return cell("player", 3)


def test_a_sprite_keeps_its_fingerprints_in_a_scene_and_in_a_crop(sprite: Image.Image) -> None:
    own = set(fingerprints(sprite))
    assert 8 <= len(own) <= MAX_PER_IMAGE
    scene = Image.open(CRAWL / "title_firemage.png").convert("RGBA").crop((0, 0, 160, 120))
    scene.alpha_composite(sprite, (37, 21))
    found = image_patches(scene)
    assert own <= set(found.hashes.tolist())  # every fingerprint, wherever the sprite sits
    # and the positions say where: the shift shared by the patches is the paste offset
    own_patches = image_patches(sprite)
    shifts = {
        (int(fy) - int(y), int(fx) - int(x))
        for h, y, x in zip(own_patches.hashes, own_patches.ys, own_patches.xs, strict=True)
        for fh, fy, fx in zip(found.hashes, found.ys, found.xs, strict=True)
        if fh == h
    }
    assert (21, 37) in shifts
    w, h = sprite.size
    crop = set(fingerprints(sprite.crop((3, 2, w - 1, h - 2))))
    assert len(own & crop) >= len(own) // 2


def test_flat_and_transparent_patches_are_not_fingerprints() -> None:
    flat = np.full((20, 20, 4), 200, dtype=np.uint8)
    flat[..., 3] = 255
    assert len(patches(flat)) == 0  # one colour
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (40, 40, 4)).astype(np.uint8)
    noisy[..., 3] = 255
    assert len(patches(noisy)) > 0
    noisy[..., 3] = 254  # nothing fully opaque: what shows through is not the art's
    assert len(patches(noisy)) == 0


def test_other_art_shares_few_fingerprints(sprite: Image.Image) -> None:
    own = set(fingerprints(sprite))
    for index in (10, 40, 90):
        assert len(own & set(fingerprints(cell("main", index)))) <= 1


def test_the_sprite_grid_is_found_under_a_floor_grid(sprite: Image.Image) -> None:
    floor = Image.new("RGBA", (6 * 32, 5 * 32))
    for i in range(30):
        floor.paste(cell("floor", 5 + i), ((i % 6) * 32, (i // 6) * 32))
    scene = up(floor, 2).crop((1, 1, 321, 241))  # floor grid: k 2, phase (1, 1)
    scene.alpha_composite(up(sprite, 3), (100, 50))  # sprite grid: k 3, phase (100 % 3, 50 % 3)
    grids = find_grids(np.asarray(scene.convert("RGB")))
    assert grids[0] == (2, 1, 1)
    assert (3, 100 % 3, 50 % 3) in grids[1:]
