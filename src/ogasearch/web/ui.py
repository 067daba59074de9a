"""The web UI: one server-rendered search page (Jinja2) and the images it shows.

``GET /`` renders a search given in its query string (``q``, ``url``, ``similar`` or
``upload``, plus ``license``, ``tiles`` and ``page``), so every result page is a link.
``POST /`` takes the search form (an image file, or text that is either an image URL or
keywords), keeps an uploaded image in the query cache and redirects to the ``GET`` page.
Query parameters are read leniently here (a bad ``page`` means page 1): people type URLs;
a filter value the catalog does not know is answered 422 with the valid ones, as in the API.
Searches run through ``admission.run_query`` (image searches admitted by the query gate, a
busy server answers 503); ``?upload=`` re-runs only the visitor's own recent uploads
(``uploads.py``). An image search may be of a part of the picture (``box``, drawn on the
query picture by ``static/point.js`` or typed in the box form); results found in a part of
the picture carry their box, drawn on the query picture when their card is pointed at.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ogasearch.match.labels import plural
from ogasearch.search.provenance import FLAGS
from ogasearch.search.query_image import BadBox, Box, parse_box
from ogasearch.search.results import (
    Filters,
    ImageNotFound,
    SearchResponse,
    SearchResult,
    UnknownFilter,
)
from ogasearch.search.service import SearchService
from ogasearch.settings import Settings
from ogasearch.web.admission import run_query
from ogasearch.web.api import MAX_K, get_service, get_settings
from ogasearch.web.query_images import (
    QueryError,
    fetch_query_bytes,
    image_media_type,
    open_query_image,
    too_large,
)
from ogasearch.web.schemas import conflicts_out
from ogasearch.web.uploads import OWNER_COOKIE, QueryImageCache, new_owner
from ogasearch.web.views import Card, card, licence_class

PAGE_SIZE = 24
TEMPLATES = Path(__file__).parent / "templates"
FAVICON = Path(__file__).parent / "static" / "favicon.ico"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_URL_LIKE = re.compile(r"^https?://", re.IGNORECASE)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True
    )
)
templates.env.filters["licence_class"] = licence_class
templates.env.filters["plural"] = plural

router = APIRouter(include_in_schema=False)

Service = Annotated[SearchService, Depends(get_service)]
AppSettings = Annotated[Settings, Depends(get_settings)]


def get_cache(request: Request) -> QueryImageCache:
    return request.app.state.query_images


Cache = Annotated[QueryImageCache, Depends(get_cache)]


@dataclass
class Query:
    """The search a page shows, as read from its query string."""

    q: str = ""
    url: str = ""
    similar: int | None = None
    upload: str = ""
    license: str = ""
    tiles: str = ""
    page: int = 1
    box: str = ""  # an image search of a part of the picture: "x0,y0,x1,y1" (``parse_box``)

    @property
    def mode(self) -> str | None:
        if self.upload:
            return "upload"
        if self.url:
            return "url"
        if self.similar is not None:
            return "similar"
        if self.q:
            return "text"
        return None

    @property
    def part(self) -> Box | None:
        """The part of the query picture to search (``box``), or None for all of it."""
        return parse_box(self.box) if self.box else None

    @property
    def filters(self) -> Filters:
        """The page's filters as given: the search checks them (``UnknownFilter``)."""
        return Filters(license=self.license or None, tiles=self.tiles or None)  # type: ignore[arg-type]

    def params(self, **changes: Any) -> dict[str, str]:
        """This query as URL parameters (only the set ones), with ``changes`` applied."""
        values = {
            "q": self.q if self.mode == "text" else "",
            "url": self.url if self.mode == "url" else "",
            "similar": str(self.similar) if self.mode == "similar" else "",
            "upload": self.upload if self.mode == "upload" else "",
            "license": self.license,
            "tiles": self.tiles,
            "box": self.box if self.mode in ("upload", "url") else "",
            "page": str(self.page) if self.page > 1 else "",
        }
        values.update({k: "" if v is None else str(v) for k, v in changes.items()})
        return {k: v for k, v in values.items() if v}

    def link(self, **changes: Any) -> str:
        params = self.params(**changes)
        return "/?" + urlencode(params) if params else "/"

    def similar_link(self, image_id: int) -> str:
        """Images like ``image_id``, with this query's filters."""
        return Query(similar=image_id, license=self.license, tiles=self.tiles).link()


def _int(text: str | None, default: int | None) -> int | None:
    try:
        return int(text) if text is not None and text.strip() else default
    except ValueError:
        return default


def _box(params: Any) -> str:
    """The part of the picture to search, from ``box`` or from the four fields of the page's
    box form (``x0``, ``y0``, ``x1``, ``y1``), as "x0,y0,x1,y1"; "" when none is given. A
    malformed box is kept as given: the search refuses it in words (``BadBox``)."""
    corners = [str(params.get(name, "")).strip() for name in ("x0", "y0", "x1", "y1")]
    given = str(params.get("box", "")).strip() or (",".join(corners) if all(corners) else "")
    return given[:80]


def read_query(request: Request) -> Query:
    p = request.query_params
    max_page = -(-MAX_K // PAGE_SIZE)
    page = _int(p.get("page"), 1) or 1
    upload = p.get("upload", "").strip().lower()
    return Query(
        box=_box(p),
        q=p.get("q", "").strip()[:500],
        url=p.get("url", "").strip(),
        similar=_int(p.get("similar"), None),
        upload=upload if _SHA256.match(upload) else "",
        license=p.get("license", "").strip()[:200],
        tiles=p.get("tiles", "").strip()[:50],
        page=min(max(page, 1), max_page),
    )


@dataclass
class PageState:
    query: Query
    cards: list[Card] = field(default_factory=list)
    error: str | None = None
    status: int = 200
    took_ms: float | None = None
    has_more: bool = False
    query_image_url: str | None = None
    similar_name: str | None = None  # what "More like ..." names: the image's page or file


def _run(
    query: Query,
    service: SearchService,
    settings: Settings,
    cache: QueryImageCache,
    owner: str | None = None,
) -> tuple[SearchResponse, str | None]:
    """Run the page's search for enough results to fill its page; also the query preview."""
    k = min(query.page * PAGE_SIZE, MAX_K)
    filters = query.filters
    if query.mode == "upload":
        data = cache.upload(query.upload, owner)
        if data is None:
            raise QueryError(404, "expired", "This upload has expired: choose the image again.")
        with open_query_image(data, settings.limits) as image:
            response = service.by_image(image, k=k, filters=filters, box=query.part)
        return response, f"/uploads/{query.upload}"
    if query.mode == "url":
        cached = cache.for_url(query.url)
        data = cached[1] if cached else fetch_query_bytes(query.url, settings).data
        with open_query_image(data, settings.limits) as image:
            response = service.by_image(image, k=k, filters=filters, box=query.part)
        key = cached[0] if cached else cache.put(data, url=query.url)  # only readable images
        return response, f"/uploads/{key}"
    if query.mode == "similar" and query.similar is not None:
        try:
            response = service.similar(query.similar, k=k, filters=filters)
        except ImageNotFound:
            raise QueryError(404, "not_found", f"There is no image {query.similar}.") from None
        return response, f"/images/{query.similar}.png"
    return service.by_text(query.q, k=k, filters=filters), None


def _parent_sizes(
    service: SearchService, results: list[SearchResult]
) -> dict[int, tuple[int, int]]:
    """The size of each sheet a shown tile was cut from, read in one batch."""
    parents = [r.parent_image_id for r in results if r.parent_image_id is not None]
    return {i: (sheet.width, sheet.height) for i, sheet in service.images(parents).items()}


def _image_name(service: SearchService, image_id: int) -> str | None:
    """How people know an image: its page's title, else the name its page gives the file."""
    found = service.image(image_id)
    if found is None:
        return None
    return found.source.title or found.source.page_file_name


def build_page(
    query: Query,
    service: SearchService,
    settings: Settings,
    cache: QueryImageCache,
    owner: str | None = None,
) -> PageState:
    state = PageState(query=query)
    if query.mode is None:
        return state
    started = time.perf_counter()
    try:
        response, state.query_image_url = _run(query, service, settings, cache, owner)
    except QueryError as exc:
        state.error, state.status = exc.detail, exc.status
        return state
    except (UnknownFilter, BadBox) as exc:
        state.error, state.status = str(exc), 422
        return state
    if query.mode == "similar" and query.similar is not None:
        state.similar_name = _image_name(service, query.similar)
    start = (query.page - 1) * PAGE_SIZE
    shown = response.results[start : start + PAGE_SIZE]
    sizes = _parent_sizes(service, shown)
    state.cards = [
        card(r, settings.site_root, parent_size=sizes.get(r.parent_image_id or -1)) for r in shown
    ]
    k = min(query.page * PAGE_SIZE, MAX_K)
    state.has_more = len(response.results) >= k and k < MAX_K
    state.took_ms = (time.perf_counter() - started) * 1000
    return state


def render(request: Request, state: PageState, service: SearchService) -> HTMLResponse:
    query = state.query
    context = {
        "state": state,
        "query": query,
        "licenses": service.licenses(),
        "stats": service.stats() if query.mode is None else None,
        "max_bytes": request.app.state.settings.limits.max_query_bytes,
        "pages": list(range(1, query.page + 1)),
        "page_size": PAGE_SIZE,
    }
    response = templates.TemplateResponse(request, "search.html", context, status_code=state.status)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@router.get("/", response_class=HTMLResponse)
async def search_page(
    request: Request, service: Service, settings: AppSettings, cache: Cache
) -> HTMLResponse:
    query = read_query(request)
    owner = request.cookies.get(OWNER_COOKIE)
    headers: dict[str, str] = {}
    try:
        await run_in_threadpool(service.check_filters, Filters(license=query.license or None))
        if query.mode == "url":  # fetched before the query gets its slot and budget
            await run_in_threadpool(_fetch_into_cache, query.url, settings, cache)
        image = query.mode in ("upload", "url")
        state = await run_query(
            request, build_page, query, service, settings, cache, owner, gated=image
        )
    except QueryError as exc:
        state = PageState(query=query, error=exc.detail, status=exc.status)
        headers = exc.headers
    except UnknownFilter as exc:
        state = PageState(query=query, error=str(exc), status=422)
    response = await run_in_threadpool(render, request, state, service)
    response.headers.update(headers)
    return response


def _fetch_into_cache(url: str, settings: Settings, cache: QueryImageCache) -> None:
    """Fetch an image URL that is not in the cache yet, and keep it if it is readable."""
    if cache.for_url(url) is None:
        data = fetch_query_bytes(url, settings).data
        _check_image(data, settings)
        cache.put(data, url=url)


@router.post("/", response_class=HTMLResponse)
async def submit_search(
    request: Request, service: Service, settings: AppSettings, cache: Cache
) -> Response:
    """The search form: an image file wins, then the text (an image URL or keywords), then
    the current search (hidden fields), re-run with the chosen filters."""
    limit = settings.limits.max_query_bytes
    async with request.form(max_files=1, max_fields=20) as form:
        filters = {
            "license": str(form.get("license") or "").strip(),
            "tiles": str(form.get("tiles") or ""),
        }
        text = str(form.get("q") or "").strip()
        upload = form.get("image")
        data, error = b"", None
        if isinstance(upload, UploadFile) and upload.size:
            if upload.size > limit:
                error = too_large(upload.size, limit)
            else:
                data = await upload.read(limit + 1)
        current = {k: str(form.get(k) or "") for k in ("upload", "similar", "url", "box")}
    query = Query(**{k: v for k, v in filters.items() if v})  # type: ignore[arg-type]
    if error is None and data:
        try:
            await run_in_threadpool(_check_image, data, settings)
        except QueryError as exc:
            error = exc
        else:
            owner = request.cookies.get(OWNER_COOKIE) or new_owner()
            key = cache.put_upload(data, owner)
            target = Query(upload=key, license=filters["license"], tiles=filters["tiles"])
            redirect = RedirectResponse(target.link(), status_code=303)
            redirect.set_cookie(
                OWNER_COOKIE,
                owner,
                max_age=int(settings.serving.upload_replay_seconds),
                httponly=True,
                samesite="strict",
            )
            return redirect
    if error is not None:
        state = PageState(query=query, error=error.detail, status=error.status)
        return await run_in_threadpool(render, request, state, service)
    if text:
        target = Query(url=text) if _URL_LIKE.match(text) else Query(q=text)
    elif current["upload"]:  # a filter changed: the same picture, the same part of it
        target = Query(upload=current["upload"], box=current["box"][:80])
    elif current["url"]:
        target = Query(url=current["url"])
    elif _int(current["similar"], None) is not None:
        target = Query(similar=_int(current["similar"], None))
    else:
        target = Query()
    target.license, target.tiles = filters["license"], filters["tiles"]
    return RedirectResponse(target.link(), status_code=303)


def _check_image(data: bytes, settings: Settings) -> None:
    with open_query_image(data, settings.limits):
        pass


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    """The site's icon (drawn by ``scripts/favicon.py``)."""
    return FileResponse(
        FAVICON, media_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"}
    )


@router.get("/images/{image_id}.png")
def image_png(image_id: int, service: Service) -> Response:
    """An indexed image (a tile cut from its sheet) as PNG."""
    try:
        data = service.image_png(image_id)
    except ImageNotFound:
        raise QueryError(404, "not_found", f"no image {image_id}") from None
    return Response(
        data, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"}
    )


@router.get("/conflicts", response_class=HTMLResponse)
def conflicts_page(request: Request, service: Service) -> HTMLResponse:
    """The conflicts report: groups of the same art on several pages, filtered and paged."""
    params = request.query_params
    flag = params.get("flag") if params.get("flag") in FLAGS else None
    licence = params.get("license") or None
    page = max(_int(params.get("page"), 1) or 1, 1)
    report = service.conflicts(flag, licence, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    report_out = conflicts_out(report, request.scope.get("root_path", ""))

    def link(n: int) -> str:
        kept = {"flag": flag or "", "license": licence or "", "page": str(n)}
        return "/conflicts?" + urlencode({k: v for k, v in kept.items() if v})

    context = {
        "report": report_out,
        "flags": FLAGS,
        "flag": flag,
        "license": licence,
        "licenses": service.licenses(),
        "page": page,
        "prev_link": link(page - 1) if page > 1 else None,
        "next_link": link(page + 1) if page * PAGE_SIZE < report.total else None,
    }
    response = templates.TemplateResponse(request, "conflicts.html", context)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@router.get("/uploads/{key}")
def query_image(key: str, cache: Cache) -> Response:
    """A recent query image (uploaded or fetched), shown beside its results."""
    data = cache.get(key) if _SHA256.match(key) else None
    if data is None:
        raise QueryError(404, "not_found", "no such query image (it may have expired)")
    return Response(
        data, media_type=image_media_type(data), headers={"Cache-Control": "private, max-age=600"}
    )


# -- the map of all the art --------------------------------------------------------------------

_IDS = re.compile(r"^\d+(,\d+)*$")
MAX_HIGHLIGHT = 500  # results a "show on map" link may highlight


def _empty_tile() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (1, 1)).save(out, "WEBP", lossless=True)
    return out.getvalue()


EMPTY_TILE = _empty_tile()  # where the map has no image: Leaflet stretches it, transparent


@router.get("/map", response_class=HTMLResponse)
def map_page(request: Request, service: Service) -> HTMLResponse:
    """The map of all the art; ``?highlight=ID,ID`` marks those images (a result list)."""
    highlight = request.query_params.get("highlight", "").strip()
    ids = highlight.split(",")[:MAX_HIGHLIGHT] if _IDS.match(highlight) else []
    context = {
        "info": service.map.info(),
        "outdated": service.map.outdated(),
        "highlight": ",".join(ids),
    }
    response = templates.TemplateResponse(request, "map.html", context)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@router.get("/map/tiles/{z}/{x}/{y}.webp")
def map_tile(z: int, x: int, y: int, service: Service) -> Response:
    """One 256-pixel tile of the map (an empty one where nothing is drawn)."""
    data = service.map.tile(z, x, y)
    return Response(
        EMPTY_TILE if data is None else data,
        media_type="image/webp",
        headers={"Cache-Control": "public, max-age=300"},
    )
