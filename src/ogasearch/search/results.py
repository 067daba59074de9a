"""What a search returns: results joined to the catalog, copies grouped, earliest first;
the filters a search takes, and the two ways a query is refused: ``ImageNotFound`` (an image
id the catalog does not hold) and ``UnknownFilter`` (a filter value the catalog does not
know, with the valid ones)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import get_args

from ogasearch.index.base import TileFilter

# "only", "exclude": the values of TileFilter's Literal (None, its other member, is no filter)
TILE_FILTERS: tuple[str, ...] = tuple(
    value for member in get_args(TileFilter) for value in get_args(member)
)


class ImageNotFound(LookupError):
    """No image with this id in the catalog (or an id no catalog can hold)."""

    def __init__(self, image_id: int) -> None:
        super().__init__(f"no image {image_id}")
        self.image_id = image_id


class UnknownFilter(ValueError):
    """A filter value that matches nothing the catalog knows; ``valid`` lists those it does."""

    def __init__(self, name: str, value: str, valid: Collection[str]) -> None:
        self.name = name
        self.value = value
        self.valid = sorted(valid)
        listed = ", ".join(repr(v) for v in self.valid) if self.valid else "none yet"
        super().__init__(f"unknown {name} {value!r}; valid: {listed}")


@dataclass(frozen=True)
class Filters:
    license: str | None = None  # a licence name, e.g. "CC0"
    tiles: TileFilter = None  # "only" tiles, "exclude" tiles, or both
    art_type: str | None = None

    def validate(self, licences: Collection[str], art_types: Collection[str]) -> None:
        """Raise ``UnknownFilter`` for the first set filter whose value is not valid: a
        licence not in ``licences``, an art type not in ``art_types``, tiles other than
        ``TILE_FILTERS`` (a filter that matches nothing is a typo, not an empty answer)."""
        if self.tiles is not None and self.tiles not in TILE_FILTERS:
            raise UnknownFilter("tiles", str(self.tiles), TILE_FILTERS)
        if self.license is not None and self.license not in licences:
            raise UnknownFilter("license", self.license, licences)
        if self.art_type is not None and self.art_type not in art_types:
            raise UnknownFilter("art_type", self.art_type, art_types)


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
    file_name: str  # the stored name: the URL's last path segment, decoded
    archive_path: str | None  # path inside the archive, or None for a direct file
    # the name the page shows for the file (its link text): OGA renames a clashing upload
    # (``gfx.zip`` is stored as ``gfx_3.zip``) but its page still says ``gfx.zip``
    page_file_name: str = ""

    def __post_init__(self) -> None:
        self.page_file_name = self.page_file_name or self.file_name


@dataclass
class SearchResult:
    """One group of identical images: the best-scoring occurrence and every other page; as a
    card, also the other results from its page (``more``)."""

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
    # the edits the matcher measured (``search.labels.EDITS``); ``match.labels`` words them
    edits: list[str] = field(default_factory=list)
    # other results from the same page (tiles of the same sheet, other files), best first:
    # one card per page (``search.cards``)
    more: list[SearchResult] = field(default_factory=list)
    # where in the query it was found, (x0, y0, x1, y1) in the query's pixels: art found in
    # a scene, or anything found in the part of the query the user boxed; None otherwise
    query_box: tuple[int, int, int, int] | None = None


@dataclass
class SearchResponse:
    results: list[SearchResult]
    took_ms: float
    did_you_mean: str | None = None  # keyword queries: the corrected query that was searched
