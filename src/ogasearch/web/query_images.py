"""Turning what a visitor sends (uploaded bytes or an image URL) into a checked query image.

Both ways end in ``ogasearch.search.query_image.open_query_image``, the one place (shared
with the CLI) that refuses query images, in the same words. Every refusal is a
:class:`QueryError` carrying the HTTP status and a short machine-readable code that the API
and the UI both report.

A refused image URL is answered "this URL is not allowed" whatever the reason, and so is a
host name that does not resolve: the reasons name addresses the server resolved (its own
network) and which names exist there, so they go to the server log only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from PIL import Image

from ogasearch.extract.images import sniff_image_format
from ogasearch.search import query_image
from ogasearch.search.query_image import QueryImageRejected
from ogasearch.settings import Limits, Settings
from ogasearch.web.safe_fetch import (
    FetchFailed,
    FetchTooLarge,
    HostUnresolved,
    UrlRefused,
    fetch_url,
)

log = logging.getLogger(__name__)
URL_NOT_ALLOWED = "this URL is not allowed"


class QueryError(Exception):
    """A query that cannot be answered, with the HTTP status and error code to report."""

    def __init__(
        self, status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
    ):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})


def rejected(exc: QueryImageRejected) -> QueryError:
    """A refused query image as its HTTP answer: 413 ``too_large`` or 400 ``unreadable_image``
    (the empty file included), with the words the CLI prints."""
    if exc.reason == "too_large":
        return QueryError(413, "too_large", exc.detail)
    return QueryError(400, "unreadable_image", exc.detail)


def too_large(size: int | None, limit: int) -> QueryError:
    return rejected(query_image.too_large(size, limit))


def open_query_image(data: bytes, limits: Limits) -> Image.Image:
    """Open uploaded or fetched bytes as a loaded image, or raise QueryError (400 or 413)."""
    try:
        return query_image.open_query_image(data, limits)
    except QueryImageRejected as exc:
        raise rejected(exc) from None


def image_media_type(data: bytes) -> str:
    """The media type of bytes that ``open_image`` accepted (to serve them back as a preview)."""
    fmt = sniff_image_format(data[:64]) or "PNG"
    return {"JPEG": "image/jpeg", "WEBP": "image/webp"}.get(fmt, f"image/{fmt.lower()}")


@dataclass(frozen=True)
class FetchedQuery:
    url: str  # after redirects
    data: bytes


def fetch_query_bytes(url: str, settings: Settings) -> FetchedQuery:
    """Fetch an image URL through the SSRF-safe fetcher; raise QueryError (422, 413 or 502)."""
    limits = settings.limits
    try:
        fetched = fetch_url(
            url,
            max_bytes=limits.max_query_bytes,
            timeout=limits.max_query_seconds,
            allow_private=settings.allow_private_urls,
            allowed_hosts=settings.allowed_url_hosts,
            user_agent=settings.user_agent,
        )
    except (UrlRefused, HostUnresolved) as exc:
        # one answer for both: which names resolve (to which addresses) is not told
        log.info("image URL refused: %r: %s", url[:300], exc)
        raise QueryError(422, "url_refused", URL_NOT_ALLOWED) from None
    except FetchTooLarge:
        raise too_large(None, limits.max_query_bytes) from None
    except FetchFailed as exc:
        raise QueryError(502, "fetch_failed", str(exc)) from None
    return FetchedQuery(url=fetched.url, data=fetched.body)
