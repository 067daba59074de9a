"""The quality evaluation's dev set (``bench/devset.py``) and the transforms it adds
(``bench/eval_quality.py``): the split is by source pack only and stable, every source feeds
both splits, and each transform makes what it says."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from support.datasets import CHROMIUM_BSU, CRAWL_TILES, KENNEY, MINETEST, TEEWORLDS

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))
import devset  # noqa: E402
import eval_quality  # noqa: E402

sys.path.pop(0)


@pytest.fixture(scope="module")
def entries() -> list[devset.Entry]:
    for dataset in (CRAWL_TILES, KENNEY, TEEWORLDS, CHROMIUM_BSU, MINETEST):
        dataset.require()
    return devset.all_entries()


@pytest.fixture(scope="module")
def partial_sprite(entries: list[devset.Entry]) -> Image.Image:
    """A Chromium B.S.U. sprite with soft edges (more than 5% partly transparent pixels)."""
    return next(e.image for e in entries if e.source == "chromium-bsu" and e.partial_alpha)


def test_split_is_a_function_of_the_pack_alone(entries: list[devset.Entry]) -> None:
    by_pack: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in entries:
        by_pack[e.source, e.pack].add(e.split)
        # another name, other pixels, another category: the same split
        other = replace(e, name="x.png", category="x", image=Image.new("RGBA", (3, 3)))
        assert other.split == e.split == devset.split_of(e.source, e.pack)
    assert all(len(splits) == 1 for splits in by_pack.values())
    # what a selection holds never moves a pack: any size, any seed
    for size, seed in ((60, 0), (600, 1)):
        for split in devset.SPLITS:
            chosen = devset.select(entries, split, size, seed)
            assert chosen and all(by_pack[e.source, e.pack] == {split} for e in chosen)


def test_split_is_stable_across_processes() -> None:
    packs = [("crawl", "main"), ("kenney", "items"), ("chromium-bsu", "enemyAmmo")]
    code = f"import devset; print([devset.split_of(s, p) for s, p in {packs!r}])"
    env = os.environ | {"PYTHONHASHSEED": "12345", "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=BENCH, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str([devset.split_of(s, p) for s, p in packs])


def test_every_source_feeds_both_splits(entries: list[devset.Entry]) -> None:
    rows = devset.summary(entries)
    for source in devset.SOURCES:
        held = {split: n for src, split, _, n, _, _ in rows if src == source}
        assert held["tuning"] > 0 and held["validation"] > 0, source
    assert devset.salt_fits(entries, devset.SALT)
    # the salt is the first that fits, not one picked for its numbers
    n = int(devset.SALT.rsplit("-", 1)[1])
    assert not any(devset.salt_fits(entries, f"devset-{i}") for i in range(n))
    # the new sources bring partial alpha to both splits
    partial = {(src, split): k for src, split, _, _, k, _ in rows}
    assert partial["chromium-bsu", "validation"] > 0 and partial["teeworlds", "validation"] > 0


def test_partial_alpha_share() -> None:
    a = np.zeros((10, 10, 4), np.uint8)
    a[:5, :, 3] = 255
    a[5, :4, 3] = 128  # 4 of 100 pixels partly transparent
    img = Image.fromarray(a)
    assert devset.partial_alpha_share(img) == pytest.approx(0.04)
    a[6, :2, 3] = 1
    assert devset.partial_alpha_share(Image.fromarray(a)) == pytest.approx(0.06)


@pytest.mark.parametrize(
    ("transform", "colour"),
    [("flat_white", (255, 255, 255)), ("flat_black", (0, 0, 0)), ("flat_colour", None)],
)
def test_flattened_sprite_has_no_alpha_and_edges_mix_with_the_colour(
    partial_sprite: Image.Image, transform: str, colour: tuple[int, int, int] | None
) -> None:
    out = eval_quality.TRANSFORM_FNS[transform](random.Random(1), partial_sprite, _ctx())
    assert out.mode == "RGB" and out.size == partial_sprite.size
    src = np.asarray(partial_sprite).astype(int)
    got = np.asarray(out).astype(int)
    alpha = src[..., 3]
    background = got[alpha == 0]
    flat = tuple(background[0])
    assert (background == flat).all()  # one flat colour where the sprite is transparent
    if colour is not None:
        assert flat == colour
    assert (got[alpha == 255] == src[alpha == 255][:, :3]).all()
    edge = (alpha > 0) & (alpha < 255)
    assert edge.mean() > devset.PARTIAL_ALPHA
    expected = (src[..., :3] * alpha[..., None] + np.array(flat) * (255 - alpha[..., None])) / 255
    assert np.abs(got[edge] - expected[edge]).max() <= 2


def test_jpeg_low_is_a_jpeg_of_an_upscale_on_white(partial_sprite: Image.Image) -> None:
    out = eval_quality.TRANSFORM_FNS["jpeg_low"](random.Random(3), partial_sprite, _ctx())
    assert out.format == "JPEG" and out.mode == "RGB"
    k = out.width // partial_sprite.width
    assert 2 <= k <= 4 and out.size == (partial_sprite.width * k, partial_sprite.height * k)
    transparent = np.asarray(partial_sprite.getchannel("A").resize(out.size)) == 0
    assert np.asarray(out)[transparent].mean() > 240  # white where the sprite is not


def test_bilinear_upscale_interpolates(partial_sprite: Image.Image) -> None:
    out = eval_quality.TRANSFORM_FNS["bilinear"](random.Random(0), partial_sprite, _ctx())
    assert out.size == (partial_sprite.width * 2, partial_sprite.height * 2)
    nearest = partial_sprite.resize(out.size, Image.Resampling.NEAREST)
    assert not np.array_equal(np.asarray(out), np.asarray(nearest))


def test_dense_screenshot_is_the_sprite_among_others_at_its_scale(
    entries: list[devset.Entry],
) -> None:
    sprites = [e.image for e in entries if e.source == "minetest"][:40]
    target, others = sprites[0], sprites[1:]
    scene, box = eval_quality.dense_screenshot(random.Random(2), target, others, 3)
    content = target.crop(target.getchannel("A").getbbox())
    assert scene.mode == "RGB"
    assert scene.size == (3 * 3 * content.width, 3 * 3 * content.height)  # about 3x the sprite
    x0, y0, x1, y1 = box
    assert (x1 - x0, y1 - y0) == (3 * content.width, 3 * content.height)
    big = content.resize((x1 - x0, y1 - y0), Image.Resampling.NEAREST)
    opaque = np.asarray(big.getchannel("A")) == 255
    inside = np.asarray(scene.crop(box))
    assert (inside[opaque] == np.asarray(big)[..., :3][opaque]).all()
    # around it: other sprites, densely (many colours, no flat background left)
    around = np.asarray(scene).copy()
    around[y0:y1, x0:x1] = 0
    colours = {tuple(c) for c in around.reshape(-1, 3)}
    assert len(colours) > 50


def test_flat_transforms_take_only_partial_alpha_sprites(entries: list[devset.Entry]) -> None:
    items = eval_quality.build_corpus(devset.select(entries, "validation", 300, 0))
    pool = eval_quality.eligible(items, "flat_colour")
    assert pool and all(devset.partial_alpha_share(i.image) > devset.PARTIAL_ALPHA for i in pool)
    assert any(i.parent is not None for i in items)  # the split's sheets are cut into tiles


def _ctx() -> eval_quality.Context:
    return eval_quality.Context(titles=[], floors=[], sprites=[])
