"""Copies grouped into one result, earliest page first: pure functions over catalog rows.

A result is a group of images with the same canonical pixels (``images.canonical_sha256``),
merged with the groups of matched near-copies (same size, close perceptual hash, close feature
vector: ``match.ranking``). Each group shows one source per page, the earliest page first
(it likely holds the original), filtered by licence, art type and tile/whole image.

No I/O here: ``search.catalog_reads.read_groups`` reads what these functions need (``Groups``)
in a few batched queries, so the same rows serve one query's matches or a page of images.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from ogasearch.extract.pixels import tile_box
from ogasearch.match.matching import Match
from ogasearch.match.ranking import NEAR_BUCKET, NEAR_COSINE, NEAR_PHASH_BITS
from ogasearch.search.results import Filters, SearchResult, Source

GroupKey = tuple[str, str]  # ("canonical", sha256) or ("id", image id) for an unhashed image


@dataclass(frozen=True)
class SourceRow:
    """A ``Source`` plus what grouping needs: the art type of its page."""

    source: Source
    art_type: str | None

    @property
    def image_id(self) -> int:
        return self.source.image_id

    @property
    def page_id(self) -> int:
        return self.source.page_id

    @property
    def licenses(self) -> list[str]:
        return self.source.licenses

    @property
    def post_date(self) -> datetime | None:
        return self.source.post_date


@dataclass
class Groups:
    """What grouping needs for a set of matched images, read from the catalog."""

    info: dict[int, Any]  # image rows by id: size, frames, tile box, parent, hashes
    keys: dict[int, GroupKey]  # the group of each matched image
    members: dict[GroupKey, list[int]]  # every image id of each group
    sources: dict[int, SourceRow]  # where each image appears (on a fetched page)


def group_key(row: Any) -> GroupKey:
    """Images with the same canonical pixels are one group; an unhashed image is its own."""
    if row.canonical_sha256:
        return ("canonical", row.canonical_sha256)
    return ("id", str(row.id))


def _hamming(a: str | None, b: str | None) -> int:
    if not a or not b:
        return 64
    return (int(a, 16) ^ int(b, 16)).bit_count()


def near_copy_pairs(info: dict[int, Any], keys: dict[int, GroupKey]) -> list[tuple[int, int]]:
    """Pairs of matched images in different groups that may be near-copies: same size and
    perceptual hashes within ``NEAR_PHASH_BITS`` (the first ``NEAR_BUCKET`` of each size)."""
    by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
    for ident in keys:
        row = info[ident]
        by_size[(row.width, row.height)].append(ident)
    return [
        (a, b)
        for bucket in by_size.values()
        for n, a in enumerate(bucket[:NEAR_BUCKET])
        for b in bucket[n + 1 : NEAR_BUCKET]
        if keys[a] != keys[b] and _hamming(info[a].phash, info[b].phash) <= NEAR_PHASH_BITS
    ]


def merge_near_copies(
    pairs: Sequence[tuple[int, int]],
    vectors: dict[int, np.ndarray],
    keys: dict[int, GroupKey],
    members: dict[GroupKey, list[int]],
) -> tuple[dict[int, GroupKey], dict[GroupKey, list[int]]]:
    """Merge the groups of ``pairs`` whose feature vectors have cosine >= ``NEAR_COSINE``
    (the phash alone confuses flat or simple tiles); unchanged when none do."""
    parent: dict[GroupKey, GroupKey] = {}

    def root(key: GroupKey) -> GroupKey:
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
    merged: dict[GroupKey, list[int]] = defaultdict(list)
    for key, ids in members.items():
        merged[root(key)].extend(ids)
    return {i: root(key) for i, key in keys.items()}, dict(merged)


def earliest(s: SourceRow) -> tuple[Any, ...]:
    """Sort key: dated pages first, oldest first, then by page and image id."""
    date = s.post_date
    return (date is None, date.timestamp() if date else 0.0, s.page_id, s.image_id)


def one_per_page(sources: list[SourceRow], prefer: int) -> list[SourceRow]:
    """One source per page, pages in the given order; on its page, ``prefer`` (the image the
    query matched, e.g. the tile rather than a loose copy of it) wins."""
    by_page: dict[int, SourceRow] = {}
    for s in sources:
        if s.page_id not in by_page or s.image_id == prefer:
            by_page[s.page_id] = s
    return list(by_page.values())


def _filtered(sources: list[SourceRow], filters: Filters, info: dict[int, Any]) -> list[SourceRow]:
    if filters.license:
        sources = [s for s in sources if filters.license in s.licenses]
    if filters.art_type:
        sources = [s for s in sources if s.art_type == filters.art_type]
    if filters.tiles is not None:
        want_tile = filters.tiles == "only"
        sources = [x for x in sources if (info[x.image_id].parent_id is not None) == want_tile]
    return sources


def group_results(
    matches: Sequence[Match],
    groups: Groups,
    k: int,
    filters: Filters,
    own_page: bool = False,
) -> list[SearchResult]:
    """Up to ``k`` results in match order, one per group: the group's sources that pass
    ``filters``, earliest page first. ``own_page``: the matched image's own page comes first
    (a keyword hit, an image looked up by id)."""
    info, keys, members, sources = groups.info, groups.keys, groups.members, groups.sources
    results: dict[GroupKey, SearchResult] = {}
    for match in matches:
        if match.id not in keys or match.id not in sources:
            continue
        key = keys[match.id]
        if key in results:
            continue
        group_ids = members[key]
        group_sources = [sources[i] for i in group_ids if i in sources]
        group_sources = _filtered(group_sources, filters, info)
        if not group_sources:
            continue
        group_sources.sort(key=earliest)
        first = one_per_page(group_sources, prefer=match.id)
        # The earliest page likely holds the original; a keyword hit or an image looked up
        # by id shows its own page first.
        if own_page:
            own = sources[match.id].page_id
            primary = next((x for x in first if x.page_id == own), first[0])
        else:
            primary = first[0]
        shown = info.get(primary.image_id, info[match.id])
        results[key] = SearchResult(
            image_id=primary.image_id,
            score=float(match.score),
            source=primary.source,
            width=int(shown.width),
            height=int(shown.height),
            frames=int(shown.frames),
            tile=tile_box(shown),
            parent_image_id=shown.parent_id,
            match=match.path,
            copies=[c.source for c in first if c is not primary],
            group_ids=sorted(group_ids),
            edits=list(match.edits),
            query_box=match.box,
        )
        if len(results) >= k:
            break
    return list(results.values())
