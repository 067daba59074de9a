"""The local site over HTTP: a threading ``http.server`` with fault injection and a request log.

``http.server`` rather than an ASGI server because faults need the socket: closing it without
a response, or after part of a body whose Content-Length promised more.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ogasearch.localsite.app import HTML, Response, SiteApp, decode_path
from ogasearch.localsite.faults import Fault, FaultRules, RequestLog, RequestRecord
from ogasearch.localsite.manifest import Manifest
from ogasearch.localsite.model import Site
from ogasearch.localsite.render import render_simple

log = logging.getLogger(__name__)

_STATUS_TITLES = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class _SiteServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], site: Site, crawl_delay: float | None) -> None:
        super().__init__(address, _Handler)
        host, port = self.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else str(host)
        self.base_url = f"http://{shown}:{port}"
        self.app = SiteApp(site, self.base_url, crawl_delay)
        self.faults = FaultRules()
        self.log = RequestLog()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("local site: error while serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _SiteServer

    def version_string(self) -> str:
        return "Apache"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("local site: " + format, *args)

    def _serve(self, method: str) -> None:
        path, _ = decode_path(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = self.server.log.start(
            method, self.path, path, headers, f"{self.client_address[0]}:{self.client_address[1]}"
        )
        length = int(headers.get("content-length", "0") or 0)
        if length:
            self.rfile.read(length)
        fault = self.server.faults.take(method, self.path)
        record.fault = fault.kind if fault else None
        try:
            if fault is None or fault.kind == "slow":
                if fault is not None:
                    time.sleep(fault.delay)
                self._send(record, method, self.server.app.handle(method, self.path, headers))
            elif fault.kind == "drop":
                self._drop(fault.reset)
            elif fault.kind == "status":
                self._send(record, method, self._error_response(fault))
            elif fault.kind == "redirect":
                location = fault.location or "/"
                if location.startswith("/"):
                    location = self.server.base_url + location
                body = f'<a href="{location}">Moved</a>\n'.encode()
                response = Response(
                    fault.status, body, {"Location": location, "Content-Type": HTML}
                )
                self._send(record, method, response)
            elif fault.kind == "raw":
                headers = {"Content-Type": fault.content_type} if fault.content_type else {}
                self._send(record, method, Response(fault.status, fault.data, headers))
            elif fault.kind == "truncate":
                response = self.server.app.handle(method, self.path, headers)
                self._send(record, method, response, keep=fault.fraction)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. timed out while we slept)

    def _error_response(self, fault: Fault) -> Response:
        title = _STATUS_TITLES.get(fault.status, "Error")
        html = render_simple(title, "Please try again later.", self.server.base_url)
        headers = {"Content-Type": HTML}
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        return Response(fault.status, html.encode(), headers)

    def _send(
        self, record: RequestRecord, method: str, response: Response, keep: float | None = None
    ) -> None:
        record.status = response.status  # before the client can see the answer
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status != 304:
            self.send_header("Content-Length", str(len(response.body)))
        if keep is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if method == "HEAD" or response.status == 304:
            return
        if keep is None:
            self.wfile.write(response.body)
            return
        self.wfile.write(response.body[: int(len(response.body) * keep)])
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _drop(self, reset: bool) -> None:
        self.close_connection = True
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return  # closing with linger 0 sends RST
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class RunningSite:
    """A site being served; its faults and request log are for tests to drive and read."""

    def __init__(self, server: _SiteServer, site: Site) -> None:
        self._server = server
        self.site = site
        self.base_url: str = server.base_url
        self.host: str = str(server.server_address[0])
        self.port: int = int(server.server_address[1])
        self.faults: FaultRules = server.faults
        self._thread: threading.Thread | None = None
        site.bind(self.base_url)

    @property
    def crawl_delay(self) -> float | None:
        """Crawl-delay in robots.txt (None: no such line, as on the real site's default here)."""
        return self._server.app.crawl_delay

    @crawl_delay.setter
    def crawl_delay(self, value: float | None) -> None:
        self._server.app.crawl_delay = value

    @property
    def max_items_per_page(self) -> int | None:
        """Cap on the listing's page size whatever ``items_per_page`` asks (tests of paging)."""
        return self._server.app.max_items_per_page

    @max_items_per_page.setter
    def max_items_per_page(self, value: int | None) -> None:
        self._server.app.max_items_per_page = value

    def url(self, path: str) -> str:
        return self.base_url + path

    def listing_url(self, page: int = 0, items_per_page: int = 24) -> str:
        """The 2D-art listing, newest first, in the query form scrapers use."""
        query = [
            ("keys", ""),
            ("title", ""),
            ("field_art_tags_tid_op", "or"),
            ("field_art_tags_tid", ""),
            ("name", ""),
            ("field_art_type_tid[]", "9"),
            ("sort_by", "created"),
            ("sort_order", "DESC"),
            ("items_per_page", str(items_per_page)),
            ("Collection", ""),
            ("page", str(page)),
        ]
        return f"{self.base_url}/art-search-advanced?{urlencode(query)}"

    def requests(self) -> list[RequestRecord]:
        return self._server.log.records()

    def clear_requests(self) -> None:
        self._server.log.clear()

    def manifest(self) -> Manifest:
        return self.site.manifest(self.base_url)

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def start_site(
    site: Site, host: str = "127.0.0.1", port: int = 0, *, crawl_delay: float | None = None
) -> RunningSite:
    """Serve ``site`` from a background thread; call ``stop()`` when done."""
    running = RunningSite(_SiteServer((host, port), site, crawl_delay), site)
    running._thread = threading.Thread(
        target=running.serve_forever, name=f"localsite:{running.port}", daemon=True
    )
    running._thread.start()
    return running


@contextlib.contextmanager
def serve_site(
    site: Site, host: str = "127.0.0.1", port: int = 0, *, crawl_delay: float | None = None
) -> Iterator[RunningSite]:
    """``with serve_site(site) as running: httpx.get(running.listing_url())``"""
    running = start_site(site, host, port, crawl_delay=crawl_delay)
    try:
        yield running
    finally:
        running.stop()


def run_site(
    site: Site,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    crawl_delay: float | None = None,
    on_ready: Callable[[RunningSite], None] | None = None,
) -> None:
    """Serve ``site`` in this thread until interrupted (Ctrl-C)."""
    running = RunningSite(_SiteServer((host, port), site, crawl_delay), site)
    if on_ready is not None:
        on_ready(running)
    try:
        running.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        running._server.server_close()


def main_serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    crawl_delay: float | None = None,
    scale_source: str | Path | None = None,
    pages: int | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """For the CLI: build the sample site (or a scale site from ``scale_source``) and serve it."""
    from ogasearch.localsite.build import build_site

    started = time.monotonic()
    site = build_site(scale_source=scale_source, pages=pages)
    built = time.monotonic() - started

    def ready(running: RunningSite) -> None:
        count = len(site.pages())
        echo(f"Local OpenGameArt copy ({site.name}, {count} pages, built in {built:.1f} s)")
        echo(f"Serving at {running.base_url}/  listing: {running.listing_url()}")
        echo("Press Ctrl-C to stop.")

    run_site(site, host, port, crawl_delay=crawl_delay, on_ready=ready)
