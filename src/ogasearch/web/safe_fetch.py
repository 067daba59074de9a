"""Fetch a query image from a URL given by a stranger, without becoming a proxy into our network.

An image-URL search makes the server open a connection a visitor chose (server-side request
forgery). The guard sits where the connection is made, not where the URL is parsed, because
URL checks alone are defeated by DNS: a name can resolve to ``127.0.0.1``, or resolve to a
public address when checked and to a private one when connecting (DNS rebinding).

How it works:

- Every TCP connection goes through :class:`GuardedBackend`, an httpcore *network backend*
  (httpcore's documented extension point for custom connection logic). It resolves the host
  once, refuses when **any** resolved address is not a public unicast address (loopback,
  private, shared, link-local such as the cloud metadata address ``169.254.169.254``,
  multicast, reserved, unspecified; IPv6 forms that embed an IPv4 address are judged by that
  address), and then connects to one of the addresses it checked, never resolving again.
- The URL, the ``Host`` header and the TLS server name stay the original host name, so
  certificates are verified against the name as usual.
- Redirects are followed by hand: each hop's scheme is checked (http and https only) and its
  connection goes through the same guard. Proxy settings from the environment are never used,
  since a proxy would resolve names itself.
- The body is read in chunks and abandoned past ``max_bytes``; the whole fetch has a deadline.

Which addresses may be reached is one function, :func:`is_public_address` by default.
``allow_private=True`` replaces it by "any address"; it exists only so tests can fetch from a
server on 127.0.0.1, and the web server takes it from the ``allow_private_urls`` setting.
``allowed_hosts`` is narrower: exact ``host:port`` pairs (the ``allowed_url_hosts`` setting)
whose connections skip the address check, whatever the name resolves to; the demo lists its
own local site there. Any other host and port, a redirect target included, is judged as usual.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import httpcore
import httpx

from ogasearch.settings import host_port

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressPolicy = Callable[[IPAddress], bool]

ALLOWED_SCHEMES = ("http", "https")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
MAX_URL_LENGTH = 4096
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))

# getaddrinfo has no timeout of its own; it runs here so that a slow resolver cannot hold a
# request past its deadline (the lookup finishes in the background and is discarded).
_resolver = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ogasearch-resolve")


class FetchError(Exception):
    """Base of every reason a query URL gave no image."""


class UrlRefused(FetchError):
    """The URL is not allowed: not http(s), malformed, or it leads to a non-public address."""


class FetchTooLarge(FetchError):
    """The response is larger than the query size limit."""


class FetchFailed(FetchError):
    """The URL is allowed but could not be fetched: network error, timeout or HTTP error."""


class HostUnresolved(FetchFailed):
    """The URL's host name has no address (or resolving it timed out)."""


@dataclass(frozen=True)
class FetchedBody:
    url: str  # the final URL, after redirects
    content_type: str | None
    body: bytes


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address hands traffic to (mapped, 6to4, Teredo, NAT64)."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    if any(ip in net for net in _NAT64):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    return []


def is_public_address(ip: IPAddress) -> bool:
    """True for a globally routable unicast address, the only kind a query may reach."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded:
            return all(is_public_address(v4) for v4 in embedded)
        if ip.is_site_local:
            return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def resolve(host: str, port: int, timeout: float) -> list[IPAddress]:
    """All addresses ``host`` resolves to (IP literals included), in resolver order."""

    def lookup() -> list[tuple]:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)

    try:
        infos = _resolver.submit(lookup).result(timeout=max(timeout, 0.001))
    except FutureTimeout:
        raise HostUnresolved(f"resolving {host!r} timed out") from None
    except (OSError, UnicodeError) as exc:
        raise HostUnresolved(f"cannot resolve {host!r}: {exc}") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]))
        if isinstance(ip, ipaddress.IPv6Address) and len(sockaddr) >= 4 and sockaddr[3]:
            ip = ipaddress.IPv6Address(f"{ip}%{sockaddr[3]}")
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise HostUnresolved(f"{host!r} has no address")
    return addresses


class GuardedBackend(httpcore.NetworkBackend):
    """Resolve, check every address, connect to a checked address (see the module docstring)."""

    def __init__(
        self,
        address_allowed: AddressPolicy = is_public_address,
        inner: httpcore.NetworkBackend | None = None,
        allowed_hosts: Collection[tuple[str, int]] = (),
    ):
        self.address_allowed = address_allowed
        self.allowed_hosts = frozenset(allowed_hosts)
        self._inner = inner or httpcore.SyncBackend()

    def checked_addresses(self, host: str, port: int, timeout: float) -> list[IPAddress]:
        addresses = resolve(host, port, timeout)
        if (host, port) in self.allowed_hosts:
            return addresses
        refused = [ip for ip in addresses if not self.address_allowed(ip)]
        if refused:
            listed = ", ".join(str(ip) for ip in refused)
            raise UrlRefused(f"{host!r} resolves to a non-public address ({listed})")
        return addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        deadline = time.monotonic() + (timeout if timeout is not None else 30.0)
        last_error: Exception | None = None
        for ip in self.checked_addresses(host, port, deadline - time.monotonic()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                # An IP literal: getaddrinfo inside the inner backend does no DNS lookup.
                return self._inner.connect_tcp(
                    str(ip), port, remaining, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        raise httpcore.ConnectError(f"cannot connect to {host!r}: {last_error or 'timed out'}")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise UrlRefused("unix sockets are never used for query URLs")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _any_address(ip: IPAddress) -> bool:
    return True


def check_url(url: str | httpx.URL) -> httpx.URL:
    """Parse a query URL and check what can be checked without the network."""
    if isinstance(url, str) and len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"URL longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise UrlRefused(f"not a valid URL: {exc}") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise UrlRefused(f"only http and https URLs are fetched, not {parsed.scheme or 'none'!r}")
    if not parsed.host:
        raise UrlRefused("URL has no host")
    return parsed


def fetch_url(
    url: str,
    *,
    max_bytes: int,
    timeout: float,
    allow_private: bool = False,
    address_allowed: AddressPolicy = is_public_address,
    allowed_hosts: Iterable[str] = (),
    max_redirects: int = 5,
    user_agent: str = "ogasearch",
) -> FetchedBody:
    """GET ``url`` safely and return its body; raise a :class:`FetchError` subclass otherwise.

    ``timeout`` bounds the whole fetch (resolution, connection, redirects, body). Each network
    operation waits at most the time left, so a fetch ends within about ``2 * timeout``
    in the worst case of a server that trickles its answer. ``address_allowed`` decides which
    resolved addresses may be connected to; ``allow_private=True`` allows every address;
    ``allowed_hosts`` ("host:port") may be reached whatever their addresses.
    """
    current = check_url(url)
    deadline = time.monotonic() + timeout
    backend = GuardedBackend(
        _any_address if allow_private else address_allowed,
        allowed_hosts=[host_port(entry) for entry in allowed_hosts],
    )
    with httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        network_backend=backend,
        max_connections=1,
        retries=0,
    ) as pool:
        for _hop in range(max_redirects + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchFailed(f"fetching took longer than {timeout:g} s")
            headers = [
                (b"Host", current.netloc),
                (b"User-Agent", user_agent.encode("ascii", "replace")),
                (b"Accept", b"image/*, */*;q=0.5"),
                (b"Accept-Encoding", b"identity"),
            ]
            request_url = httpcore.URL(
                scheme=current.raw_scheme,
                host=current.raw_host,
                port=current.port,
                target=current.raw_path,
            )
            per_op = {"connect": remaining, "read": remaining, "write": remaining, "pool": 1.0}
            try:
                with pool.stream(
                    "GET", request_url, headers=headers, extensions={"timeout": per_op}
                ) as response:
                    if response.status in REDIRECT_STATUSES:
                        current = _redirect_target(current, response.headers)
                        continue
                    if response.status != 200:
                        raise FetchFailed(f"HTTP {response.status} from {current}")
                    body = _read_body(response, max_bytes, deadline, timeout)
                    return FetchedBody(
                        url=str(current),
                        content_type=_header(response.headers, b"content-type"),
                        body=body,
                    )
            except httpcore.TimeoutException as exc:
                raise FetchFailed(f"timed out fetching {current}") from exc
            except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
                raise FetchFailed(f"cannot fetch {current}: {exc or type(exc).__name__}") from exc
            except httpcore.UnsupportedProtocol as exc:
                raise UrlRefused(str(exc)) from exc
        raise FetchFailed(f"more than {max_redirects} redirects")


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _redirect_target(current: httpx.URL, headers: list[tuple[bytes, bytes]]) -> httpx.URL:
    location = _header(headers, b"location")
    if not location:
        raise FetchFailed(f"redirect from {current} without a Location")
    try:
        target = current.join(location)
    except (httpx.InvalidURL, ValueError) as exc:
        raise FetchFailed(f"bad redirect Location {location!r}: {exc}") from exc
    return check_url(target)


def _read_body(
    response: httpcore.Response, max_bytes: int, deadline: float, timeout: float
) -> bytes:
    encoding = (_header(response.headers, b"content-encoding") or "identity").lower()
    if encoding != "identity":
        # Asked for identity; a compressed answer could expand without bound (a "zip bomb").
        raise FetchFailed(f"server sent a {encoding!r}-encoded body")
    declared = _header(response.headers, b"content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchTooLarge(f"image is {int(declared)} bytes, the limit is {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_stream():
        size += len(chunk)
        if size > max_bytes:
            raise FetchTooLarge(f"image is larger than the limit of {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise FetchFailed(f"fetching took longer than {timeout:g} s")
        chunks.append(chunk)
    return b"".join(chunks)
