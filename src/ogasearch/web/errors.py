"""Every error the server answers is JSON ``{"error": CODE, "detail": ...}`` with its status.

FastAPI's own shapes (``{"detail": ...}``) are replaced so that clients read one format:
validation errors become ``invalid_parameters`` (422) with FastAPI's list of problems as the
detail (an unknown filter value, ``search.results.UnknownFilter``, is one such problem, with
the valid values), HTTP errors get a code from their status. An unexpected exception is
logged and answered 500 without its internals by ``middleware.ServerErrors`` (inside the
security headers). Refusals that say when to come back (503) carry ``Retry-After``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ogasearch.catalog import CatalogMissing
from ogasearch.search.query_image import BadBox
from ogasearch.search.results import UnknownFilter
from ogasearch.web.query_images import QueryError

CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    422: "invalid_parameters",
    502: "fetch_failed",
    503: "unavailable",
}
NO_INDEX = 503  # no catalog where the settings point yet: ``ogasearch update`` builds it


def error_response(
    status: int, code: str, detail: object, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": code, "detail": jsonable_encoder(detail)}, status_code=status, headers=headers
    )


def unknown_filter_problem(exc: UnknownFilter) -> dict[str, object]:
    """An unknown filter value as one problem of an ``invalid_parameters`` answer."""
    return {
        "loc": ["query", exc.name],
        "msg": str(exc),
        "type": "unknown_value",
        "valid": exc.valid,
    }


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(QueryError)
    async def query_error(request: Request, exc: QueryError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.detail, exc.headers or None)

    @app.exception_handler(UnknownFilter)
    async def unknown_filter(request: Request, exc: UnknownFilter) -> JSONResponse:
        return error_response(422, "invalid_parameters", [unknown_filter_problem(exc)])

    @app.exception_handler(BadBox)
    async def bad_box(request: Request, exc: BadBox) -> JSONResponse:
        return error_response(422, "bad_box", str(exc))

    @app.exception_handler(CatalogMissing)
    async def no_index(request: Request, exc: CatalogMissing) -> JSONResponse:
        return error_response(NO_INDEX, "no_index", str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {k: v for k, v in problem.items() if k in ("loc", "msg", "type")}
            for problem in exc.errors()
        ]
        return error_response(422, "invalid_parameters", problems)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = CODES.get(exc.status_code, f"http_{exc.status_code}")
        response = error_response(exc.status_code, code, exc.detail)
        if exc.headers:
            response.headers.update(exc.headers)
        return response
