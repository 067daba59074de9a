"""Request -> response for the local site, without sockets: routing, validators, 304s.

Kept apart from the socket server so the fault injection there can wrap a normal response
(truncate it, delay it) without knowing how it was made.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, unquote_to_bytes, urlsplit

from PIL import Image

from ogasearch.localsite import packing
from ogasearch.localsite.imaging import fit_within
from ogasearch.localsite.model import Site, StoredFile
from ogasearch.localsite.render import (
    ListingQuery,
    http_date,
    render_content,
    render_listing,
    render_simple,
    robots_txt,
)

HTML = "text/html; charset=utf-8"
IMAGE_STYLES = {"thumbnail": 100, "medium": 220, "large": 480}  # Drupal's default image styles


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def decode_path(target: str) -> tuple[str, str]:
    """(decoded path, raw query) of a request target; UTF-8 percent-escapes decoded once.

    ``http.server`` hands the request line over as Latin-1 text, so raw (unencoded) UTF-8 bytes
    are recovered by re-encoding before decoding the escapes.
    """
    parts = urlsplit(target)
    raw = parts.path.encode("latin-1", errors="replace")
    return unquote_to_bytes(raw).decode("utf-8", errors="replace"), parts.query


def strong_etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def not_modified(headers: Mapping[str, str], etag: str, last_modified: datetime | None) -> bool:
    """RFC 9110: If-None-Match decides when present; otherwise If-Modified-Since."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = [t.strip() for t in if_none_match.split(",")]
        return "*" in tags or etag in {t.removeprefix("W/") for t in tags}
    since = headers.get("if-modified-since")
    if since and last_modified is not None:
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        if when.tzinfo is None:
            return False
        return last_modified.replace(microsecond=0) <= when
    return False


class SiteApp:
    """Answers requests for one site at one base URL."""

    def __init__(self, site: Site, base_url: str, crawl_delay: float | None = None) -> None:
        self.site = site
        self.base_url = base_url.rstrip("/")
        self.crawl_delay = crawl_delay
        self.max_items_per_page: int | None = None
        self._derivatives: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def handle(self, method: str, target: str, headers: Mapping[str, str]) -> Response:
        """``headers`` keys are lower case. HEAD gets GET's headers (the server drops the body)."""
        if method not in ("GET", "HEAD"):
            return Response(405, b"Method Not Allowed\n", {"Allow": "GET, HEAD"})
        path, query = decode_path(target)
        if path == "/robots.txt":
            body = robots_txt(self.crawl_delay).encode()
            return self._validated(headers, body, "text/plain; charset=utf-8", None)
        if path == "/art-search-advanced":
            listing = ListingQuery.parse(
                parse_qsl(query, keep_blank_values=True), self.max_items_per_page
            )
            html = render_listing(self.site, listing, self.base_url)
            return self._validated(headers, html.encode(), HTML, self.site.last_modified())
        if path.startswith("/content/"):
            return self._content(headers, path.removeprefix("/content/"))
        if match := re.fullmatch(r"/node/(\d+)/?", path):
            page = self.site.page_by_node(int(match.group(1)))
            if page is None:
                return self._not_found(path)
            location = f"{self.base_url}/content/{page.slug}"
            return Response(301, b"", {"Location": location, "Content-Type": HTML})
        if match := re.fullmatch(r"/file/(\d+)/dlcounter", path):
            count = self.site.count_download(int(match.group(1)))
            return Response(200, str(count).encode(), {"Content-Type": "text/plain"})
        if match := re.fullmatch(r"/sites/default/files/styles/([a-z_]+)/public/([^/]+)", path):
            return self._derivative(headers, match.group(1), match.group(2))
        if re.fullmatch(
            r"/(sites/default/files/(license_images|pictures)|modules/file/icons"
            r"|sites/all/themes/oga)/[^/]+",
            path,
        ):
            return self._decoration(headers, path)
        if match := re.fullmatch(r"/sites/default/files/([^/]+)", path):
            stored = self.site.file(match.group(1))
            if stored is None:
                return self._not_found(path)
            return self._file(headers, stored)
        if path == "/":
            html = render_simple(
                "Welcome",
                "A local copy of OpenGameArt.org. Browse the 2D art listing.",
                self.base_url,
            )
            return self._validated(headers, html.encode(), HTML, self.site.last_modified())
        return self._not_found(path)

    def _validated(
        self, headers: Mapping[str, str], body: bytes, content_type: str, modified: datetime | None
    ) -> Response:
        etag = strong_etag(body)
        result = {"ETag": etag, "Content-Type": content_type}
        if modified is not None:
            result["Last-Modified"] = http_date(modified)
        if not_modified(headers, etag, modified):
            return Response(304, b"", result)
        return Response(200, body, result)

    def _content(self, headers: Mapping[str, str], slug: str) -> Response:
        page = self.site.page(slug.rstrip("/"))
        if page is None:
            return self._not_found(f"/content/{slug}")
        html = render_content(self.site, page, self.base_url)
        response = self._validated(headers, html.encode(), HTML, page.last_modified)
        response.headers["Link"] = f'</node/{page.node_id}>; rel="shortlink"'
        return response

    def _file(self, headers: Mapping[str, str], stored: StoredFile) -> Response:
        result = {
            "ETag": stored.etag,
            "Last-Modified": http_date(stored.uploaded),
            "Content-Type": stored.content_type,
            "Cache-Control": "max-age=1209600",
        }
        if not_modified(headers, stored.etag, stored.uploaded):
            return Response(304, b"", result)
        return Response(200, stored.data, result)

    def _derivative(self, headers: Mapping[str, str], style: str, name: str) -> Response:
        stored = self.site.file(name)
        box = IMAGE_STYLES.get(style)
        if stored is None or box is None:
            return self._not_found(f"/sites/default/files/styles/{style}/public/{name}")
        key = (style, stored.sha256)
        with self._lock:
            data = self._derivatives.get(key)
        if data is None:
            try:
                data = _resized(stored.data, box)
            except (OSError, ValueError):
                return self._not_found(name)
            with self._lock:
                self._derivatives[key] = data
        derived = StoredFile(name, data, stored.content_type, stored.uploaded)
        return self._file(headers, derived)

    def _decoration(self, headers: Mapping[str, str], path: str) -> Response:
        """Theme images, file-type icons, licence badges, avatars: small real PNGs."""
        if path.endswith(".css"):
            return self._validated(headers, b"body{margin:0}\n", "text/css", None)
        data = _badge(path)
        return self._validated(headers, data, "image/png", None)

    def _not_found(self, path: str) -> Response:
        html = render_simple(
            "Page not found", f"The requested page {path!r} could not be found.", self.base_url
        )
        return Response(404, html.encode(), {"Content-Type": HTML})


def _resized(data: bytes, box: int) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        fmt = image.format
        image.load()
        small = fit_within(image.convert("RGBA"), box)
    if fmt == "GIF":
        return packing.single_gif(small)
    if fmt == "JPEG":
        return packing.jpeg(small)
    if fmt == "BMP":
        return packing.bmp(small)
    return packing.png(small)


def _badge(path: str) -> bytes:
    """A 16x16 PNG whose colour depends on the path (stands in for icons the site shows)."""
    digest = hashlib.sha256(path.encode()).digest()
    return packing.png(Image.new("RGBA", (16, 16), (digest[0], digest[1], digest[2], 255)))
