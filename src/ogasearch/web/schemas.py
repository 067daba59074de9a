"""The JSON API's documented shapes (a stable contract) and their construction from results.

The search library returns dataclasses (``ogasearch.search.results``); these pydantic models
are what the API promises, so the library can change without the API changing by accident,
and FastAPI publishes them in ``/openapi.json``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from ogasearch.match import labels
from ogasearch.match.labels import Edit, Label
from ogasearch.search.provenance import ConflictsPage, CopyGroup, CopyMember
from ogasearch.search.results import SearchResult, Source

FILE_NAME = "The stored file name: the file URL's last path segment, decoded."
PAGE_FILE_NAME = (
    "The file's name as its page shows it (the link text). OpenGameArt renames an upload "
    "whose name is taken (gfx.zip is stored as gfx_3.zip) while the page still says gfx.zip; "
    "file_name is then the stored name. Equal to file_name when the page shows none."
)
QUERY_BOX = (
    "Where in the query picture this was found, [x0, y0, x1, y1] in its pixels (x1, y1 "
    "excluded): art found in a picture taken as a scene, or anything found in the part of "
    "the query given as `box` (then at least that part). Null when it matched the whole query."
)


class SourceOut(BaseModel):
    """One page of OpenGameArt that holds the image."""

    image_id: int = Field(description="The image occurrence on this page (a catalog image id).")
    page_url: str = Field(description="The OpenGameArt content page.")
    title: str | None
    author: str | None
    author_url: str | None
    licenses: list[str] = Field(description="Licence names; several mean 'any of these'.")
    post_date: datetime | None = Field(description="When the page was submitted (UTC).")
    file_url: str = Field(description="The downloadable file that holds the image.")
    file_name: str = Field(description=FILE_NAME)
    archive_path: str | None = Field(description="Path inside the archive, or null.")
    page_file_name: str = Field(description=PAGE_FILE_NAME)


class ImageOut(BaseModel):
    """One image (grouped with its identical copies) and where it comes from."""

    image_id: int
    image_url: str = Field(description="The image as PNG, served by ogasearch.")
    page_url: str = Field(description="The OpenGameArt page of the best occurrence.")
    title: str | None
    author: str | None
    author_url: str | None
    licenses: list[str]
    post_date: datetime | None
    file_url: str
    file_name: str = Field(description=FILE_NAME)
    archive_path: str | None
    page_file_name: str = Field(description=PAGE_FILE_NAME)
    width: int
    height: int
    frames: int
    tile: tuple[int, int, int, int] | None = Field(
        description="[x, y, w, h] of a tile in its parent sheet, or null for a whole image."
    )
    parent_image_id: int | None = Field(description="The sheet a tile was cut from.")
    parent_image_url: str | None
    copies: list[SourceOut] = Field(
        description="Other pages holding the same image, earliest first."
    )


class MoreOut(BaseModel):
    """Another result from the same page as its card's, folded into that card."""

    image_id: int
    image_url: str = Field(description="The image (a tile: the tile alone) as PNG.")
    score: float = Field(description="Similarity, higher is closer (1.0 for an exact copy).")
    match: str = Field(description="What found it: exact, near, vector, region or text.")
    label: Label = Field(description="The match in plain words (as the card's label).")
    score_percent: int | None = Field(description="The score as a whole percentage, or null.")
    width: int
    height: int
    tile: tuple[int, int, int, int] | None = Field(
        description="[x, y, w, h] of a tile in its parent sheet, or null for a whole image."
    )
    parent_image_id: int | None = Field(description="The sheet a tile was cut from.")
    parent_image_url: str | None
    file_name: str = Field(description=PAGE_FILE_NAME)
    query_box: tuple[int, int, int, int] | None = Field(
        default=None,
        description=QUERY_BOX,
    )


class ResultOut(ImageOut):
    score: float = Field(description="Similarity, higher is closer (1.0 for an exact copy).")
    match: str = Field(description="What found it: exact, near, vector, region or text.")
    label: Label = Field(
        description="The match in plain words, as the web UI and the CLI show it: 'exact "
        "copy' (the same pixels), 'edited copy' (the same picture upscaled, recoloured, "
        "flipped, cropped or re-compressed: an exact or near match with an edit), 'found in "
        "your picture' (art found inside the query, a region match), 'similar' (a vector "
        "match) or 'keyword match' (text)."
    )
    edits: list[Edit] = Field(
        description="The edits measured between the query and this image, when known: "
        "upscaled, recoloured, flipped, cropped, recompressed. Empty when none or unknown "
        "(an 'edited copy' may have edits it cannot name)."
    )
    score_percent: int | None = Field(
        description="The score as a whole percentage (0-100) where it is a similarity "
        "(near, vector, region); null for exact copies and keyword matches."
    )
    more: list[MoreOut] = Field(
        default_factory=list,
        description="One card per page: the other results from this result's page (other "
        "tiles of its sheet, other files), best first. The results list holds one result "
        "per page; these are not repeated in it.",
    )
    query_box: tuple[int, int, int, int] | None = Field(
        default=None,
        description=QUERY_BOX,
    )


class SearchOut(BaseModel):
    results: list[ResultOut]
    took_ms: float = Field(description="Server time for the whole query, in milliseconds.")


class TextSearchOut(SearchOut):
    """A keyword search's answer: a search answer, and the corrected query if any."""

    did_you_mean: str | None = Field(
        default=None,
        description="Keyword queries: the corrected query that was searched instead, when a "
        "word was unknown to the index and one edit away from a word it holds.",
    )


class ErrorOut(BaseModel):
    error: str = Field(description="A short code: unreadable_image, too_large, ...")
    detail: Any = Field(description="What went wrong, for people (validation errors: a list).")


def image_path(image_id: int, root_path: str = "") -> str:
    return f"{root_path}/images/{image_id}.png"


def source_out(source: Source) -> SourceOut:
    return SourceOut(
        image_id=source.image_id,
        page_url=source.page_url,
        title=source.title,
        author=source.author,
        author_url=source.author_url,
        licenses=list(source.licenses),
        post_date=source.post_date,
        file_url=source.file_url,
        file_name=source.file_name,
        archive_path=source.archive_path or None,
        page_file_name=source.page_file_name,
    )


def _image_fields(result: SearchResult, root_path: str) -> dict[str, Any]:
    src = result.source
    return {
        "image_id": result.image_id,
        "image_url": image_path(result.image_id, root_path),
        "page_url": src.page_url,
        "title": src.title,
        "author": src.author,
        "author_url": src.author_url,
        "licenses": list(src.licenses),
        "post_date": src.post_date,
        "file_url": src.file_url,
        "file_name": src.file_name,
        "archive_path": src.archive_path or None,
        "page_file_name": src.page_file_name,
        "width": result.width,
        "height": result.height,
        "frames": result.frames,
        "tile": tuple(result.tile) if result.tile is not None else None,
        "parent_image_id": result.parent_image_id,
        "parent_image_url": _parent_url(result, root_path),
        "copies": [source_out(copy) for copy in result.copies],
    }


def _parent_url(result: SearchResult, root_path: str) -> str | None:
    if result.parent_image_id is None:
        return None
    return image_path(result.parent_image_id, root_path)


def more_out(result: SearchResult, root_path: str = "") -> MoreOut:
    return MoreOut(
        image_id=result.image_id,
        image_url=image_path(result.image_id, root_path),
        score=result.score,
        match=result.match,
        label=labels.label(result.match, result.edits),
        score_percent=labels.score_percent(result.match, result.score),
        width=result.width,
        height=result.height,
        tile=result.tile,
        parent_image_id=result.parent_image_id,
        parent_image_url=_parent_url(result, root_path),
        file_name=result.source.page_file_name,
        query_box=result.query_box,
    )


def image_out(result: SearchResult, root_path: str = "") -> ImageOut:
    return ImageOut(**_image_fields(result, root_path))


def result_out(result: SearchResult, root_path: str = "") -> ResultOut:
    return ResultOut(
        **_image_fields(result, root_path),
        score=result.score,
        match=result.match,
        label=labels.label(result.match, result.edits),
        edits=labels.ordered_edits(result.edits),
        score_percent=labels.score_percent(result.match, result.score),
        more=[more_out(hit, root_path) for hit in result.more],
        query_box=result.query_box,
    )


# -- the conflicts report (``GET /api/conflicts``) -------------------------------------------


class CopyMemberOut(SourceOut):
    """One page of a group of the same art: where it is, how it matches, its flags."""

    image_url: str = Field(description="The matching image as PNG (the evidence to compare).")
    how: str = Field(
        description="original (the earliest page), or how this copy matches it: exact, "
        "upscaled, flipped, recoloured, cut from a sheet, re-compressed, cropped, edited."
    )
    score: float = Field(description="The matcher's score (1.0 for equal canonical pixels).")
    flags: list[str] = Field(
        description="Against the original: different-author, licence-conflict, same-author."
    )


class CopyGroupOut(BaseModel):
    """The same art on several pages: the earliest page first, then every other page."""

    id: int
    flags: list[str] = Field(description="Every flag of the group's copies.")
    original: CopyMemberOut
    copies: list[CopyMemberOut] = Field(description="Copies by other (or unknown) authors.")
    same_author: list[CopyMemberOut] = Field(description="Copies by the original's author.")


class ConflictsOut(BaseModel):
    total: int = Field(description="Groups matching the filters.")
    offset: int
    limit: int
    groups: list[CopyGroupOut]


def copy_member_out(member: CopyMember, root_path: str = "") -> CopyMemberOut:
    return CopyMemberOut(
        **source_out(member.source).model_dump(),
        image_url=image_path(member.source.image_id, root_path),
        how=member.how,
        score=member.score,
        flags=list(member.flags),
    )


def copy_group_out(group: CopyGroup, root_path: str = "") -> CopyGroupOut:
    return CopyGroupOut(
        id=group.id,
        flags=list(group.flags),
        original=copy_member_out(group.original, root_path),
        copies=[copy_member_out(m, root_path) for m in group.copies],
        same_author=[copy_member_out(m, root_path) for m in group.same_author],
    )


def conflicts_out(page: ConflictsPage, root_path: str = "") -> ConflictsOut:
    return ConflictsOut(
        total=page.total,
        offset=page.offset,
        limit=page.limit,
        groups=[copy_group_out(g, root_path) for g in page.groups],
    )


# -- the map of all the art --------------------------------------------------------------------

MAP_UNITS = (
    "Map units: the square [0, 256) that is one 256-pixel tile at zoom 0, y downwards; at zoom "
    "z one unit is 2**z pixels (Leaflet CRS.Simple: lat = -y, lng = x)."
)


class MapPointOut(BaseModel):
    """Where an image lies on the map (a tile of a sheet: where its sheet lies)."""

    image_id: int
    x: float = Field(description=MAP_UNITS)
    y: float = Field(description=MAP_UNITS)


class MapPointsOut(BaseModel):
    """The points of the images asked for that are on the map, in the order asked."""

    points: list[MapPointOut]


class MapLabelOut(BaseModel):
    """A region of the map named by its pages' most particular title and tag words."""

    x: float = Field(description=MAP_UNITS)
    y: float = Field(description=MAP_UNITS)
    text: str
    count: int = Field(description="Images in the region.")


class MapLabelsOut(BaseModel):
    zoom: int
    labels: list[MapLabelOut]
