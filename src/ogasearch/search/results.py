"""What a search returns: results joined to the catalog, copies grouped, earliest first;
and ``ImageNotFound``, raised for an image id the catalog does not hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ogasearch.index.base import TileFilter


class ImageNotFound(LookupError):
    """No image with this id in the catalog (or an id no catalog can hold)."""

    def __init__(self, image_id: int) -> None:
        super().__init__(f"no image {image_id}")
        self.image_id = image_id


@dataclass(frozen=True)
class Filters:
    license: str | None = None  # a licence name, e.g. "CC0"
    tiles: TileFilter = None  # "only" tiles, "exclude" tiles, or both
    art_type: str | None = None


@dataclass
class Source:
    """One place an image appears: a page on OGA, one of its files, maybe inside an archive."""

    image_id: int
    page_id: int
    page_url: str
    title: str | None
    author: str | None
    author_url: str | None
    licenses: list[str]
    post_date: datetime | None
    file_url: str
    file_name: str
    archive_path: str | None  # path inside the archive, or None for a direct file


@dataclass
class SearchResult:
    """One group of identical images: the best-scoring occurrence and every other page."""

    image_id: int
    score: float
    source: Source
    width: int
    height: int
    frames: int
    tile: tuple[int, int, int, int] | None  # (x, y, w, h) in the parent image
    parent_image_id: int | None  # the sheet a tile was cut from
    match: str  # which path found it: "exact", "near", "vector", "region", "text"
    copies: list[Source] = field(default_factory=list)  # other pages holding it, earliest first
    group_ids: list[int] = field(default_factory=list)  # every catalog image of this group


@dataclass
class SearchResponse:
    results: list[SearchResult]
    took_ms: float
    did_you_mean: str | None = None  # keyword queries: the corrected query that was searched
