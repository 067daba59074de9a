"""The multi-path matcher: a query image in, ranked ``(id, score, path)`` out.

Written against small interfaces so the same code runs on an in-memory corpus (the quality
benchmark, tests) and on the product's catalog + vector index:

* ``VectorSearch``: ``search(queries (n, d), k, tiles=None) -> [[(id, cosine), ...], ...]``,
  exactly ``ogasearch.index.VectorIndex.search``;
* ``HashLookup``: ``lookup(kind, value) -> [ids]`` for ``kind`` "canonical"
  (``images.canonical_sha256``) and "structure" (``images.structure_sha256``);
* ``PixelSource`` (optional): ``canonical_images(ids) -> {id: canonical RGBA}`` for pixel
  verification; without it the verification step is skipped.

Paths, strongest first (a result keeps the strongest path that found it). The query is
canonicalised once (``embed.preprocess.canonicalise``) and searched as several views: as given,
mirrored, and, when a flat background was removed, with that background kept.

1. ``exact``: a view's canonical pixels hash equal to an indexed image's (copies, upscales,
   flattenings, mirror images).
2. ``near``: a view's colour-index pattern equals an indexed image's (a recolouring: hue shift,
   palette swap), or pixel verification (``verify.pixel_similarity`` >= ``verify_min``) finds
   the view inside a candidate's canonical pixels (JPEG copies, crops, changed backgrounds).
3. ``vector``: cosine similarity of the views' feature vectors.
4. ``region``: for scene-like queries (an opaque picture whose best whole-image score is below
   ``region_below``), art cut out on its own pixel grid (``regions.candidate_regions``) is
   embedded and searched; candidates found that way are then looked for pixel by pixel in the
   scene (``verify.scene_similarity``), and those found rank with the near-duplicates.

Ranking is by tier (exact; same colour pattern; pixel-verified near-duplicates and regions;
then vector and region) and, within a tier, by score: the best cosine or pixel similarity
seen for the id, minus small penalties for mirrored and background-kept views (so that the
query as given wins a tie with the mirror image of a sprite, which tile sets often hold too);
1.0 for exact matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

from ogasearch.embed.extractors import FeatureExtractor, l2_normalise
from ogasearch.embed.preprocess import (
    canonicalise,
    flip,
    pixel_hash,
    prepare_canonical,
    structure_hash,
)
from ogasearch.search.regions import Region, candidate_regions, looks_like_scene
from ogasearch.search.verify import pixel_similarity, scene_similarity

TileFilter = Literal["only", "exclude"] | None
Hit = tuple[int, float]
Path = Literal["exact", "near", "vector", "region"]
TIERS: dict[str, int] = {"exact": 4, "near": 2, "vector": 1, "region": 1}
STRUCTURE_TIER = 3  # a recolouring (same colour-index pattern) beats a pixel-verified match


class VectorSearch(Protocol):
    def search(
        self, queries: npt.ArrayLike, k: int, tiles: TileFilter = None
    ) -> list[list[Hit]]: ...


class HashLookup(Protocol):
    def lookup(self, kind: str, value: str) -> list[int]: ...


class PixelSource(Protocol):
    """Canonical RGBA images of indexed ids (the product opens them from the store and
    canonicalises them; a tile is its box cut from its sheet). Missing ids are left out."""

    def canonical_images(self, ids: Sequence[int]) -> dict[int, Image.Image]: ...


@dataclass(frozen=True)
class Match:
    id: int
    score: float
    path: Path


@dataclass
class MatchConfig:
    """Knobs of the matcher (defaults chosen on the quality benchmark, see docs/benchmarks.md)."""

    mirror: bool = True  # also search with the query's mirror image
    hashes: bool = True  # exact and structure hash paths
    regions: bool = True  # region path for scene-like queries
    # region path runs when the best whole-image score is below this (a good whole-image
    # match means the query is the sprite itself, not a scene containing it)
    region_below: float = 0.9
    region_penalty: float = 0.0  # subtracted from region scores before fusion
    # subtracted from matches found through the mirror image: a tile set often holds both a
    # sprite and its mirror, and the query as given must win that tie
    mirror_penalty: float = 0.005
    kept_penalty: float = 0.002  # for matches of the query with its flat background kept
    pool: int = 50  # neighbours fetched per query vector (>= k)
    verify_top: int = 30  # candidates checked pixel by pixel (0: no verification)
    verify_min: float = 0.9  # pixel similarity that makes a candidate a near-duplicate


@dataclass
class _Fused:
    best: dict[int, tuple[int, float, str]] = field(default_factory=dict)

    def add(self, ident: int, score: float, path: str, tier: int | None = None) -> None:
        tier = TIERS[path] if tier is None else tier
        old = self.best.get(ident)
        if old is None or (tier, score) > (old[0], old[1]):
            self.best[ident] = (tier, score, path)

    def ranked(self, k: int) -> list[Match]:
        items = sorted(self.best.items(), key=lambda kv: (kv[1][0], kv[1][1]), reverse=True)
        return [Match(i, float(s), p) for i, (_, s, p) in items[:k]]  # type: ignore[arg-type]


class Matcher:
    """Runs every path for a query and fuses the results (see module docstring)."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        vectors: VectorSearch,
        hashes: HashLookup | None = None,
        config: MatchConfig | None = None,
        pixels: PixelSource | None = None,
    ) -> None:
        self.extractor = extractor
        self.vectors = vectors
        self.hashes = hashes
        self.config = config or MatchConfig()
        self.pixels = pixels

    def search(self, img: Image.Image, k: int = 10, tiles: TileFilter = None) -> list[Match]:
        cfg = self.config
        canon = canonicalise(img)
        # views of the query, each with a penalty: as given, mirrored, and (when a flat
        # background was removed) with the background kept
        probes = [(canon.image, 0.0)]
        if canon.kept is not None:
            probes.append((canon.kept, cfg.kept_penalty))
        if cfg.mirror:
            probes += [(flip(v), p + cfg.mirror_penalty) for v, p in probes]
        views = [v for v, _ in probes]
        penalties = [p for _, p in probes]
        fused = _Fused()
        size = self.extractor.input_size
        vecs = self.extractor.embed(np.stack([prepare_canonical(v, size) for v in views]))
        vector_hits = self.vectors.search(vecs, max(k, cfg.pool), tiles)
        vector_score: dict[int, float] = {}
        for hits, penalty in zip(vector_hits, penalties, strict=True):
            for ident, score in hits:
                vector_score[ident] = max(score - penalty, vector_score.get(ident, -1.0))
                fused.add(ident, score - penalty, "vector")
        if cfg.hashes and self.hashes is not None:
            for view, penalty in probes:
                for ident in self.hashes.lookup("canonical", pixel_hash(view)):
                    fused.add(ident, 1.0 - penalty, "exact")
                pattern = structure_hash(view)
                if pattern is not None:
                    for ident in self.hashes.lookup("structure", pattern):
                        score = vector_score.get(ident, 0.0) - penalty
                        fused.add(ident, score, "near", tier=STRUCTURE_TIER)
        best = max(vector_score.values(), default=0.0)
        regions: list[Region] = []
        if cfg.regions and best < cfg.region_below and looks_like_scene(canon):
            regions = self._search_regions(img, fused, max(k, cfg.pool), tiles)
        if self.pixels is not None and cfg.verify_top > 0:
            self._verify(probes, regions, fused)
        return fused.ranked(k)

    def _verify(
        self, probes: list[tuple[Image.Image, float]], regions: list[Region], fused: _Fused
    ) -> None:
        """Promote candidates whose pixels hold a view of the query ("near") or appear in
        the scene where a region was cut out ("region", ranked with the near-duplicates)."""
        assert self.pixels is not None
        cfg = self.config
        # for a scene, the candidates are what its regions found (the whole scene's own
        # neighbours are noise); otherwise the best candidates of every path but "exact"
        wanted = ("region",) if regions else ("vector", "near")
        ranked = [m for m in fused.ranked(len(fused.best)) if m.path in wanted]
        ids = [m.id for m in ranked[: cfg.verify_top * (2 if regions else 1)]]
        images = self.pixels.canonical_images(ids)
        for ident in ids:
            cand = images.get(ident)
            if cand is None:
                continue
            if regions:
                views = [(cand, 0.0), (flip(cand), cfg.mirror_penalty)]
                sim = max(
                    scene_similarity(v, r.scene, r.box) - pen for r in regions for v, pen in views
                )
                if sim >= cfg.verify_min:
                    fused.add(ident, sim, "region", tier=TIERS["near"])
                continue
            sim = max((pixel_similarity(p, cand) - pen for p, pen in probes), default=0.0)
            if sim >= cfg.verify_min:
                fused.add(ident, sim, "near")

    def _search_regions(
        self, img: Image.Image, fused: _Fused, pool: int, tiles: TileFilter
    ) -> list[Region]:
        regions = candidate_regions(img)
        if not regions:
            return []
        size = self.extractor.input_size
        views: list[Image.Image] = []
        for region in regions:
            views.append(region.image)
            if self.config.mirror:
                views.append(flip(region.image))
        vecs = self.extractor.embed(np.stack([prepare_canonical(v, size) for v in views]))
        for hits in self.vectors.search(vecs, pool, tiles):
            for ident, score in hits:
                fused.add(ident, score - self.config.region_penalty, "region")
        if self.hashes is not None and self.config.hashes:
            for view in views:
                for ident in self.hashes.lookup("canonical", pixel_hash(view)):
                    fused.add(ident, 1.0, "exact")
        return regions


# --- in-memory implementations (benchmark, tests, small corpora) ------------------------------


class InMemoryVectors:
    """Exact (brute-force) cosine search over a matrix; same ``search`` as ``VectorIndex``."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._ids = np.zeros(0, dtype=np.int64)
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._tile = np.zeros(0, dtype=bool)

    def add(
        self, ids: npt.ArrayLike, vectors: npt.ArrayLike, is_tile: npt.ArrayLike | None = None
    ) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vectors = l2_normalise(np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim))
        tile = np.zeros(ids.size, bool) if is_tile is None else np.asarray(is_tile, dtype=bool)
        keep = ~np.isin(self._ids, ids)
        self._ids = np.concatenate([self._ids[keep], ids])
        self._vectors = np.concatenate([self._vectors[keep], vectors])
        self._tile = np.concatenate([self._tile[keep], tile])

    def __len__(self) -> int:
        return int(self._ids.size)

    def search(self, queries: npt.ArrayLike, k: int, tiles: TileFilter = None) -> list[list[Hit]]:
        q = l2_normalise(np.asarray(queries, dtype=np.float32).reshape(-1, self.dim))
        mask = np.ones(self._ids.size, bool)
        if tiles == "only":
            mask = self._tile
        elif tiles == "exclude":
            mask = ~self._tile
        ids, vectors = self._ids[mask], self._vectors[mask]
        if ids.size == 0:
            return [[] for _ in range(q.shape[0])]
        scores = q @ vectors.T
        k = min(k, ids.size)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out: list[list[Hit]] = []
        for row, cand in zip(scores, top, strict=True):
            order = cand[np.argsort(-row[cand], kind="stable")]
            out.append([(int(ids[j]), float(row[j])) for j in order])
        return out


class InMemoryPixels:
    """``PixelSource`` over a dictionary of canonical images."""

    def __init__(self, images: dict[int, Image.Image] | None = None) -> None:
        self.images = dict(images or {})

    def canonical_images(self, ids: Sequence[int]) -> dict[int, Image.Image]:
        return {i: self.images[i] for i in ids if i in self.images}


class InMemoryHashes:
    """``HashLookup`` over dictionaries."""

    def __init__(self) -> None:
        self._maps: dict[str, dict[str, list[int]]] = {}

    def add(self, ident: int, kind: str, value: str | None) -> None:
        if value is not None:
            self._maps.setdefault(kind, {}).setdefault(value, []).append(ident)

    def add_many(self, ids: Iterable[int], kind: str, values: Sequence[str | None]) -> None:
        for ident, value in zip(ids, values, strict=True):
            self.add(ident, kind, value)

    def lookup(self, kind: str, value: str) -> list[int]:
        return list(self._maps.get(kind, {}).get(value, ()))
