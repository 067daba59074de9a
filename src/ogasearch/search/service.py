"""The search service: queries in, results joined to the catalog and grouped by copy.

One ``SearchService`` per process (the web app, the CLI). It reads the catalog and the vector
index that ``update`` writes, and may run while ``update`` runs: the embedded index is
re-read when another process has saved a newer generation (``adapters.RefreshingIndex``).

This module holds the query loops; the catalog queries are in ``search.catalog_reads``, the
matcher's adapters in ``match.adapters``, grouping copies into results in
``search.grouping``, and every ranking constant in ``match.ranking``.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from PIL import Image

from ogasearch.catalog import CatalogMissing
from ogasearch.catalog.migrate import has_legacy_patches
from ogasearch.catalog.stats import catalog_stats
from ogasearch.catalog.vectors import decode_vectors
from ogasearch.embed.compact import compaction_problem
from ogasearch.embed.extractors import ModelUnavailable
from ogasearch.extract.pixels import load_pixels, tile_box
from ogasearch.index import MAX_K
from ogasearch.match import lookups
from ogasearch.match.adapters import CatalogHashes, CatalogPixels, RefreshingIndex
from ogasearch.match.matching import Match, Matcher
from ogasearch.match.ranking import (
    MAX_POOL,
    POOL_CAP,
    POOL_EXTRA,
    POOL_PER_RESULT,
    WIDEN_FACTOR,
)
from ogasearch.search import catalog_reads, keywords
from ogasearch.search.artmap import MapReader
from ogasearch.search.cards import one_card_per_page
from ogasearch.search.grouping import group_results
from ogasearch.search.kinds import KindScan
from ogasearch.search.provenance import ConflictsPage, read_conflicts
from ogasearch.search.query_image import Box, crop_query, offset_boxes
from ogasearch.search.results import (
    Filters,
    ImageNotFound,
    SearchResponse,
    SearchResult,
)
from ogasearch.settings import Settings
from ogasearch.workspace import Workspace

log = logging.getLogger(__name__)


class SearchService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ws = Workspace(settings, create=False)  # searching never creates a data folder
        self.vectors = RefreshingIndex(self.ws)
        self._kinds: KindScan | None = None
        self.map = MapReader(self.ws)  # the map of all the art (``search.artmap``)
        self._matcher: Matcher | None = None
        outdated = self.index_outdated()
        if outdated:
            log.warning("%s", outdated)
        map_outdated = self.map.outdated()
        if map_outdated:
            log.warning("%s", map_outdated)

    def index_outdated(self) -> str | None:
        """One line when the data folder's index is older than this code (or its patch table
        is missing): what is wrong and the command that fixes it; None when it is current (or
        when there is no index at all: ``stats()`` says it is empty)."""
        try:
            engine = self.ws.engine
        except CatalogMissing:
            return None
        if has_legacy_patches(engine):
            return (
                "the index predates this ogasearch (patch fingerprints still in the catalog's "
                "version-1 rows): run `ogasearch update` to convert it (no re-crawl, no "
                "re-embed); until then searches skip the patch path"
            )
        with engine.connect() as conn:
            if not catalog_reads.any_indexed(conn):
                return None
            if catalog_reads.lacks_kind_vectors(conn):
                return (
                    "the index predates this ogasearch (images without a kind vector): run "
                    '`ogasearch update` to add them (no re-crawl); until then "more like '
                    'this" of those images uses their lookup vector'
                )
        try:
            compaction = compaction_problem(engine, self.ws.extractor, self.ws.model, self.settings)
            problem = self.ws.patches.problem
        except ModelUnavailable:
            return None  # said when a search needs the model
        if compaction:
            return compaction
        if problem is None:
            return None
        return f"{problem}: run `ogasearch update` or `ogasearch check` to build it"

    # -- public API ---------------------------------------------------------------------------

    # Every search first checks its filters (``check_filters``): ``UnknownFilter`` for a
    # value the catalog does not know, so a typo is an error rather than an empty answer.

    def by_image(
        self,
        image: Image.Image,
        k: int = 20,
        filters: Filters | None = None,
        box: Box | None = None,
    ) -> SearchResponse:
        """Images like ``image``, or like its part ``box`` (x0, y0, x1, y1 in its pixels,
        checked by ``query_image.check_box``): results then say where they were found in the
        whole picture (``query_box``)."""
        start = time.perf_counter()
        filters = filters or Filters()
        self.check_filters(filters)
        if box is not None:
            response = self.by_image(crop_query(image, box), k, filters)
            offset_boxes(response.results, box)
            response.took_ms = (time.perf_counter() - start) * 1000
            return response
        # one wider pool from the start, as results of one page fold into one card: the
        # matcher is not run again for them (its pixel checks under the query budget)
        pool = min(_first_pool(k) * WIDEN_FACTOR, POOL_CAP, MAX_K)
        while True:
            matches = self.matcher.search(image, k=pool, tiles=filters.tiles)
            results = self._results(matches, k, filters)
            wider = self._wider_pool(results, matches, k, pool, filters, widen_folded=False)
            if wider is None:
                _upscaled_only_if_larger(results, image.size)
                return SearchResponse(results, (time.perf_counter() - start) * 1000)
            pool = wider

    def similar(self, image_id: int, k: int = 20, filters: Filters | None = None) -> SearchResponse:
        """Images like ``image_id`` (its copies first); ``ImageNotFound`` when there is none."""
        start = time.perf_counter()
        filters = filters or Filters()
        self.check_filters(filters)
        if not catalog_reads.is_image_id(image_id):
            raise ImageNotFound(image_id)
        with self.ws.engine.connect() as conn:
            row = catalog_reads.similar_seed(conn, image_id)
        if row is None:
            raise ImageNotFound(image_id)
        exact: list[Match] = []
        if row.canonical_sha256:
            ids = CatalogHashes(self.ws).lookup("canonical", row.canonical_sha256)
            exact = [Match(i, 1.0, "exact") for i in ids]
        if not any(m.id == image_id for m in exact):
            exact.insert(0, Match(image_id, 1.0, "exact"))
        pool = _first_pool(k)
        while True:
            matches = list(exact)
            for ident, score in self._neighbours(row, pool, filters):
                matches.append(Match(ident, score, "vector"))
            results = self._results(matches, k, filters)
            wider = self._wider_pool(results, matches, k, pool, filters)
            if wider is None:
                return SearchResponse(results, (time.perf_counter() - start) * 1000)
            pool = wider

    def _neighbours(self, row: Any, pool: int, filters: Filters) -> list[tuple[int, float]]:
        """The ``pool`` images nearest to a ``similar_seed`` row in kind space, or by its
        lookup vector when it has no kind vector yet (a folder ``update`` has not upgraded)."""
        if row.kind_vector is not None:
            vector = decode_vectors([row.kind_vector], row.kind_dim)
            return self.kinds.search(row.kind_model, vector, pool, filters.tiles)
        if row.vector is None:
            return []
        vector = decode_vectors([row.vector], row.dim)
        return [(i, float(s)) for i, s in self.vectors.search(vector, pool, filters.tiles)[0]]

    def by_text(self, q: str, k: int = 20, filters: Filters | None = None) -> SearchResponse:
        start = time.perf_counter()
        filters = filters or Filters()
        self.check_filters(filters)
        with self.ws.engine.connect() as conn:
            hits = keywords.search_pages(conn, q, _first_pool(k))
            cards = keywords.card_images(conn, hits, filters.tiles)
        matches = [Match(cards[pid], score, "text") for pid, score in hits.pages if pid in cards]
        results = self._results(matches, k, filters, own_page=True)
        response = SearchResponse(results, (time.perf_counter() - start) * 1000)
        response.did_you_mean = hits.did_you_mean
        return response

    def conflicts(
        self, flag: str | None = None, licence: str | None = None, offset: int = 0, limit: int = 20
    ) -> ConflictsPage:
        """One page of the conflicts report (``search.provenance.read_conflicts``)."""
        with self.ws.engine.connect() as conn:
            return read_conflicts(conn, flag, licence, offset, limit)

    def image(self, image_id: int) -> SearchResult | None:
        """One image with every page that holds it (its own page first), or None."""
        return self.images([image_id]).get(image_id)

    def images(self, image_ids: Iterable[int]) -> dict[int, SearchResult]:
        """``image`` for many ids in one batch of catalog reads; unknown ids are left out."""
        ids = list(dict.fromkeys(i for i in image_ids if catalog_reads.is_image_id(i)))
        if not ids:
            return {}
        with self.ws.engine.connect() as conn:
            # no near-copy merging: a single image has no other match to merge with
            groups = catalog_reads.read_groups(conn, ids, merge_near=False)
        out: dict[int, SearchResult] = {}
        for ident in ids:
            match = [Match(ident, 1.0, "exact")]
            found = group_results(match, groups, 1, Filters(), own_page=True)
            if found:
                out[ident] = found[0]
        return out

    def image_png(self, image_id: int) -> bytes:
        """An indexed image (a tile cut from its sheet) as PNG; ``ImageNotFound`` when none."""
        if not catalog_reads.is_image_id(image_id):
            raise ImageNotFound(image_id)
        with self.ws.engine.connect() as conn:
            rows = lookups.pixel_rows_of(conn, [image_id])
        if not rows:
            raise ImageNotFound(image_id)
        row = rows[0]
        pixels = load_pixels(self.ws.store, self.settings.limits, row.blob, tile_box(row))
        out = io.BytesIO()
        pixels.save(out, format="PNG")
        return out.getvalue()

    def stats(self) -> dict[str, Any]:
        """Counts, and ``empty``: nothing indexed (with a ``message`` when there is no
        catalog at all)."""
        try:
            counts = catalog_stats(self.ws.engine)
        except CatalogMissing as exc:
            zero = dict.fromkeys(("pages", "files", "images", "tiles", "indexed", "vectors"), 0)
            return {**zero, "empty": True, "message": str(exc)}
        pages_by_state = counts["pages"]
        files_by_state = counts["files"]
        return {
            "pages": int(pages_by_state.get("fetched", 0)),
            "files": int(sum(files_by_state.values())),
            "images": counts["images"],
            "tiles": counts["tiles"],
            "indexed": counts["indexed"],
            "vectors": len(self.vectors.index()),
            "empty": counts["indexed"] == 0,
            "index_outdated": self.index_outdated(),  # None, or what is out of date and the fix
        }

    def licenses(self) -> list[str]:
        try:
            engine = self.ws.engine
        except CatalogMissing:
            return []  # no catalog yet: the page still shows, and says the index is empty
        with engine.connect() as conn:
            return catalog_reads.licence_names(conn)

    def check_filters(self, filters: Filters) -> None:
        """Raise ``UnknownFilter`` (with the valid values) for a licence or art type the
        catalog does not know, or a tile filter other than "only" and "exclude"."""
        if filters.license is None and filters.art_type is None:
            filters.validate((), ())  # only the tile filter to check: no catalog read
            return
        with self.ws.engine.connect() as conn:
            licences = catalog_reads.licence_names(conn) if filters.license else []
            art_types = catalog_reads.art_type_names(conn) if filters.art_type else []
        filters.validate(licences, art_types)

    def close(self) -> None:
        self.ws.close()

    # -- internals ----------------------------------------------------------------------------

    @property
    def kinds(self) -> KindScan:
        """The exact scan over the kind vectors ("more like this")."""
        if self._kinds is None:
            self._kinds = KindScan(self.ws.engine)
        return self._kinds

    @property
    def matcher(self) -> Matcher:
        if self._matcher is None:
            self._matcher = Matcher(
                self.ws.extractor,
                self.vectors,
                CatalogHashes(self.ws),
                pixels=CatalogPixels(self.ws),
            )
        return self._matcher

    def _wider_pool(
        self,
        results: list[SearchResult],
        matches: Sequence[Match],
        k: int,
        pool: int,
        filters: Filters,
        widen_folded: bool = True,
    ) -> int | None:
        """The pool to search again with, or None. Only when fewer than ``k`` cards came
        back because filters (applied after the nearest neighbours come back) dropped some or
        (``widen_folded``) results from one page were folded into one card, and more
        neighbours may exist; never past ``MAX_POOL``, the index's limit (``MAX_K``) or its
        size."""
        filtered = filters.license is not None or filters.art_type is not None
        folded = widen_folded and any(r.more for r in results)
        short = len(results) < k and len(matches) >= pool and pool < MAX_POOL
        if not (short and (filtered or folded)):
            return None
        wider = min(pool * WIDEN_FACTOR, MAX_POOL, MAX_K, len(self.vectors.index()))
        return wider if wider > pool else None

    def _results(
        self, matches: Sequence[Match], k: int, filters: Filters, own_page: bool = False
    ) -> list[SearchResult]:
        """Group matches by copy (same canonical pixels), join sources, filter, rank, and
        fold them into up to ``k`` cards, one per page (``search.cards``)."""
        if not matches:
            return []
        with self.ws.engine.connect() as conn:
            groups = catalog_reads.read_groups(conn, list(dict.fromkeys(m.id for m in matches)))
        hits = group_results(matches, groups, len(matches), filters, own_page)
        return one_card_per_page(hits, k)


def _upscaled_only_if_larger(results: list[SearchResult], query_size: tuple[int, int]) -> None:
    """Drop "upscaled" from results at least as large as the query: the upscale the matcher
    undid is then the indexed image's own (a copy of an upscaled upload), not an edit."""
    area = query_size[0] * query_size[1]
    for r in [hit for card in results for hit in (card, *card.more)]:
        if "upscaled" in r.edits and r.width * r.height >= area:
            r.edits.remove("upscaled")


def _first_pool(k: int) -> int:
    """Neighbours fetched for ``k`` results (see ``match.ranking``)."""
    return min(POOL_PER_RESULT * k + POOL_EXTRA, POOL_CAP)
