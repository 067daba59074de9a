"""Preprocessing invariances on real pixel art (Dungeon Crawl tiles, Debian crawl-tiles-data)."""

from __future__ import annotations

import functools
import io
import random

import numpy as np
import pytest
from PIL import Image

from ogasearch.embed.preprocess import (
    BACKGROUND,
    IMAGENET_MEAN,
    IMAGENET_STD,
    canonical,
    canonicalise,
    flip,
    pixel_hash,
    prepare,
    structure_hash,
    to_square,
)
from support.datasets import CRAWL_TILES

CRAWL = CRAWL_TILES.path
pytestmark = pytest.mark.usefixtures("crawl_tiles")


@functools.cache
def _atlas_cells(atlas: str) -> tuple[np.ndarray, ...]:
    a = np.asarray(Image.open(CRAWL / f"{atlas}.png").convert("RGBA"))
    cells = []
    for y in range(0, a.shape[0] - 31, 32):
        for x in range(0, a.shape[1] - 31, 32):
            c = a[y : y + 32, x : x + 32]
            if (c[..., 3] > 0).sum() >= 100 and len(np.unique(c.reshape(-1, 4), axis=0)) >= 8:
                cells.append(c.copy())
    return tuple(cells)


def crawl_cells(atlas: str, n: int, seed: int = 0) -> list[Image.Image]:
    """n distinct, non-trivial 32x32 cells of a Crawl atlas."""
    cells = list(_atlas_cells(atlas))
    random.Random(seed).shuffle(cells)
    return [Image.fromarray(c) for c in cells[:n]]


def upscale(img: Image.Image, k: int) -> Image.Image:
    return img.resize((img.width * k, img.height * k), Image.Resampling.NEAREST)


def on_white(img: Image.Image) -> Image.Image:
    base = Image.new("RGBA", img.size, (255, 255, 255, 255))
    return Image.alpha_composite(base, img).convert("RGB")


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def test_nearest_upscale_is_undone_exactly_at_any_factor_and_offset() -> None:
    rng = random.Random(1)
    for cell in crawl_cells("main", 12) + crawl_cells("player", 6):
        want = pixel_hash(canonical(cell))
        for k in (2, 3, 5, 8, 16):
            big = upscale(cell, k)
            # transparent margins of any width (not a multiple of k) must not matter
            extra = rng.randint(1, 9)
            pad = Image.new("RGBA", (big.width + extra, big.height + 7))
            pad.paste(big, (rng.randint(0, extra), 3))
            got = canonicalise(pad)
            assert got.factor == k
            assert pixel_hash(got.image) == want


def test_repeated_upscales_compose() -> None:
    cell = crawl_cells("main", 1, seed=3)[0]
    assert pixel_hash(canonical(upscale(upscale(cell, 8), 6))) == pixel_hash(canonical(cell))


def test_one_x_art_is_left_alone() -> None:
    cells = crawl_cells("main", 40) + crawl_cells("floor", 20) + crawl_cells("wall", 20)
    factors = [canonicalise(c).factor for c in cells]
    assert factors.count(1) == len(factors)


@pytest.mark.parametrize("quality", [60, 75, 90])
def test_upscale_is_found_under_jpeg_noise(quality: int) -> None:
    cells = crawl_cells("main", 30, seed=quality)
    right = 0
    for i, cell in enumerate(cells):
        k = 2 + i % 5
        query = jpeg(on_white(upscale(cell, k)), quality)
        got = canonicalise(query)
        want = canonical(cell).size
        size_ok = all(abs(a - b) <= 2 for a, b in zip(got.image.size, want, strict=True))
        right += got.factor == k and size_ok
    assert right >= 0.85 * len(cells)  # measured: 0.9-1.0 (q60-q90) on 90 cells


def test_jpeg_of_one_x_art_is_not_taken_for_an_upscale() -> None:
    cells = crawl_cells("floor", 20, seed=5) + crawl_cells("main", 20, seed=5)
    factors = [canonicalise(jpeg(on_white(c), 70)).factor for c in cells]
    assert factors.count(1) >= 0.85 * len(cells)  # measured: 0.93 on 180 cells


def test_flat_background_is_removed_like_transparency() -> None:
    """Sprites with hard edges flattened onto white or magenta come back transparent: same
    box, same pixels, except holes enclosed by the sprite (the border flood fill cannot tell
    them from the sprite's own white or magenta)."""
    cells = crawl_cells("main", 80, seed=7)

    def border_clear(c: Image.Image) -> float:
        a = np.asarray(c)[..., 3]
        return float(np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]]).__eq__(0).mean())

    hard = [
        c
        for c in cells
        if set(np.unique(np.asarray(c)[..., 3])) <= {0, 255} and border_clear(c) > 0.5
    ][:10]
    assert len(hard) >= 5
    exact = 0
    for cell in hard:
        want = np.asarray(canonical(cell))
        for colour in ((255, 255, 255), (255, 0, 255)):
            base = Image.new("RGBA", cell.size, (*colour, 255))
            flat = Image.alpha_composite(base, cell).convert("RGB")
            got = canonicalise(upscale(flat, 3))
            assert got.background_removed and got.opaque and got.factor == 3
            pixels = np.asarray(got.image)
            assert pixels.shape == want.shape
            assert (pixels == want).all(axis=-1).mean() > 0.6
            exact += pixel_hash(got.image) == pixel_hash(canonical(cell))
    assert exact >= 2


def test_transparency_is_never_black() -> None:
    cell = crawl_cells("main", 1, seed=11)[0]
    square = np.asarray(to_square(canonical(cell), 128))
    assert tuple(square[0, 0]) == BACKGROUND  # padding
    alpha = np.asarray(canonical(cell).getchannel("A"))
    assert (alpha == 0).any()  # the sprite has holes, and they are grey too:
    x = prepare(cell, 128)
    grey = (np.array(BACKGROUND) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    assert np.allclose(x[:, 0, 0], grey, atol=1e-5)
    black = (0 - IMAGENET_MEAN) / IMAGENET_STD
    assert not np.allclose(x[:, 0, 0], black, atol=1e-3)


def test_prepare_scales_with_nearest_neighbour_only() -> None:
    cell = canonical(crawl_cells("main", 1, seed=13)[0])
    square = to_square(cell, 128)
    colours = {tuple(c) for c in np.asarray(square).reshape(-1, 3)}
    composite = np.asarray(to_square(cell, max(cell.size)))
    assert colours <= {tuple(c) for c in composite.reshape(-1, 3)}  # no blended colours


def test_prepare_shape_and_dtype() -> None:
    x = prepare(crawl_cells("main", 1)[0], 96)
    assert x.shape == (3, 96, 96) and x.dtype == np.float32


def _rgba_reference() -> Image.Image:
    img = Image.new("RGBA", (6, 4), (0, 0, 0, 0))
    img.putpixel((1, 1), (200, 10, 10, 255))
    img.putpixel((2, 1), (10, 200, 10, 255))
    img.putpixel((3, 2), (10, 10, 200, 255))
    return img


def test_modes_palette_grey_16bit_cmyk() -> None:
    ref = _rgba_reference()
    pal = ref.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    index_of_clear = pal.getpixel((0, 0))
    pal.info["transparency"] = index_of_clear
    got = np.asarray(canonical(pal))
    assert got.shape == (2, 3, 4) and got[..., 3].min() == 0  # transparent index honoured

    grey16 = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    assert grey16.mode.startswith("I;16")
    assert np.asarray(canonical(grey16))[0, 0].tolist() == [255, 255, 255, 255]

    la = Image.new("LA", (5, 5), (0, 0))
    la.putpixel((2, 2), (180, 255))
    assert canonical(la).size == (1, 1)
    assert np.asarray(canonical(la))[0, 0].tolist() == [180, 180, 180, 255]

    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # red
    assert np.asarray(canonical(cmyk))[0, 0, :3].tolist() == [255, 0, 0]

    rgb = ref.convert("RGB")
    for img in (rgb, rgb.convert("L"), ref):
        assert canonical(img).mode == "RGBA"


def test_animation_first_frame() -> None:
    cells = crawl_cells("main", 2, seed=17)
    buf = io.BytesIO()
    cells[0].save(buf, "GIF", save_all=True, append_images=[cells[1]], disposal=2)
    gif = Image.open(io.BytesIO(buf.getvalue()))
    gif.seek(1)
    first = canonical(gif)
    gif2 = Image.open(io.BytesIO(buf.getvalue()))
    assert pixel_hash(first) == pixel_hash(canonical(gif2))
    assert first.size == canonical(cells[0]).size


def test_structure_hash_survives_recolouring_and_tells_sprites_apart() -> None:
    cells = crawl_cells("main", 20, seed=19)
    hashes = [structure_hash(canonical(c)) for c in cells]
    assert len(set(hashes)) == len(hashes)
    for cell in cells[:5]:
        a = np.asarray(cell).copy()
        a[..., :3] = 255 - a[..., :3]  # a one-to-one recolouring (negative)
        a[a[..., 3] == 0] = 0
        recoloured = Image.fromarray(a)
        assert structure_hash(canonical(recoloured)) == structure_hash(canonical(cell))
        assert pixel_hash(canonical(recoloured)) != pixel_hash(canonical(cell))


def test_flip_is_a_mirror() -> None:
    cell = canonical(crawl_cells("main", 1, seed=23)[0])
    assert np.array_equal(np.asarray(flip(cell))[:, ::-1], np.asarray(cell))
