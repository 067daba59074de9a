"""PoliteClient: the one way ogasearch talks to the site.

What a crawler owes a site, in one place: a descriptive User-Agent, robots.txt (fetched once
per host, its Crawl-delay a floor for our own delay), one pause between consecutive requests,
retries with exponential backoff and jitter that honour ``Retry-After``, conditional requests,
and no requests at all to the download counter. What it owes itself: bounded bodies, truncated
transfers detected and retried, redirects only within the site, and a typed error
(``FetchError``) saying whether trying again later could help.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx
from protego import Protego

from ogasearch.crawl.urls import is_download_counter, rebase
from ogasearch.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
GONE_STATUSES = frozenset({404, 410})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
MAX_PAGE_BYTES = 16 << 20  # an HTML page; OGA's largest are well under 1 MB


class ByteSink(Protocol):
    """Where a download streams to: rewound and truncated on every attempt (a file, a blob)."""

    def write(self, data: bytes, /) -> int: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def truncate(self, size: int | None = None, /) -> int: ...

    def flush(self) -> None: ...


class FetchError(Exception):
    """A URL could not be fetched. ``permanent``: retrying later will not help (404, robots)."""

    def __init__(
        self, url: str, reason: str, status: int | None = None, permanent: bool = False
    ) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status
        self.permanent = permanent


@dataclass(frozen=True)
class Fetched:
    """A fetched page; ``not_modified`` (304) means ``body`` is empty and the copy held is good."""

    status: int
    url: str
    body: bytes
    etag: str | None
    last_modified: str | None
    content_type: str | None
    not_modified: bool


@dataclass(frozen=True)
class Downloaded:
    """A file streamed into the caller's file object (nothing written when ``not_modified``)."""

    status: int
    not_modified: bool
    etag: str | None
    last_modified: str | None
    content_type: str | None
    size: int


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request made: for tests, stats and logs."""

    url: str
    kind: str  # "page" (get), "file" (download) or "robots"
    conditional: bool
    status: int | None  # None when no response came (timeout, connection error)
    error: str | None
    waited: float  # seconds slept before sending it (delay, backoff, Retry-After)


class _Retryable(Exception):
    """A transient failure of one attempt (status 429/5xx, timeout, truncated body)."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class PoliteClient:
    """An httpx client for one run against one site (``settings.site_root``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        retry_after_cap: float = 300.0,
        max_page_bytes: int = MAX_PAGE_BYTES,
        log_size: int = 100_000,
    ) -> None:
        self.settings = settings
        self.site_root = settings.site_root
        site = urlsplit(self.site_root)
        self._site_scheme = site.scheme
        self._site_netloc = site.netloc.lower()
        self.attempts = max(1, settings.retries)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.retry_after_cap = retry_after_cap
        self.max_page_bytes = max_page_bytes
        self.delay = max(0.0, settings.delay)
        self.request_count = 0
        self.log: deque[RequestRecord] = deque(maxlen=log_size)
        self._robots: dict[str, Protego | None] = {}
        self._last_request_end: float | None = None
        self._http = httpx.Client(
            headers={"User-Agent": settings.user_agent},
            timeout=httpx.Timeout(settings.timeout),
            follow_redirects=False,
        )

    # -- public API -----------------------------------------------------------------------

    def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        max_bytes: int | None = None,
    ) -> Fetched:
        """GET a page into memory (at most ``max_bytes``), conditionally if validators given."""
        limit = self.max_page_bytes if max_bytes is None else max_bytes

        def read(response: httpx.Response, final_url: str) -> Fetched:
            if response.status_code == 304:
                return Fetched(304, final_url, b"", *_validators(response), True)
            _refuse_declared_over(response, final_url, limit)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise FetchError(final_url, f"body larger than {limit} bytes", permanent=True)
            _check_complete(response)
            return Fetched(
                response.status_code, final_url, bytes(body), *_validators(response), False
            )

        return self._fetch(url, "page", etag, last_modified, read)

    def download(
        self,
        url: str,
        dest: ByteSink,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        max_bytes: int,
    ) -> Downloaded:
        """Stream a file into ``dest`` (truncated on every attempt), at most ``max_bytes``."""

        def write(response: httpx.Response, final_url: str) -> Downloaded:
            if response.status_code == 304:
                return Downloaded(304, True, *_validators(response), 0)
            _refuse_declared_over(response, final_url, max_bytes)
            dest.seek(0)
            dest.truncate()
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(
                        final_url, f"file larger than {max_bytes} bytes", permanent=True
                    )
                dest.write(chunk)
            _check_complete(response)
            dest.flush()
            return Downloaded(response.status_code, False, *_validators(response), size)

        try:
            return self._fetch(url, "file", etag, last_modified, write)
        except FetchError:
            dest.seek(0)
            dest.truncate()
            raise

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PoliteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the request machinery ------------------------------------------------------------

    def _fetch(
        self,
        url: str,
        kind: str,
        etag: str | None,
        last_modified: str | None,
        consume: Callable[[httpx.Response, str], T],
    ) -> T:
        target = self._admit(url)
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        attempt = 0
        wait = 0.0
        while True:
            attempt += 1
            try:
                return self._follow(target, kind, headers, consume, wait)
            except _Retryable as exc:
                if attempt >= self.attempts:
                    raise FetchError(
                        target, f"{exc.reason} (after {attempt} attempts)", exc.status
                    ) from None
                wait = self._backoff(attempt, exc.retry_after)
                log.info("retrying %s in %.1fs: %s", target, wait, exc.reason)

    def _follow(
        self,
        url: str,
        kind: str,
        headers: dict[str, str],
        consume: Callable[[httpx.Response, str], T],
        extra_wait: float,
    ) -> T:
        """One attempt: send, following same-site redirects, and hand the body to ``consume``."""
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            waited = self._pace(extra_wait)
            extra_wait = 0.0
            request = self._http.build_request("GET", current, headers=headers)
            conditional = bool(headers)
            try:
                response = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                self._mark_end()
                self._record(current, kind, conditional, None, _describe(exc), waited)
                raise _Retryable(_describe(exc)) from None
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                self._mark_end()
                self._record(current, kind, conditional, None, _describe(exc), waited)
                raise FetchError(current, _describe(exc), permanent=True) from None
            try:
                status = response.status_code
                self._record(current, kind, conditional, status, None, waited)
                if status in REDIRECT_STATUSES:
                    location = response.headers.get("Location")
                    if not location:
                        raise FetchError(current, f"HTTP {status} without Location", status, True)
                    current = self._admit(urljoin(current, location), redirected_from=current)
                    continue
                if status in GONE_STATUSES:
                    raise FetchError(current, f"HTTP {status}", status, permanent=True)
                if status in RETRY_STATUSES:
                    raise _Retryable(f"HTTP {status}", status, _retry_after(response))
                if status != 304 and not 200 <= status < 300:
                    raise FetchError(current, f"HTTP {status}", status, permanent=True)
                try:
                    return consume(response, current)
                except httpx.HTTPError as exc:  # peer closed early, broken encoding, stalled
                    raise _Retryable(f"truncated body: {_describe(exc)}", status) from None
            finally:
                response.close()
                self._mark_end()
        raise FetchError(url, f"more than {MAX_REDIRECTS} redirects", permanent=True)

    def _admit(self, url: str, redirected_from: str | None = None) -> str:
        """Check a URL against the site's rules; return it rebased onto the site root."""
        rebased = rebase(url, self.site_root)
        try:
            parts = urlsplit(rebased)
            netloc = parts.netloc.lower()
        except ValueError:
            raise FetchError(url, "malformed URL", permanent=True) from None
        if netloc != self._site_netloc or parts.scheme not in ("http", "https"):
            what = f"redirect to {url}" if redirected_from else f"{url} is"
            raise FetchError(
                redirected_from or url,
                f"{what} not on the site ({self._site_netloc})",
                permanent=True,
            )
        if is_download_counter(parts.path):
            raise FetchError(rebased, "the download counter is never requested", permanent=True)
        robots = self._robots_for(parts.scheme, parts.netloc)
        if robots is not None and not robots.can_fetch(rebased, self.settings.user_agent):
            raise FetchError(rebased, "disallowed by robots.txt", permanent=True)
        return rebased

    def _robots_for(self, scheme: str, netloc: str) -> Protego | None:
        origin = f"{scheme}://{netloc}"
        if origin in self._robots:
            return self._robots[origin]
        robots_url = f"{origin}/robots.txt"
        waited = self._pace(0.0)
        parsed: Protego | None = None
        try:
            response = self._http.get(robots_url, follow_redirects=True)
            self._record(robots_url, "robots", False, response.status_code, None, waited)
            if response.status_code == 200:
                parsed = Protego.parse(response.text)
            elif response.status_code >= 500:
                log.warning(
                    "robots.txt at %s: HTTP %s, crawling without it", origin, response.status_code
                )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            self._record(robots_url, "robots", False, None, _describe(exc), waited)
            log.warning("robots.txt at %s: %s, crawling without it", origin, _describe(exc))
        finally:
            self._mark_end()
        self._robots[origin] = parsed
        if parsed is not None:
            crawl_delay = parsed.crawl_delay(self.settings.user_agent)
            if crawl_delay is not None and crawl_delay > self.delay:
                log.info(
                    "robots.txt Crawl-delay %ss raises the delay from %ss", crawl_delay, self.delay
                )
                self.delay = float(crawl_delay)
        return parsed

    def _pace(self, extra_wait: float) -> float:
        """Sleep so that requests are ``delay`` apart (and at least ``extra_wait``); return it."""
        wait = extra_wait
        if self._last_request_end is not None and self.delay > 0:
            wait = max(wait, self._last_request_end + self.delay - time.monotonic())
        if wait > 0:
            time.sleep(wait)
            return wait
        return 0.0

    def _mark_end(self) -> None:
        self._last_request_end = time.monotonic()

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap)
        base = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return base * random.uniform(0.5, 1.5)

    def _record(
        self,
        url: str,
        kind: str,
        conditional: bool,
        status: int | None,
        error: str | None,
        waited: float,
    ) -> None:
        self.request_count += 1
        self.log.append(RequestRecord(url, kind, conditional, status, error, waited))
        log.debug("GET %s -> %s%s", url, status, f" ({error})" if error else "")


def _validators(response: httpx.Response) -> tuple[str | None, str | None, str | None]:
    headers = response.headers
    return headers.get("ETag"), headers.get("Last-Modified"), headers.get("Content-Type")


def _declared_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _refuse_declared_over(response: httpx.Response, url: str, limit: int) -> None:
    declared = _declared_length(response)
    if declared is not None and declared > limit and "Content-Encoding" not in response.headers:
        raise FetchError(
            url, f"body of {declared} bytes is over the {limit} byte limit", permanent=True
        )


def _check_complete(response: httpx.Response) -> None:
    """A body shorter than its Content-Length is a truncated transfer: retry it."""
    declared = _declared_length(response)
    if declared is not None and response.num_bytes_downloaded != declared:
        raise _Retryable(
            f"truncated body: {response.num_bytes_downloaded} of {declared} bytes",
            response.status_code,
        )


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds, from a number of seconds or an HTTP date."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _describe(exc: Exception) -> str:
    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__
    text = str(exc)
    return f"{kind}: {text}" if text else kind
