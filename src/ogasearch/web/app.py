"""The web application: the JSON API and the search page over one ``SearchService``.

``create_app(settings)`` builds it from the same settings as every other command, so
``ogasearch serve`` reads the data folder that ``ogasearch update`` writes (the catalog is
read through its own connections; SQLite in WAL mode lets an update write meanwhile).

The interactive API pages (``/docs``, ``/redoc``) are off: they load their scripts from a
CDN, which the pages' Content-Security-Policy (``'self'`` only) forbids and which would make
every visitor's browser fetch code from a third party. The API is described by
``/openapi.json``, which any OpenAPI viewer opens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ogasearch import __version__
from ogasearch.search.service import SearchService
from ogasearch.settings import Settings
from ogasearch.web import api, ui
from ogasearch.web.admission import QueryGate, RefuseWhenBusy
from ogasearch.web.errors import install_error_handlers
from ogasearch.web.middleware import BodySizeLimit, SecurityHeaders, ServerErrors
from ogasearch.web.uploads import QueryImageCache

STATIC = Path(__file__).parent / "static"
MULTIPART_OVERHEAD = 64 << 10  # form fields and part headers around the image
DESCRIPTION = """
Reverse image search for the 2D and pixel art on OpenGameArt.org.

Every search answers `{"results": [...], "took_ms": float}`; every error answers
`{"error": CODE, "detail": ...}` with status 400 (unreadable or unsupported image),
404 (unknown image), 413 (image too large), 422 (bad parameters, unknown filter values, or
an image URL that may not be fetched: only public http(s) addresses are), 502 (the image URL
could not be fetched) or 503 (busy with other image queries, or a query over its budget:
try again after `Retry-After` seconds).
"""
# every answer that does not set its own (the UI's pages do): nothing may load from it
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


def create_app(settings: Settings, service: SearchService | None = None) -> FastAPI:
    """The ASGI app serving the API (``/api``), the UI (``/``) and images (``/images``).

    ``service`` defaults to a ``SearchService`` over ``settings``; it is closed at shutdown.
    """
    search = service if service is not None else SearchService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            search.close()

    app = FastAPI(
        title="ogasearch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = search
    app.state.query_images = QueryImageCache(replay_seconds=settings.serving.upload_replay_seconds)
    app.state.query_gate = QueryGate.from_settings(settings)
    install_error_handlers(app)
    app.include_router(api.router)
    app.include_router(ui.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Added last = outermost: the security headers go on every answer (413s and 500s too),
    # and the size cap acts before anything reads the body.
    app.add_middleware(
        RefuseWhenBusy,
        gate=app.state.query_gate,
        paths=frozenset({("POST", "/api/search/image")}),
    )
    max_mb = settings.limits.max_query_bytes / (1 << 20)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.limits.max_query_bytes + MULTIPART_OVERHEAD,
        limit_text=f"{max_mb:g} MiB",
    )
    app.add_middleware(ServerErrors)
    app.add_middleware(
        SecurityHeaders,
        headers=[
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
            ("Content-Security-Policy", DEFAULT_CSP),
        ],
    )
    return app
