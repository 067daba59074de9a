"""The JSON API (``/api/...``): search by image, by image URL, by similarity and by keyword.

Searches run through ``admission.run_query``: in a worker thread (what the blocking work here,
decoding, the feature extractor and SQL, needs), under a cost budget, stopped when the client
goes away; image searches are also admitted by the app's ``QueryGate`` (503 when it is
full). The other handlers are plain ``def`` functions that FastAPI runs in its thread pool.
Filters are checked against the catalog (``filters.py``). Errors are always
``{"error": CODE, "detail": ...}`` (see ``errors.py``).
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from ogasearch.search.provenance import MAX_LIMIT, FlagName
from ogasearch.search.query_image import Box, parse_box
from ogasearch.search.results import Filters, ImageNotFound, SearchResponse
from ogasearch.search.service import SearchService
from ogasearch.settings import Settings
from ogasearch.web.admission import run_query
from ogasearch.web.query_images import (
    QueryError,
    fetch_query_bytes,
    open_query_image,
    too_large,
)
from ogasearch.web.schemas import (
    ConflictsOut,
    ErrorOut,
    ImageOut,
    MapLabelOut,
    MapLabelsOut,
    MapPointOut,
    MapPointsOut,
    SearchOut,
    TextSearchOut,
    conflicts_out,
    image_out,
    result_out,
)

DEFAULT_K = 20
MAX_K = 200

router = APIRouter(prefix="/api", tags=["api"])

K = Annotated[
    int | None, Query(ge=1, le=MAX_K, description=f"How many results (default {DEFAULT_K}).")
]
License = Annotated[
    str | None,
    Query(description="Only images under this licence, e.g. CC0 (unknown licences: 422)."),
]
Tiles = Annotated[
    Literal["only", "exclude"] | None,
    Query(description="only: tiles cut from sheets; exclude: whole images only."),
]
ArtType = Annotated[
    str | None, Query(description="Only this art type, e.g. '2D Art' (unknown types: 422).")
]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    reasons = {
        400: "Unreadable or unsupported image",
        404: "No such image",
        413: "Image too large",
        422: "Bad parameters (unknown filter values are listed), or a URL that may not be fetched",
        502: "The image URL could not be fetched",
        503: "Busy with other image queries, or over the query's budget (see Retry-After)",
    }
    return {s: {"model": ErrorOut, "description": reasons[s]} for s in statuses}


def get_service(request: Request) -> SearchService:
    return request.app.state.service


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


Service = Annotated[SearchService, Depends(get_service)]
AppSettings = Annotated[Settings, Depends(get_settings)]


def _filters(license: str | None, tiles: str | None, art_type: str | None) -> Filters:
    """The search's filters as given; the search checks them (``UnknownFilter``: 422)."""
    return Filters(license=license or None, tiles=tiles, art_type=art_type or None)  # type: ignore[arg-type]


BoxField = Annotated[
    str | None,
    Form(
        description="Search only this part of the picture: x0,y0,x1,y1 in its pixels (x1, y1 "
        "excluded; not inside the picture or empty: 422 bad_box)."
    ),
]


def _image_search(
    service: SearchService,
    settings: Settings,
    data: bytes,
    k: int,
    filters: Filters,
    box: Box | None = None,
) -> SearchResponse:
    with open_query_image(data, settings.limits) as query:
        return service.by_image(query, k=k, filters=filters, box=box)


def _answer(request: Request, response: SearchResponse, started: float) -> SearchOut:
    root = request.scope.get("root_path", "")
    return SearchOut(
        results=[result_out(r, root) for r in response.results],
        took_ms=round((time.perf_counter() - started) * 1000, 3),
    )


@router.post("/search/image", response_model=SearchOut, responses=_errors(400, 413, 422, 503))
async def search_uploaded_image(
    request: Request,
    service: Service,
    settings: AppSettings,
    image: Annotated[UploadFile, File(description="The query image (PNG, GIF, JPEG, BMP, WebP).")],
    k_form: Annotated[int | None, Form(alias="k", ge=1, le=MAX_K)] = None,
    license_form: Annotated[str | None, Form(alias="license")] = None,
    tiles_form: Annotated[Literal["only", "exclude"] | None, Form(alias="tiles")] = None,
    box: BoxField = None,
    k: K = None,
    license: License = None,
    tiles: Tiles = None,
    art_type: ArtType = None,
) -> SearchOut:
    """Images like the uploaded one (multipart field ``image``), or like its part ``box``;
    ``k`` and filters may be given as form fields or in the query string. A result found in
    a part of the picture (a scene, or the box) says where: ``query_box``."""
    started = time.perf_counter()
    part = parse_box(box) if box else None  # BadBox: 422
    limit = settings.limits.max_query_bytes
    if image.size is not None and image.size > limit:
        raise too_large(image.size, limit)
    data = await image.read(limit + 1)
    filters = _filters(license_form or license, tiles_form or tiles, art_type)
    response = await run_query(
        request, _image_search, service, settings, data, k_form or k or DEFAULT_K, filters, part
    )
    return _answer(request, response, started)


@router.get("/search/image", response_model=SearchOut, responses=_errors(400, 413, 422, 502, 503))
async def search_image_url(
    request: Request,
    service: Service,
    settings: AppSettings,
    url: Annotated[str, Query(min_length=1, description="An http(s) URL of the query image.")],
    k: K = None,
    license: License = None,
    tiles: Tiles = None,
    art_type: ArtType = None,
) -> SearchOut:
    """Images like the one at ``url`` (fetched by the server: public http(s) addresses only,
    limited in size and time)."""
    started = time.perf_counter()
    filters = _filters(license, tiles, art_type)
    await run_in_threadpool(service.check_filters, filters)  # before fetching
    fetched = await run_in_threadpool(fetch_query_bytes, url, settings)
    response = await run_query(
        request, _image_search, service, settings, fetched.data, k or DEFAULT_K, filters
    )
    return _answer(request, response, started)


@router.get("/similar/{image_id}", response_model=SearchOut, responses=_errors(404, 422, 503))
async def similar_images(
    request: Request,
    service: Service,
    image_id: int,
    k: K = None,
    license: License = None,
    tiles: Tiles = None,
    art_type: ArtType = None,
) -> SearchOut:
    """Images like an image already in the index."""
    started = time.perf_counter()

    def similar() -> SearchResponse:
        filters = _filters(license, tiles, art_type)
        try:
            return service.similar(image_id, k=k or DEFAULT_K, filters=filters)
        except ImageNotFound:
            raise QueryError(404, "not_found", f"no image {image_id}") from None

    response = await run_query(request, similar, gated=False)
    return _answer(request, response, started)


@router.get("/search/text", response_model=TextSearchOut, responses=_errors(422, 503))
async def search_text(
    request: Request,
    service: Service,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=500,
            pattern=r"[^\W_]",
            description="Keywords (at least one letter or digit).",
        ),
    ],
    k: K = None,
    license: License = None,
    tiles: Tiles = None,
    art_type: ArtType = None,
) -> TextSearchOut:
    """Images whose page title, tags, author, description, file names or archive paths
    match ``q`` (a word one edit from a known word is corrected: ``did_you_mean``)."""
    started = time.perf_counter()

    def text() -> SearchResponse:
        filters = _filters(license, tiles, art_type)
        return service.by_text(q, k=k or DEFAULT_K, filters=filters)

    response = await run_query(request, text, gated=False)
    answer = _answer(request, response, started)
    return TextSearchOut(
        results=answer.results, took_ms=answer.took_ms, did_you_mean=response.did_you_mean
    )


@router.get("/images/{image_id}", response_model=ImageOut, responses=_errors(404, 422))
def image_sources(request: Request, service: Service, image_id: int) -> ImageOut:
    """One image with every page that holds it."""
    result = service.image(image_id)
    if result is None:
        raise QueryError(404, "not_found", f"no image {image_id}")
    return image_out(result, request.scope.get("root_path", ""))


@router.get("/conflicts", response_model=ConflictsOut, responses=_errors(422))
def conflicts(
    request: Request,
    service: Service,
    flag: Annotated[FlagName | None, Query(description="Only groups with this flag.")] = None,
    license: License = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> ConflictsOut:
    """The same art on several pages: groups, the earliest page first, each other page with
    how it matches and its flags (a different author, a licence that does not follow)."""
    page = service.conflicts(flag, license, offset, limit)
    return conflicts_out(page, request.scope.get("root_path", ""))


@router.get("/stats")
def stats(service: Service) -> dict[str, Any]:
    """Counts of pages, files, images, tiles and indexed images; ``empty`` is true while
    nothing is indexed (``message`` says why when there is no catalog yet)."""
    return service.stats()


# -- the map of all the art --------------------------------------------------------------------

MAX_HIGHLIGHT = 500  # ids per /map/points request


@router.get("/map/locate/{image_id}", response_model=MapPointOut, responses=_errors(404, 422))
def map_locate(service: Service, image_id: int) -> MapPointOut:
    """The image's map coordinates (a tile of a sheet: its sheet's)."""
    point = service.map.locate(image_id)
    if point is None:
        raise QueryError(404, "not_found", f"image {image_id} is not on the map")
    return MapPointOut(image_id=point.image_id, x=point.x, y=point.y)


@router.get("/map/points", response_model=MapPointsOut, responses=_errors(422))
def map_points_of(
    service: Service,
    ids: Annotated[str, Query(description="Image ids, comma-separated.", max_length=5000)],
) -> MapPointsOut:
    """Where those images lie (for "show on map"): the ones on the map, in the order given."""
    try:
        wanted = [int(i) for i in ids.split(",") if i.strip()][:MAX_HIGHLIGHT]
    except ValueError:
        raise QueryError(422, "bad_ids", "ids: comma-separated image ids") from None
    points = service.map.locate_many(wanted)
    return MapPointsOut(points=[MapPointOut(image_id=p.image_id, x=p.x, y=p.y) for p in points])


@router.get("/map/at", response_model=MapPointOut, responses=_errors(404, 422))
def map_at(
    service: Service,
    x: Annotated[float, Query(ge=-256, le=512)],
    y: Annotated[float, Query(ge=-256, le=512)],
    z: Annotated[int, Query(ge=0, le=12)],
) -> MapPointOut:
    """The image drawn at (x, y) map units when seen at zoom ``z`` (a click on the map)."""
    point = service.map.at(x, y, z)
    if point is None:
        raise QueryError(404, "not_found", "no image there")
    return MapPointOut(image_id=point.image_id, x=point.x, y=point.y)


@router.get("/map/labels", response_model=MapLabelsOut, responses=_errors(422))
def map_labels(service: Service, z: Annotated[int, Query(ge=0, le=12)]) -> MapLabelsOut:
    """The region labels shown at zoom ``z``."""
    labels = [
        MapLabelOut(x=label.x, y=label.y, text=label.text, count=label.count)
        for label in service.map.labels(z)
    ]
    return MapLabelsOut(zoom=z, labels=labels)
