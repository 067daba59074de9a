"""What the search page shows for one result: sizes for crisp thumbnails, safe links, copies.

Pixel art is drawn with nearest-neighbour scaling; a small sprite is enlarged by a whole
factor (a 16x16 sprite becomes 112x112 in a 128 box, every pixel 7x7), a large one shrunk to
fit. A tile card shows the tile itself; its sheet, with the tile's box outlined (an SVG drawn
in the sheet's own pixel coordinates over the lazily loaded sheet), only when the card's
"in its sheet" is opened. A card is one page (``search.cards``): the page's other results
are small thumbnails behind "N more from this page".

Crawled strings reach the page only through Jinja2's autoescaping; crawled URLs become links
only when they are http(s) (or site-relative, joined to the site root), never ``javascript:``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from ogasearch.match import labels
from ogasearch.search.results import SearchResult, Source
from ogasearch.web.schemas import image_path

THUMB_BOX = 128
SHEET_BOX = 192
MORE_BOX = 48  # the thumbnails of a card's other results from its page


def fit(width: int, height: int, box: int) -> tuple[int, int]:
    """Display size of a ``width`` x ``height`` image in a square ``box``: whole-number
    enlargement for small images (crisp pixels), proportional shrinking for large ones."""
    longest = max(width, height, 1)
    scale = box // longest if longest <= box else box / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def safe_link(url: str | None, site_root: str) -> str | None:
    """``url`` if it may be a link target: http(s), or site-relative (joined to the site)."""
    if not url:
        return None
    url = url.strip()
    if url.startswith("/") and not url.startswith("//"):
        return site_root + url
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return url if scheme in ("http", "https") else None


def licence_class(name: str) -> str:
    """A CSS class for a licence badge: its family, e.g. ``CC-BY-SA 3.0`` -> ``lic-cc-by-sa``."""
    family = name.split(" ")[0].lower()
    return "lic-" + (re.sub(r"[^a-z0-9-]", "", family) or "other")


@dataclass
class SourceView:
    page_url: str | None
    title: str
    author: str | None
    author_url: str | None
    licenses: list[str]
    post_date: str | None
    file_url: str | None
    file_name: str  # the name the page shows (its link text), not the stored one
    archive_path: str | None


@dataclass
class SheetView:
    """The sheet a tile comes from, and the tile's box in sheet pixels."""

    image_url: str
    width: int
    height: int
    view_width: int
    view_height: int
    box: tuple[int, int, int, int]
    stroke: float  # outline width in sheet pixels, about 2 screen pixels


@dataclass
class MoreView:
    """Another result from the card's page: a small thumbnail and how it matches."""

    image_id: int
    image_url: str
    width: int
    height: int
    thumb_width: int
    thumb_height: int
    label: str
    percent: int | None
    file_name: str
    tile: tuple[int, int, int, int] | None


@dataclass
class Card:
    image_id: int
    image_url: str
    width: int
    height: int
    frames: int
    thumb_width: int
    thumb_height: int
    score: float
    match: str
    label: str  # the match in plain words (``search.labels.describe``)
    percent: int | None  # the score as a percentage, or None where it is none
    source: SourceView
    copies: list[SourceView] = field(default_factory=list)
    sheet: SheetView | None = None
    more: list[MoreView] = field(default_factory=list)
    # where in the query picture it was found (x0, y0, x1, y1), drawn on the query on hover
    query_box: tuple[int, int, int, int] | None = None

    @property
    def query_box_text(self) -> str:
        """``query_box`` as "x0,y0,x1,y1" (the card's ``data-query-box``), or ""."""
        return ",".join(map(str, self.query_box)) if self.query_box else ""


def _date(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%d") if value is not None else None


def source_view(source: Source, site_root: str) -> SourceView:
    return SourceView(
        page_url=safe_link(source.page_url, site_root),
        title=source.title or source.page_file_name or "(untitled)",
        author=source.author,
        author_url=safe_link(source.author_url, site_root),
        licenses=list(source.licenses),
        post_date=_date(source.post_date),
        file_url=safe_link(source.file_url, site_root),
        file_name=source.page_file_name,
        archive_path=source.archive_path or None,
    )


def more_view(result: SearchResult, root_path: str = "") -> MoreView:
    thumb_width, thumb_height = fit(result.width, result.height, MORE_BOX)
    return MoreView(
        image_id=result.image_id,
        image_url=image_path(result.image_id, root_path),
        width=result.width,
        height=result.height,
        thumb_width=thumb_width,
        thumb_height=thumb_height,
        label=labels.describe(result.match, result.edits),
        percent=labels.score_percent(result.match, result.score),
        file_name=result.source.page_file_name,
        tile=result.tile,
    )


def card(
    result: SearchResult,
    site_root: str,
    root_path: str = "",
    parent_size: tuple[int, int] | None = None,
) -> Card:
    """The view of one result; ``parent_size`` (the sheet's size) is needed to draw a tile's
    sheet."""
    thumb_width, thumb_height = fit(result.width, result.height, THUMB_BOX)
    sheet = None
    if result.tile is not None and result.parent_image_id is not None and parent_size:
        width, height = parent_size
        view_width, view_height = fit(width, height, SHEET_BOX)
        sheet = SheetView(
            image_url=image_path(result.parent_image_id, root_path),
            width=width,
            height=height,
            view_width=view_width,
            view_height=view_height,
            box=result.tile,
            stroke=round(2 * width / view_width, 2),
        )
    return Card(
        image_id=result.image_id,
        image_url=image_path(result.image_id, root_path),
        width=result.width,
        height=result.height,
        frames=result.frames,
        thumb_width=thumb_width,
        thumb_height=thumb_height,
        score=result.score,
        match=result.match,
        label=labels.describe(result.match, result.edits),
        percent=labels.score_percent(result.match, result.score),
        source=source_view(result.source, site_root),
        copies=[source_view(copy, site_root) for copy in result.copies],
        sheet=sheet,
        more=[more_view(hit, root_path) for hit in result.more],
        query_box=result.query_box,
    )
