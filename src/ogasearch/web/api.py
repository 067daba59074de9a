"""The JSON API (``/api/...``): search by image, by image URL, by similarity and by keyword.

Handlers are plain ``def`` functions: FastAPI runs them in its thread pool, which is what the
blocking work here (decoding, the feature extractor, SQL) needs. Errors are always
``{"error": CODE, "detail": ...}`` (see ``errors.py``).
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from ogasearch.search.provenance import MAX_LIMIT, FlagName
from ogasearch.search.results import Filters, ImageNotFound, SearchResponse
from ogasearch.search.service import SearchService
from ogasearch.settings import Settings
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
    SearchOut,
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
License = Annotated[str | None, Query(description="Only images under this licence, e.g. CC0.")]
Tiles = Annotated[
    Literal["only", "exclude"] | None,
    Query(description="only: tiles cut from sheets; exclude: whole images only."),
]
ArtType = Annotated[str | None, Query(description="Only this art type, e.g. '2D Art'.")]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    reasons = {
        400: "Unreadable or unsupported image",
        404: "No such image",
        413: "Image too large",
        422: "Bad parameters, or a URL that may not be fetched",
        502: "The image URL could not be fetched",
    }
    return {s: {"model": ErrorOut, "description": reasons[s]} for s in statuses}


def get_service(request: Request) -> SearchService:
    return request.app.state.service


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


Service = Annotated[SearchService, Depends(get_service)]
AppSettings = Annotated[Settings, Depends(get_settings)]


def _answer(request: Request, response: SearchResponse, started: float) -> SearchOut:
    root = request.scope.get("root_path", "")
    return SearchOut(
        results=[result_out(r, root) for r in response.results],
        took_ms=round((time.perf_counter() - started) * 1000, 3),
    )


@router.post("/search/image", response_model=SearchOut, responses=_errors(400, 413, 422))
def search_uploaded_image(
    request: Request,
    service: Service,
    settings: AppSettings,
    image: Annotated[UploadFile, File(description="The query image (PNG, GIF, JPEG, BMP, WebP).")],
    k_form: Annotated[int | None, Form(alias="k", ge=1, le=MAX_K)] = None,
    license_form: Annotated[str | None, Form(alias="license")] = None,
    tiles_form: Annotated[Literal["only", "exclude"] | None, Form(alias="tiles")] = None,
    k: K = None,
    license: License = None,
    tiles: Tiles = None,
    art_type: ArtType = None,
) -> SearchOut:
    """Images like the uploaded one (multipart field ``image``); ``k`` and filters may be
    given as form fields or in the query string."""
    started = time.perf_counter()
    limit = settings.limits.max_query_bytes
    if image.size is not None and image.size > limit:
        raise too_large(image.size, limit)
    data = image.file.read(limit + 1)
    filters = Filters(license=license_form or license, tiles=tiles_form or tiles, art_type=art_type)
    with open_query_image(data, settings.limits) as query:
        response = service.by_image(query, k=k_form or k or DEFAULT_K, filters=filters)
    return _answer(request, response, started)


@router.get("/search/image", response_model=SearchOut, responses=_errors(400, 413, 422, 502))
def search_image_url(
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
    fetched = fetch_query_bytes(url, settings)
    filters = Filters(license=license, tiles=tiles, art_type=art_type)
    with open_query_image(fetched.data, settings.limits) as query:
        response = service.by_image(query, k=k or DEFAULT_K, filters=filters)
    return _answer(request, response, started)


@router.get("/similar/{image_id}", response_model=SearchOut, responses=_errors(404, 422))
def similar_images(
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
    filters = Filters(license=license, tiles=tiles, art_type=art_type)
    try:
        response = service.similar(image_id, k=k or DEFAULT_K, filters=filters)
    except ImageNotFound:
        raise QueryError(404, "not_found", f"no image {image_id}") from None
    return _answer(request, response, started)


@router.get("/search/text", response_model=SearchOut, responses=_errors(422))
def search_text(
    request: Request,
    service: Service,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Keywords.")],
    k: K = None,
    license: License = None,
    tiles: Tiles = None,
    art_type: ArtType = None,
) -> SearchOut:
    """Images whose page title, tags, author, description or file names match ``q``."""
    started = time.perf_counter()
    filters = Filters(license=license, tiles=tiles, art_type=art_type)
    response = service.by_text(q, k=k or DEFAULT_K, filters=filters)
    return _answer(request, response, started)


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
    """Counts of pages, files, images, tiles and indexed images."""
    return service.stats()
