"""The search service: queries in, results joined to the catalog and grouped by copy.

One ``SearchService`` per process (the web app, the CLI). It reads the catalog and the vector
index that ``update`` writes, and may run while ``update`` runs: the embedded index is
re-read when another process has saved a newer generation.
"""

from __future__ import annotations

import io
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import Connection, and_, func, select

from ogasearch.catalog.schema import (
    authors,
    embeddings,
    files,
    images,
    licenses,
    page_authors,
    page_licenses,
    pages,
    patches,
)
from ogasearch.catalog.stats import catalog_stats
from ogasearch.catalog.vectors import decode_vectors
from ogasearch.embed.patches import COMMON
from ogasearch.embed.preprocess import Canonical, canonicalise
from ogasearch.extract.images import ImageRejected
from ogasearch.search import keywords
from ogasearch.search.matching import Match, Matcher
from ogasearch.search.results import Filters, SearchResponse, SearchResult, Source
from ogasearch.settings import Settings
from ogasearch.store.pixels import PixelCache, load_pixels, pixel_rows, tile_box
from ogasearch.workspace import Workspace

HASH_COLUMNS = {"canonical": images.c.canonical_sha256, "structure": images.c.structure_sha256}
REFRESH_SECONDS = 1.0
MAX_POOL = 16_000  # largest neighbour pool asked for when filters thin the results
NEAR_PHASH_BITS = 4  # near-copies: perceptual hashes at most this many bits apart ...
NEAR_COSINE = 0.97  # ... and feature vectors at least this similar


class CatalogHashes:
    """``HashLookup`` over the catalog: image ids by canonical or structure hash, and by
    patch fingerprint (``patches``)."""

    def __init__(self, service: SearchService) -> None:
        self.service = service

    def lookup(self, kind: str, value: str) -> list[int]:
        column = HASH_COLUMNS[kind]
        with self.service.ws.engine.connect() as conn:
            rows = conn.execute(
                select(images.c.id)
                .where(column == value, images.c.indexed.is_(True))
                .order_by(images.c.id)
                .limit(200)
            )
            return [int(r) for r in rows.scalars()]

    def lookup_patches(self, hashes: Sequence[int]) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        with self.service.ws.engine.connect() as conn:
            for chunk in _chunks(hashes):
                usable = (
                    select(patches.c.hash)
                    .where(patches.c.hash.in_(chunk))
                    .group_by(patches.c.hash)
                    .having(func.count() <= COMMON)
                )
                rows = conn.execute(
                    select(patches.c.hash, patches.c.image_id)
                    .join(images, images.c.id == patches.c.image_id)
                    .where(patches.c.hash.in_(usable), images.c.indexed.is_(True))
                )
                out += [(int(h), int(i)) for h, i in rows]
        return out


MAX_IMAGE_ID = (1 << 63) - 1  # ids are signed 64-bit in SQLite, PostgreSQL and the indexes


def _is_image_id(image_id: int) -> bool:
    """False for ids no catalog can hold (a huge one from a URL would overflow the driver)."""
    return 0 < image_id <= MAX_IMAGE_ID


class CatalogPixels:
    """``PixelSource`` over the catalog: canonical pixels of candidates, for the matcher's
    pixel verification (a tile is its box cut from its sheet; each sheet decoded once)."""

    def __init__(self, service: SearchService) -> None:
        self.service = service

    def canonical_images(self, ids: Sequence[int]) -> dict[int, Canonical]:
        with self.service.ws.engine.connect() as conn:
            rows = conn.execute(pixel_rows().where(images.c.id.in_(list(ids)))).all()
        cache = PixelCache(self.service.ws.store, self.service.settings.limits)
        out: dict[int, Canonical] = {}
        for row in rows:
            try:
                out[int(row.id)] = canonicalise(cache.load(row.blob, tile_box(row)))
            except (ImageRejected, OSError, ValueError):
                continue  # a candidate that cannot be read is simply not verified
        return out


class SearchService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ws = Workspace(settings)
        self._lock = threading.Lock()
        self._refreshed = 0.0
        self._matcher: Matcher | None = None

    # -- public API ---------------------------------------------------------------------------

    def by_image(
        self, image: Image.Image, k: int = 20, filters: Filters | None = None
    ) -> SearchResponse:
        start = time.perf_counter()
        filters = filters or Filters()
        pool = self._pool(k)
        while True:
            matches = self.matcher.search(image, k=pool, tiles=filters.tiles)
            results = self._results(matches, k, filters)
            if not self._widen(results, matches, k, pool, filters):
                return SearchResponse(results, (time.perf_counter() - start) * 1000)
            pool *= 4

    def similar(self, image_id: int, k: int = 20, filters: Filters | None = None) -> SearchResponse:
        start = time.perf_counter()
        filters = filters or Filters()
        if not _is_image_id(image_id):
            raise KeyError(image_id)
        with self.ws.engine.connect() as conn:
            row = conn.execute(
                select(images.c.canonical_sha256, embeddings.c.vector, embeddings.c.dim)
                .select_from(images.outerjoin(embeddings, embeddings.c.image_id == images.c.id))
                .where(images.c.id == image_id)
            ).first()
        if row is None:
            raise KeyError(image_id)
        exact: list[Match] = []
        if row.canonical_sha256:
            ids = CatalogHashes(self).lookup("canonical", row.canonical_sha256)
            exact = [Match(i, 1.0, "exact") for i in ids]
        if not any(m.id == image_id for m in exact):
            exact.insert(0, Match(image_id, 1.0, "exact"))
        pool = self._pool(k)
        while True:
            matches = list(exact)
            if row.vector is not None:
                vector = decode_vectors([row.vector], row.dim)
                for ident, score in self._index().search(vector, pool, filters.tiles)[0]:
                    matches.append(Match(ident, float(score), "vector"))
            results = self._results(matches, k, filters)
            if not self._widen(results, matches, k, pool, filters):
                return SearchResponse(results, (time.perf_counter() - start) * 1000)
            pool *= 4

    def by_text(self, q: str, k: int = 20, filters: Filters | None = None) -> SearchResponse:
        start = time.perf_counter()
        filters = filters or Filters()
        with self.ws.engine.connect() as conn:
            hits = keywords.search_pages(conn, q, self._pool(k))
            cards = keywords.card_images(conn, hits, filters.tiles)
        matches = [
            Match(cards[pid], score, "text")  # type: ignore[arg-type]
            for pid, score in hits.pages
            if pid in cards
        ]
        response = self._respond(matches, k, filters, start, own_page=True)
        response.did_you_mean = hits.did_you_mean
        return response

    def image(self, image_id: int) -> SearchResult | None:
        if not _is_image_id(image_id):
            return None
        results = self._results([Match(image_id, 1.0, "exact")], 1, Filters(), own_page=True)
        return results[0] if results else None

    def image_png(self, image_id: int) -> bytes:
        if not _is_image_id(image_id):
            raise KeyError(image_id)
        with self.ws.engine.connect() as conn:
            row = conn.execute(pixel_rows().where(images.c.id == image_id)).first()
        if row is None:
            raise KeyError(image_id)
        pixels = load_pixels(self.ws.store, self.settings.limits, row.blob, tile_box(row))
        out = io.BytesIO()
        pixels.save(out, format="PNG")
        return out.getvalue()

    def stats(self) -> dict[str, Any]:
        counts = catalog_stats(self.ws.engine)
        pages_by_state = counts["pages"]
        files_by_state = counts["files"]
        return {
            "pages": int(pages_by_state.get("fetched", 0)),
            "files": int(sum(files_by_state.values())),
            "images": counts["images"],
            "tiles": counts["tiles"],
            "indexed": counts["indexed"],
            "vectors": len(self._index()),
        }

    def licenses(self) -> list[str]:
        with self.ws.engine.connect() as conn:
            return list(conn.execute(select(licenses.c.name).order_by(licenses.c.name)).scalars())

    def close(self) -> None:
        self.ws.close()

    # -- internals ----------------------------------------------------------------------------

    @property
    def matcher(self) -> Matcher:
        if self._matcher is None:
            self._matcher = Matcher(
                self.ws.extractor,
                _Refreshing(self),
                CatalogHashes(self),
                pixels=CatalogPixels(self),
            )
        return self._matcher

    def _index(self):  # type: ignore[no-untyped-def]
        index = self.ws.index
        now = time.monotonic()
        refresh = getattr(index, "refresh", None)
        if refresh is not None and now - self._refreshed > REFRESH_SECONDS:
            with self._lock:
                refresh()
                self._refreshed = now
        return index

    @staticmethod
    def _pool(k: int) -> int:
        return min(4 * k + 20, 1000)

    @staticmethod
    def _widen(
        results: list[SearchResult], matches: Sequence[Match], k: int, pool: int, filters: Filters
    ) -> bool:
        """Search again with a larger pool? Only when filters (applied after the nearest
        neighbours come back) left fewer than ``k`` results and more neighbours exist."""
        filtered = filters.license is not None or filters.art_type is not None
        return filtered and len(results) < k and len(matches) >= pool and pool < MAX_POOL

    def _respond(
        self,
        matches: Sequence[Match],
        k: int,
        filters: Filters,
        start: float,
        own_page: bool = False,
    ) -> SearchResponse:
        results = self._results(matches, k, filters, own_page)
        return SearchResponse(results=results, took_ms=(time.perf_counter() - start) * 1000)

    def _results(
        self,
        matches: Sequence[Match],
        k: int,
        filters: Filters,
        own_page: bool = False,
    ) -> list[SearchResult]:
        """Group matches by copy (same canonical pixels), join sources, filter, rank."""
        if not matches:
            return []
        with self.ws.engine.connect() as conn:
            ids = list(dict.fromkeys(m.id for m in matches))
            info = _image_rows(conn, ids)
            keys = {i: _group_key(info[i]) for i in ids if i in info}
            members = _group_members(conn, {k_ for k_ in keys.values() if k_[0] != "id"})
            for key in set(keys.values()):
                members.setdefault(key, [int(key[1])] if key[0] == "id" else [])
            keys, members = _merge_near_copies(conn, info, keys, members)
            all_ids = set(ids) | {i for group in members.values() for i in group}
            sources = _sources(conn, all_ids)
            info.update(_image_rows(conn, [i for i in all_ids if i not in info]))
        groups: dict[tuple[str, str], SearchResult] = {}
        order: list[tuple[str, str]] = []
        for match in matches:
            if match.id not in keys or match.id not in sources:
                continue
            key = keys[match.id]
            if key in groups:
                continue
            group_ids = members[key]
            group_sources = [sources[i] for i in group_ids if i in sources]
            if filters.license:
                group_sources = [s for s in group_sources if filters.license in s.licenses]
            if filters.art_type:
                group_sources = [s for s in group_sources if s.art_type == filters.art_type]
            if filters.tiles is not None:
                want_tile = filters.tiles == "only"
                group_sources = [
                    x
                    for x in group_sources
                    if (info[x.image_id].parent_id is not None) == want_tile
                ]
            if not group_sources:
                continue
            row = info[match.id]
            group_sources.sort(key=_earliest)
            first = _one_per_page(group_sources, prefer=match.id)
            # The earliest page likely holds the original; a keyword hit or an image looked up
            # by id shows its own page first.
            if own_page:
                own = sources[match.id].page_id
                primary = next((x for x in first if x.page_id == own), first[0])
            else:
                primary = first[0]
            copies = [x for x in first if x is not primary]
            shown = info.get(primary.image_id, row)
            groups[key] = SearchResult(
                image_id=primary.image_id,
                score=float(match.score),
                source=primary.source,
                width=int(shown.width),
                height=int(shown.height),
                frames=int(shown.frames),
                tile=tile_box(shown),
                parent_image_id=shown.parent_id,
                match=match.path,
                copies=[c.source for c in copies],
                group_ids=sorted(group_ids),
            )
            order.append(key)
            if len(order) >= k:
                break
        return [groups[key] for key in order]


class _Refreshing:
    """The service's vector index, re-read when ``update`` has saved a newer one."""

    def __init__(self, service: SearchService) -> None:
        self.service = service

    def search(self, queries: Any, k: int, tiles: Any = None) -> Any:
        return self.service._index().search(queries, k, tiles)


class _SourceRow:
    """A ``Source`` plus what grouping needs (art type, the image id it belongs to)."""

    __slots__ = ("art_type", "image_id", "source")

    def __init__(self, source: Source, art_type: str | None) -> None:
        self.source = source
        self.image_id = source.image_id
        self.art_type = art_type

    @property
    def licenses(self) -> list[str]:
        return self.source.licenses

    @property
    def post_date(self) -> Any:
        return self.source.post_date

    @property
    def page_id(self) -> int:
        return self.source.page_id


def _earliest(s: _SourceRow) -> tuple[Any, ...]:
    date = s.post_date
    return (date is None, date.timestamp() if date else 0.0, s.page_id, s.image_id)


def _one_per_page(sources: list[_SourceRow], prefer: int) -> list[_SourceRow]:
    """One source per page, pages in the given order; on its page, ``prefer`` (the image the
    query matched, e.g. the tile rather than a loose copy of it) wins."""
    by_page: dict[int, _SourceRow] = {}
    for s in sources:
        if s.page_id not in by_page or s.image_id == prefer:
            by_page[s.page_id] = s
    return list(by_page.values())


def _group_key(row: Any) -> tuple[str, str]:
    if row.canonical_sha256:
        return ("canonical", row.canonical_sha256)
    return ("id", str(row.id))


def _hamming(a: str | None, b: str | None) -> int:
    if not a or not b:
        return 64
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _merge_near_copies(
    conn: Connection,
    info: dict[int, Any],
    keys: dict[int, tuple[str, str]],
    members: dict[tuple[str, str], list[int]],
) -> tuple[dict[int, tuple[str, str]], dict[tuple[str, str], list[int]]]:
    """Merge groups of matched images that are near-copies of each other (re-encodings, light
    edits): same size, perceptual hashes within ``NEAR_PHASH_BITS``, and feature vectors with
    cosine >= ``NEAR_COSINE`` (the phash alone confuses flat or simple tiles)."""
    by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
    for ident in keys:
        row = info[ident]
        by_size[(row.width, row.height)].append(ident)
    pairs = [
        (a, b)
        for bucket in by_size.values()
        for n, a in enumerate(bucket[:64])
        for b in bucket[n + 1 : 64]
        if keys[a] != keys[b] and _hamming(info[a].phash, info[b].phash) <= NEAR_PHASH_BITS
    ]
    if not pairs:
        return keys, members
    wanted = sorted({i for pair in pairs for i in pair})
    vectors: dict[int, np.ndarray] = {}
    for row in conn.execute(
        select(embeddings.c.image_id, embeddings.c.vector, embeddings.c.dim).where(
            embeddings.c.image_id.in_(wanted)
        )
    ):
        vectors[int(row.image_id)] = decode_vectors([row.vector], row.dim)[0]
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def root(key: tuple[str, str]) -> tuple[str, str]:
        while parent.get(key, key) != key:
            key = parent[key]
        return key

    for a, b in pairs:
        if a in vectors and b in vectors and float(vectors[a] @ vectors[b]) >= NEAR_COSINE:
            ra, rb = root(keys[a]), root(keys[b])
            if ra != rb:
                parent[rb] = ra
    if not parent:
        return keys, members
    merged: dict[tuple[str, str], list[int]] = defaultdict(list)
    for key, ids in members.items():
        merged[root(key)].extend(ids)
    return {i: root(key) for i, key in keys.items()}, dict(merged)


def _chunks(ids: Iterable[Any], size: int = 500) -> Iterable[list[Any]]:
    items = list(ids)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _image_rows(conn: Connection, ids: Iterable[int]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for chunk in _chunks(ids):
        for row in conn.execute(
            select(
                images.c.id,
                images.c.parent_id,
                images.c.canonical_sha256,
                images.c.phash,
                images.c.width,
                images.c.height,
                images.c.frames,
                images.c.tile_x,
                images.c.tile_y,
                images.c.tile_w,
                images.c.tile_h,
            ).where(images.c.id.in_(chunk))
        ):
            out[int(row.id)] = row
    return out


def _group_members(
    conn: Connection, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], list[int]]:
    """Every image id sharing each group key (all the copies of one picture)."""
    members: dict[tuple[str, str], list[int]] = defaultdict(list)
    values = [v for kind, v in keys if kind == "canonical"]
    for chunk in _chunks(values):
        for ident, value in conn.execute(
            select(images.c.id, images.c.canonical_sha256)
            .where(images.c.canonical_sha256.in_(chunk))
            .order_by(images.c.id)
        ):
            members[("canonical", value)].append(int(ident))
    return members


def _sources(conn: Connection, image_ids: Iterable[int]) -> dict[int, _SourceRow]:
    """Where each image appears: page, file, archive path, author, licences."""
    out: dict[int, _SourceRow] = {}
    page_of: dict[int, int] = {}
    rows: list[Any] = []
    for chunk in _chunks(image_ids):
        rows += conn.execute(
            select(
                images.c.id,
                images.c.archive_path,
                files.c.url.label("file_url"),
                files.c.name.label("file_name"),
                pages.c.id.label("page_id"),
                pages.c.url.label("page_url"),
                pages.c.title,
                pages.c.post_date,
                pages.c.art_type,
            )
            .join(files, files.c.id == images.c.file_id)
            .join(pages, pages.c.id == files.c.page_id)
            .where(
                images.c.id.in_(chunk),
                files.c.present.is_(True),
                pages.c.state == "fetched",
            )
        ).all()
    for row in rows:
        page_of[int(row.id)] = int(row.page_id)
    page_ids = set(page_of.values())
    lic: dict[int, list[str]] = defaultdict(list)
    who: dict[int, tuple[str, str | None]] = {}
    for chunk in _chunks(page_ids):
        for pid, name in conn.execute(
            select(page_licenses.c.page_id, licenses.c.name)
            .join(licenses, licenses.c.id == page_licenses.c.license_id)
            .where(page_licenses.c.page_id.in_(chunk))
            .order_by(page_licenses.c.page_id, page_licenses.c.position)
        ):
            lic[int(pid)].append(name)
        for pid, name, url, _role in conn.execute(
            select(page_authors.c.page_id, authors.c.name, authors.c.url, page_authors.c.role)
            .join(authors, authors.c.id == page_authors.c.author_id)
            .where(
                page_authors.c.page_id.in_(chunk),
                and_(page_authors.c.role.in_(("author", "submitter"))),
            )
            .order_by(page_authors.c.page_id, page_authors.c.role, page_authors.c.position)
        ):
            # "author" sorts before "submitter": the author wins when both exist.
            who.setdefault(int(pid), (name, url))
    for row in rows:
        pid = int(row.page_id)
        name, url = who.get(pid, (None, None))
        out[int(row.id)] = _SourceRow(
            Source(
                image_id=int(row.id),
                page_id=pid,
                page_url=row.page_url,
                title=row.title,
                author=name,
                author_url=url,
                licenses=lic.get(pid, []),
                post_date=row.post_date,
                file_url=row.file_url,
                file_name=row.file_name,
                archive_path=row.archive_path or None,
            ),
            row.art_type,
        )
    return out


def vectors_of(service: SearchService, ids: Sequence[int]) -> np.ndarray:
    """Stored vectors of ``ids`` (for tools and tests)."""
    with service.ws.engine.connect() as conn:
        rows = conn.execute(
            select(embeddings.c.vector, embeddings.c.dim).where(embeddings.c.image_id.in_(ids))
        ).all()
    return decode_vectors([r.vector for r in rows], rows[0].dim if rows else 0)
