"""The multi-path matcher: a query image in, ranked ``(id, score, path)`` out.

Written against small interfaces so the same code runs on an in-memory corpus (the quality
benchmark, tests) and on the product's catalog + vector index:

* ``VectorSearch``: ``search(queries (n, d), k, tiles=None) -> [[(id, cosine), ...], ...]``,
  exactly ``ogasearch.index.VectorIndex.search``;
* ``HashLookup``: ``lookup(kind, value) -> [ids]`` for ``kind`` "canonical"
  (``images.canonical_sha256``) and "structure" (``images.structure_sha256``), and
  ``lookup_patches(hashes) -> [(hash, id)]`` (the patch table, ``index.patches``);
* ``PixelSource`` (optional): ``canonical_images(ids) -> {id: Canonical}`` for pixel
  verification; without it the verification and patch steps are skipped.

Paths, strongest first (a result keeps the strongest path that found it). The query is
canonicalised once (``embed.preprocess.canonicalise``) and searched as several views: as given,
mirrored, and, when a flat background was removed, with that background kept and un-blended
(``embed.preprocess.unblend``: the blends of partly transparent pixels with the flat colour
turned back into transparency, as far as the pixels allow).

1. ``exact``: a view's canonical pixels hash equal to an indexed image's (copies, upscales,
   flattenings, mirror images).
2. ``near``: a view's colour-index pattern equals an indexed image's (a recolouring: hue shift,
   palette swap), or pixel verification (``verify.pixel_similarity`` >= ``verify_min``) finds
   the view inside a candidate's canonical pixels (JPEG copies, crops, changed backgrounds);
   a query on a flat colour is also compared with each candidate flattened on that same
   colour (``verify.flat_form``: partly transparent art keeps its blends, on both sides).
   Candidates are the best of the other paths, the best neighbours of each view, and the
   images sharing the most patch fingerprints (``embed.patches``) with a view.
3. ``vector``: cosine similarity of the views' feature vectors.
4. ``region``: for scene-like queries (an opaque picture whose best whole-image score is below
   ``region_below``), the scene is reduced on each paste grid (``regions.grid_views``); images
   sharing patches with a reduced view are placed where their patches agree and looked for
   pixel by pixel there (``verify.scene_similarity``), and art cut out on a grid
   (``regions.blobs``) is embedded, searched and looked for likewise. Art found this way
   ranks with the near-duplicates, and says where in the query it was found (``Match.box``:
   where it was placed, or the cut-out's box, in the query's own pixels).

Each match also carries the edits the matcher measured between the query and the image
(``search.labels.EDITS``): "upscaled" (the upscale canonicalisation undid), "flipped" (the
mirror view matched), "recoloured" (the colour-index pattern matched), "cropped" (the query
verified inside a larger image), "recompressed" (a lossy query verified pixel by pixel). It
names no edit it did not measure.

Ranking is by tier (exact; same colour pattern; pixel-verified near-duplicates and regions;
then vector and region) and, within a tier, by score: the best cosine or pixel similarity
seen for the id, minus small penalties for mirrored and background-kept views (so that the
query as given wins a tie with the mirror image of a sprite, which tile sets often hold too);
1.0 for exact matches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

from ogasearch.budget import bounded_image, check, optional_stage, shrink_factor
from ogasearch.embed.extractors import FeatureExtractor
from ogasearch.embed.patches import Patches, image_patches, patches
from ogasearch.embed.preprocess import (
    LOSSY_FORMATS,
    Canonical,
    canonicalise,
    flip,
    pixel_hash,
    prepare_canonical,
    structure_hash,
    to_rgba,
    unblend,
)
from ogasearch.index.base import Hit, TileFilter
from ogasearch.match.labels import Edit
from ogasearch.match.ranking import (
    KEPT_PENALTY,
    MIRROR_PENALTY,
    REGION_BELOW,
    REGION_PENALTY,
    STRUCTURE_TIER,
    TIERS,
    UNBLEND_PENALTY,
    VERIFY_MIN,
)
from ogasearch.match.regions import (
    GridView,
    Region,
    blobs,
    grid_views,
    in_picture,
    looks_like_scene,
)
from ogasearch.match.verify import (
    MARGIN,
    MIN_COVER,
    NO_PLACEMENT,
    Placement,
    SceneMatch,
    flat_form,
    flattened_pairs,
    pixel_similarity,
    place,
    scene_similarity,
)

Path = Literal["exact", "near", "vector", "region", "text"]  # how a result was found
# a 1920 x 1080 screenshot is analysed as it is; larger queries are shrunk (budget.bounded_image)
MAX_ANALYSED_PIXELS = 2_100_000
Edits = tuple[Edit, ...]
# A verified view covering less than this share of the image it was found in is called a
# crop of it ("cropped"); above it, the difference is a shifted outline, a changed frame.
# Not measured.
CROPPED_BELOW = 0.9
Box = tuple[int, int, int, int]
# a view of the query: its pixels, the penalty of matches through it, the edits it undoes
Probe = tuple[Image.Image, float, Edits]


class VectorSearch(Protocol):
    def search(
        self, queries: npt.ArrayLike, k: int, tiles: TileFilter = None
    ) -> list[list[Hit]]: ...


class HashLookup(Protocol):
    def lookup(self, kind: str, value: str) -> list[int]: ...

    def lookup_patches(self, hashes: Sequence[int]) -> list[tuple[int, int]]:
        """``(hash, id)`` for every indexed image holding one of these patch fingerprints
        (``embed.patches.fingerprints``); hashes held by very many images may be left out."""
        ...


class PixelSource(Protocol):
    """Canonical forms of indexed ids (the product opens them from the store and
    canonicalises them; a tile is its box cut from its sheet). Missing ids are left out."""

    def canonical_images(self, ids: Sequence[int]) -> dict[int, Canonical]: ...


@dataclass(frozen=True)
class Match:
    id: int
    score: float
    path: Path
    edits: Edits = ()  # what the matcher measured between the query and this image
    # where in the query it was found, (x0, y0, x1, y1) in the query's pixels: art found in
    # a scene (a region match); None when it matched the query as a whole
    box: Box | None = None


@dataclass
class MatchConfig:
    """Knobs of the matcher (defaults chosen on the quality benchmark, see docs/benchmarks.md)."""

    mirror: bool = True  # also search with the query's mirror image
    hashes: bool = True  # exact and structure hash paths
    regions: bool = True  # region path for scene-like queries
    # tiers, penalties and thresholds: see ``match.ranking`` for what each does and why
    region_below: float = REGION_BELOW
    region_penalty: float = REGION_PENALTY
    mirror_penalty: float = MIRROR_PENALTY
    kept_penalty: float = KEPT_PENALTY
    unblend_penalty: float = UNBLEND_PENALTY
    pool: int = 50  # neighbours fetched per query vector (>= k)
    verify_top: int = 30  # candidates checked pixel by pixel (0: no verification)
    verify_min: float = VERIFY_MIN
    verify_per_view: int = 16  # and the best of each view's own neighbours
    patches: bool = True  # patch fingerprint path (needs ``hashes`` and ``pixels``)
    patch_top: int = 20  # candidates with the most shared patches verified per view
    scene_patch_top: int = 60  # per view of a scene (a floor of indexed tiles outvotes a sprite)
    patch_min: int = 2  # fewest shared patches that make a candidate
    # a scene match of fully opaque art (a floor or wall tile) ranks after art with its own
    # silhouette (a sprite): in a screenshot the background is rarely what is looked for
    opaque_penalty: float = 0.05
    # a query with more pixels is shrunk by a whole factor before it is analysed (the cost
    # of canonicalising and of the region path grows with pixels; 0: no bound)
    max_pixels: int = MAX_ANALYSED_PIXELS


@dataclass
class _Fused:
    # id -> (tier, rank within the tier, score, path, edits, box in the query)
    best: dict[int, tuple[int, tuple[float, float], float, Path, Edits, Box | None]] = field(
        default_factory=dict
    )

    def add(
        self,
        ident: int,
        score: float,
        path: Path,
        tier: int | None = None,
        rank: tuple[float, float] | None = None,
        edits: Edits = (),
        box: Box | None = None,
    ) -> None:
        """Keep the strongest way ``ident`` was found: by tier, then by ``rank`` (default:
        the score itself); ``box``: where in the query (a region match)."""
        tier = TIERS[path] if tier is None else tier
        entry = (tier, rank or (score, 0.0), score, path, edits, box)
        old = self.best.get(ident)
        if old is None or entry[:2] > old[:2]:
            self.best[ident] = entry

    def ranked(self, k: int, scale: int = 1) -> list[Match]:
        """The ``k`` best; ``scale``: the query was shrunk by this factor before it was
        analysed (boxes are given in the query's own pixels)."""
        items = sorted(self.best.items(), key=lambda kv: kv[1][:2], reverse=True)
        return [Match(i, float(s), p, e, _scaled(b, scale)) for i, (_, _, s, p, e, b) in items[:k]]


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
        """The ``k`` best matches of ``img``. Under a query budget (``search.budget``) the
        region path and pixel verification stop at the deadline and the answer is what the
        other paths found; past the hard deadline, ``BudgetExceeded`` is raised."""
        return self._search(img, k, tiles, None)

    def search_indexed(
        self, img: Image.Image, vector: npt.ArrayLike, k: int = 10, tiles: TileFilter = None
    ) -> list[Match]:
        """The ``k`` best matches of an image that is already indexed: ``img`` its pixels,
        ``vector`` the vector stored for it. Every path runs as for a query, but the feature
        extractor does not: the vector path asks the index for the stored vector's
        neighbours (the other views' vectors were never stored, and their copies are found
        by their hashes, patches and pixels), and a scene is not looked into (an indexed
        image is art, not a screenshot)."""
        return self._search(img, k, tiles, np.asarray(vector, dtype=np.float32))

    def _search(
        self, img: Image.Image, k: int, tiles: TileFilter, stored: np.ndarray | None
    ) -> list[Match]:
        """``search`` (``stored`` None) and ``search_indexed`` (``stored`` the image's vector)."""
        cfg = self.config
        shrunk = shrink_factor(img.width, img.height, cfg.max_pixels)
        img = bounded_image(img, cfg.max_pixels)
        canon = canonicalise(img)
        check()
        # views of the query, each with a penalty and the edits it undoes: as given, mirrored,
        # and (when a flat background was removed) with the background kept
        undone: Edits = ("upscaled",) if canon.factor > 1 else ()
        probes: list[Probe] = [(canon.image, 0.0, undone)]
        if canon.kept is not None:
            probes.append((canon.kept, cfg.kept_penalty, undone))
        if canon.background is not None:
            probes.append((unblend(canon.image, canon.background), cfg.unblend_penalty, undone))
        if cfg.mirror:
            probes += [(flip(v), p + cfg.mirror_penalty, (*e, "flipped")) for v, p, e in probes]
        views = [v for v, _, _ in probes]
        penalties = [p for _, p, _ in probes]
        fused = _Fused()
        size = self.extractor.input_size
        vector_hits: list[list[Hit]]
        if stored is None:
            vecs = self.extractor.embed(np.stack([prepare_canonical(v, size) for v in views]))
            vector_hits = self.vectors.search(vecs, max(k, cfg.pool), tiles)
        else:  # the view as given is the one indexed
            vector_hits = self.vectors.search(stored.reshape(1, -1), max(k, cfg.pool), tiles)
            vector_hits += [[] for _ in views[1:]]
        vector_score: dict[int, float] = {}
        for hits, penalty in zip(vector_hits, penalties, strict=True):
            for ident, score in hits:
                vector_score[ident] = max(score - penalty, vector_score.get(ident, -1.0))
                fused.add(ident, score - penalty, "vector")
        if cfg.hashes and self.hashes is not None:
            for view, penalty, edits in probes:
                check()
                for ident in self.hashes.lookup("canonical", pixel_hash(view)):
                    fused.add(ident, 1.0 - penalty, "exact", edits=edits)
                pattern = structure_hash(view)
                if pattern is not None:
                    recoloured: Edits = (*edits, "recoloured")
                    for ident in self.hashes.lookup("structure", pattern):
                        score = vector_score.get(ident, 0.0) - penalty
                        fused.add(ident, score, "near", tier=STRUCTURE_TIER, edits=recoloured)
        best = max(vector_score.values(), default=0.0)
        regions: list[Region] = []
        grids: list[GridView] = []
        scene = (
            stored is None and cfg.regions and best < cfg.region_below and looks_like_scene(canon)
        )
        if scene:
            with optional_stage():
                rgb = np.asarray(to_rgba(img))[..., :3]
                grids = grid_views(rgb)
                regions = blobs(grids)
                self._search_regions(regions, fused, max(k, cfg.pool), tiles)
                grids.append(GridView(1, rgb.astype(np.float32), np.ones(rgb.shape[:2], bool)))
        if self.pixels is not None and cfg.verify_top > 0:
            with optional_stage():
                use_patches = cfg.patches and self.hashes is not None
                if scene and use_patches:
                    self._scene_patches(grids, fused)
                # each view's own best neighbours are checked too: the fused ranking may push
                # a view's answer down (a JPEG's kept background finds other textures first)
                extra = [i for hits in vector_hits for i, _ in hits[: cfg.verify_per_view]]
                sharing = self._probe_patches(probes) if use_patches and not scene else []
                extra += sharing
                lossy = (img.format or "").upper() in LOSSY_FORMATS
                flat = _flat_probes(canon, cfg.mirror_penalty if cfg.mirror else None)
                self._verify(probes, regions, fused, list(dict.fromkeys(extra)), lossy, flat)
                if stored is not None:
                    self._verify_both_ways(canon, probes, fused, sharing)
        return fused.ranked(k, shrunk)

    def _verify_both_ways(
        self, canon: Canonical, probes: list[Probe], fused: _Fused, sharing: Sequence[int]
    ) -> None:
        """For an indexed image (``search_indexed``), which is as much a candidate's copy as
        its original: the candidates not verified yet are compared either way round, as
        pictures flattened onto a background (``verify.flattened_pairs``), and, for those
        sharing patches, as a part of the other (``contained``: a crop smaller than half of
        its source, a tile of a sheet the tiles stage did not cut)."""
        assert self.pixels is not None
        cfg = self.config
        ranked = [m.id for m in fused.ranked(len(fused.best)) if m.path in ("vector", "near")]
        todo = [i for i in dict.fromkeys([*ranked[: cfg.verify_top], *sharing])]
        todo = [i for i in todo if not _verified(fused, i, cfg.verify_min)]
        images = self.pixels.canonical_images(todo)
        shared = set(sharing)
        for ident in todo:
            check()
            if ident not in images:
                continue
            found = images[ident]
            best = 0.0
            edits: Edits = ()
            for a, b in flattened_pairs(canon, found):
                sim = max(place(a, b).similarity, place(b, a).similarity)
                if sim > best:
                    best, edits = sim, ("recompressed",)
            if ident in shared:
                forms = [f for f in (found.image, found.kept) if f is not None]
                for view, penalty, undone in probes:
                    for form in forms:
                        if _placeable(view, form):
                            continue  # compared whole already (``_verify``)
                        sim = contained(view, form).similarity - penalty
                        if sim > best:
                            best, edits = sim, (*undone, "cropped")
            if best >= cfg.verify_min:
                fused.add(ident, best, "near", edits=edits)

    def _patch_candidates(self, found: Patches, top: int | None = None) -> list[int]:
        """Indexed images sharing the most patch fingerprints with a picture, best first."""
        assert self.hashes is not None
        if not len(found):
            return []
        pairs = self.hashes.lookup_patches([int(h) for h in np.unique(found.hashes)])
        votes = Counter(ident for _, ident in pairs)
        cfg = self.config
        return [i for i, n in votes.most_common(top or cfg.patch_top) if n >= cfg.patch_min]

    def _probe_patches(self, probes: list[Probe]) -> list[int]:
        """Candidates sharing patches with a view of the query (crops, cut tiles, copies
        whose colours survived): checked pixel by pixel with the others."""
        out: list[int] = []
        for view, _, _ in probes:
            check()
            out += [i for i in self._patch_candidates(image_patches(view)) if i not in out]
        return out

    def _scene_patches(self, views: list[GridView], fused: _Fused) -> None:
        """Art found in a scene by its patches: each grid view's patches vote for indexed
        images; the candidates are placed where their own patches sit in the view and
        checked pixel by pixel there (``verify.scene_similarity``)."""
        assert self.pixels is not None
        cfg = self.config
        found: list[Patches] = []
        for view in views:
            check()
            found.append(patches(view.rgba()))
        wanted = [self._patch_candidates(f, cfg.scene_patch_top) for f in found]
        images = self.pixels.canonical_images(sorted({i for ids in wanted for i in ids}))
        pasted = {i: _as_pasted(c) for i, c in images.items()}
        own = {i: image_patches(cand) for i, cand in pasted.items()}
        for view, view_patches, ids in zip(views, found, wanted, strict=True):
            for ident in ids:
                check()
                if ident not in pasted:
                    continue
                cand = pasted[ident]
                box = _place(own[ident], view_patches, cand.size, cfg.patch_min)
                if box is None:
                    continue
                placed = scene_similarity(cand, view.means, box)
                self._add_scene_match(fused, ident, cand, placed, view.grid)

    def _add_scene_match(
        self,
        fused: _Fused,
        ident: int,
        cand: Image.Image,
        found: SceneMatch,
        grid: tuple[int, int, int],
        penalty: float = 0,
    ) -> None:
        """Art found in a scene (pixel similarity >= verify_min) ranks with the
        near-duplicates: art with its own silhouette before opaque art (in a screenshot, a
        sprite is what is looked for, a floor tile is background), then by how many of the
        scene's pixels it explains (``verify.SceneMatch``)."""
        sim = found.similarity - penalty
        if sim < self.config.verify_min:
            return
        opaque = bool(np.asarray(cand.getchannel("A")).min() == 255)
        rank = (0.0 if opaque else 1.0, found.explained * (1.0 - penalty))
        box = None if found.at is None else in_picture(found.at, grid)
        fused.add(ident, sim, "region", tier=TIERS["near"], rank=rank, box=box)

    def _verify(
        self,
        probes: list[Probe],
        regions: list[Region],
        fused: _Fused,
        extra: Sequence[int] = (),
        lossy: bool = False,
        flat: FlatProbes | None = None,
    ) -> None:
        """Promote candidates whose pixels hold a view of the query ("near") or appear in
        the scene where a region was cut out ("region", ranked with the near-duplicates).
        ``extra``: more candidates to check against the views (each view's own best
        neighbours, patch candidates); ``lossy``: the query is a JPEG (a near-duplicate of
        it is a re-compressed copy); ``flat``: the query was on a flat colour, and its views
        are also compared with each candidate flattened on that colour (``verify.flat_form``)."""
        assert self.pixels is not None
        cfg = self.config
        # candidates found in a scene are checked in the scene; the best candidates of every
        # other path but "exact" are checked against the query's views (a picture taken for a
        # scene may still be a copy: a JPEG of an opaque tile)
        ranked = fused.ranked(len(fused.best))
        in_scene = [m.id for m in ranked if m.path == "region"][: 2 * cfg.verify_top]
        copies = [m.id for m in ranked if m.path in ("vector", "near")][: cfg.verify_top]
        copies += [i for i in extra if i not in copies]
        images = self.pixels.canonical_images(list(dict.fromkeys(in_scene + copies)))
        for ident in in_scene if regions else ():
            check()
            if ident not in images:
                continue
            cand = _as_pasted(images[ident])
            for view, pen in ((cand, 0.0), (flip(cand), cfg.mirror_penalty)):
                for r in regions:
                    found = scene_similarity(view, r.scene, r.box)
                    self._add_scene_match(fused, ident, view, found, r.grid, pen)
        for ident in copies:
            check()
            if ident not in images:
                continue
            forms = [f for f in (images[ident].image, images[ident].kept) if f is not None]
            pairs = [(p, pen, edits, f) for p, pen, edits in probes for f in forms]
            form = None if flat is None else flat_form(images[ident].image, flat.background)
            if flat is not None and form is not None:
                pairs += [(p, pen, edits, form) for p, pen, edits in flat.probes]
            sim, edits = max(
                (
                    (pixel_similarity(p, f) - pen, _verified_edits(p, f, edits, lossy))
                    for p, pen, edits, f in pairs
                ),
                key=lambda found: found[0],
                default=(0.0, ()),
            )
            if sim >= cfg.verify_min:
                fused.add(ident, sim, "near", edits=edits)

    def _search_regions(
        self, regions: list[Region], fused: _Fused, pool: int, tiles: TileFilter
    ) -> None:
        """Embed and search the art cut out of a scene (and look its pixels up)."""
        if not regions:
            return
        size = self.extractor.input_size
        views: list[Image.Image] = []
        boxes: list[Box] = []
        for region in regions:
            views.append(region.image)
            if self.config.mirror:
                views.append(flip(region.image))
            boxes += [in_picture(region.box, region.grid)] * (2 if self.config.mirror else 1)
        vecs = self.extractor.embed(np.stack([prepare_canonical(v, size) for v in views]))
        for hits, box in zip(self.vectors.search(vecs, pool, tiles), boxes, strict=True):
            for ident, score in hits:
                fused.add(ident, score - self.config.region_penalty, "region", box=box)
        if self.hashes is not None and self.config.hashes:
            for view, box in zip(views, boxes, strict=True):
                for ident in self.hashes.lookup("canonical", pixel_hash(view)):
                    fused.add(ident, 1.0, "exact", box=box)


@dataclass(frozen=True)
class FlatProbes:
    """A query on a flat colour as ``verify.flat_form`` sees it: the colour, and the views
    (as given, mirrored) with their penalties and edits."""

    background: tuple[int, int, int]
    probes: list[Probe]


def _flat_probes(canon: Canonical, mirror_penalty: float | None) -> FlatProbes | None:
    """The flat-colour views of a query whose flat background was removed (None otherwise);
    ``mirror_penalty``: also the mirrored view, at that penalty (None: not)."""
    if canon.kept is None or canon.background is None:
        return None
    undone: Edits = ("upscaled",) if canon.factor > 1 else ()
    view = flat_form(canon.kept, canon.background)
    if view is None:
        return None
    probes: list[Probe] = [(view, 0.0, undone)]
    if mirror_penalty is not None:
        probes.append((flip(view), mirror_penalty, (*undone, "flipped")))
    return FlatProbes(canon.background, probes)


def _verified_edits(view: Image.Image, form: Image.Image, edits: Edits, lossy: bool) -> Edits:
    """The edits a pixel-verified near-duplicate shows: the view's own, "cropped" when the
    view covers less than ``CROPPED_BELOW`` of the image it was found in, "recompressed"
    when the query is lossy."""
    (vw, vh), (fw, fh) = view.size, form.size
    found = list(edits)
    if vw * vh < CROPPED_BELOW * fw * fh:
        found.append("cropped")
    if lossy:
        found.append("recompressed")
    return tuple(found)


def contained(a: Image.Image, b: Image.Image, min_agree: int = 2) -> Placement:
    """The smaller of two canonical images looked for inside the larger: placed at the
    shift their shared patch fingerprints agree on (``_place``, as art in a scene), then
    compared pixel by pixel with the larger one's pixels in its box (``verify.place``, which
    still allows a shift of ``MARGIN``), so a part of a picture verifies however little of
    it the part covers. ``NO_PLACEMENT`` when fewer
    than ``min_agree`` shared patches agree on a shift."""
    small, big = sorted((a, b), key=lambda img: img.width * img.height)
    box = _place(image_patches(small), image_patches(big), small.size, min_agree)
    if box is None:
        return NO_PLACEMENT
    top, bottom, left, right = box
    return place(small, big.crop((left, top, right, bottom)))


def _placeable(view: Image.Image, form: Image.Image) -> bool:
    """True when ``verify.place`` compares ``view`` inside ``form`` as a whole: it fits (up to
    the margin) and covers at least ``MIN_COVER`` of it."""
    (vw, vh), (fw, fh) = view.size, form.size
    fits = vw <= fw + 2 * MARGIN and vh <= fh + 2 * MARGIN
    return fits and vw * vh >= MIN_COVER * fw * fh


def _verified(fused: _Fused, ident: int, verify_min: float) -> bool:
    """True when ``ident`` is already an exact match or a verified near-duplicate."""
    entry = fused.best.get(ident)
    return entry is not None and (
        entry[3] == "exact" or (entry[3] != "vector" and entry[2] >= verify_min)
    )


def _scaled(box: Box | None, factor: int) -> Box | None:
    """A box of the analysed (shrunk by ``factor``) query in the query's own pixels."""
    if box is None or factor == 1:
        return box
    x0, y0, x1, y1 = box
    return (x0 * factor, y0 * factor, x1 * factor, y1 * factor)


def _as_pasted(canon: Canonical) -> Image.Image:
    """The form of an indexed image that a scene would show: its opaque pixels as they were
    (an opaque tile keeps the background ``canonicalise`` took off it)."""
    return canon.kept if canon.kept is not None else canon.image


def _place(
    cand: Patches, view: Patches, size: tuple[int, int], min_agree: int
) -> tuple[int, int, int, int] | None:
    """Where a candidate sits in a view, from the shift its shared patches agree on: the
    (top, bottom, left, right) box, or None when fewer than ``min_agree`` patches agree."""
    if not len(cand) or not len(view):
        return None
    order = np.argsort(view.hashes, kind="stable")
    sorted_hashes = view.hashes[order]
    lo = np.searchsorted(sorted_hashes, cand.hashes, side="left")
    hi = np.searchsorted(sorted_hashes, cand.hashes, side="right")
    shifts = [
        (int(view.ys[j]) - int(cy), int(view.xs[j]) - int(cx))
        for a, b, cy, cx in zip(lo, hi, cand.ys, cand.xs, strict=True)
        for j in order[a:b]
    ]
    if not shifts:
        return None
    (dy, dx), agree = Counter(shifts).most_common(1)[0]
    if agree < min_agree:
        return None
    w, h = size
    return dy, dy + h, dx, dx + w
