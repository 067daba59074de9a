"""The query-URL fetcher: refuses every non-public address before connecting, limits size and time.

A real HTTP server on 127.0.0.1 counts the requests it receives, so a refusal is proven to
have happened *before* any connection (the count does not move).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from ogasearch.settings import host_port
from ogasearch.web.safe_fetch import (
    FetchFailed,
    FetchTooLarge,
    UrlRefused,
    fetch_url,
    is_public_address,
)

LIMIT = 100_000


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (16, 16), (200, 40, 40, 255)).save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png()


class Site(ThreadingHTTPServer):
    daemon_threads = True
    hits: list[str]


class Handler(BaseHTTPRequestHandler):
    server: Site

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        # The client may give up on purpose (size or time limit).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._answer()

    def _answer(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/image.png":
            self._send(200, PNG, "image/png")
        elif url.path == "/host":
            self._send(200, self.headers["Host"].encode(), "text/plain")
        elif url.path == "/redirect":
            self.send_response(int(query.get("status", ["302"])[0]))
            self.send_header("Location", query["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path == "/missing":
            self._send(404, b"no", "text/plain")
        elif url.path == "/big":
            self._send(200, b"x" * (LIMIT + 1), "image/png")
        elif url.path == "/big-unannounced":
            # No Content-Length: the size is only known by counting, and the socket closes.
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(20):
                self.wfile.write(b"x" * 10_000)
        elif url.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
        elif url.path == "/gzip":
            body = gzip.compress(PNG)
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self._send(404, b"?", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    server = Site(("127.0.0.1", 0), Handler)
    server.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def base(site: Site) -> str:
    return f"http://127.0.0.1:{site.server_address[1]}"


def fetch(url: str, **kwargs: object) -> object:
    options: dict = {"max_bytes": LIMIT, "timeout": 5.0}
    options.update(kwargs)
    return fetch_url(url, **options)


# --- with private addresses allowed (the test-only switch), the fetcher itself works ---


def test_fetches_an_image(site: Site) -> None:
    got = fetch(f"{base(site)}/image.png", allow_private=True)
    assert got.body == PNG
    assert got.content_type == "image/png"
    assert got.url == f"{base(site)}/image.png"


def test_sends_the_original_host_header(site: Site) -> None:
    got = fetch(f"http://localhost:{site.server_address[1]}/host", allow_private=True)
    assert got.body == f"localhost:{site.server_address[1]}".encode()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_follows_redirects(site: Site, status: int) -> None:
    got = fetch(f"{base(site)}/redirect?status={status}&to=/image.png", allow_private=True)
    assert got.body == PNG
    assert got.url.endswith("/image.png")


def test_redirect_loop_ends(site: Site) -> None:
    with pytest.raises(FetchFailed, match="redirects"):
        fetch(f"{base(site)}/loop", allow_private=True, max_redirects=3)


def test_http_error_status_is_a_fetch_failure(site: Site) -> None:
    with pytest.raises(FetchFailed, match="HTTP 404"):
        fetch(f"{base(site)}/missing", allow_private=True)


def test_announced_size_over_the_limit(site: Site) -> None:
    with pytest.raises(FetchTooLarge):
        fetch(f"{base(site)}/big", allow_private=True)


def test_unannounced_size_over_the_limit(site: Site) -> None:
    with pytest.raises(FetchTooLarge):
        fetch(f"{base(site)}/big-unannounced", allow_private=True)


def test_time_limit(site: Site) -> None:
    started = time.monotonic()
    with pytest.raises(FetchFailed, match=r"timed out|longer than"):
        fetch(f"{base(site)}/slow", allow_private=True, timeout=0.5)
    assert time.monotonic() - started < 2.0


def test_compressed_answer_is_refused(site: Site) -> None:
    with pytest.raises(FetchFailed, match="gzip"):
        fetch(f"{base(site)}/gzip", allow_private=True)


def test_connection_refused_is_a_fetch_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    with pytest.raises(FetchFailed):
        fetch(f"http://127.0.0.1:{port}/", allow_private=True)


def test_unresolvable_name_is_a_fetch_failure() -> None:
    with pytest.raises(FetchFailed, match="resolve"):
        fetch("http://no-such-host.invalid/x.png")


# --- with the default policy, every non-public address is refused before connecting ---


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x.png",
        "file:///etc/passwd",
        "gopher://example.com/",
        "data:image/png;base64,AAAA",
        "javascript:alert(1)",
        "http:///nohost",
        "not a url",
        "",
    ],
)
def test_refuses_other_schemes_and_malformed_urls(url: str) -> None:
    with pytest.raises(UrlRefused):
        fetch(url)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.1",
        "10.255.255.254",
        "172.16.0.1",
        "172.31.255.1",
        "192.168.0.1",
        "192.168.255.255",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",  # multicast
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "[::1]",
        "[::]",
        "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
        "[::ffff:10.0.0.1]",
        "[::ffff:169.254.169.254]",
        "[fe80::1]",  # link-local
        "[fc00::1]",  # unique local
        "[fd12:3456::1]",
        "[ff02::1]",  # multicast
        "[64:ff9b::7f00:1]",  # NAT64 of 127.0.0.1
        "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
        "localhost",  # a name resolving to loopback
        "2130706433",  # 127.0.0.1 written as one number
        "0x7f.1",  # 127.0.0.1 in inet_aton shorthand
    ],
)
def test_refuses_non_public_addresses_before_connecting(site: Site, host: str) -> None:
    before = len(site.hits)
    started = time.monotonic()
    with pytest.raises(UrlRefused, match="non-public"):
        fetch(f"http://{host}:{site.server_address[1]}/image.png")
    assert len(site.hits) == before
    assert time.monotonic() - started < 1.0  # refused at once, no connection attempt


def test_refuses_the_test_server_itself(site: Site) -> None:
    """The same URL the allow_private tests fetch is refused with the switch off."""
    before = len(site.hits)
    with pytest.raises(UrlRefused):
        fetch(f"{base(site)}/image.png")
    assert len(site.hits) == before


# --- allowed_hosts: exact host:port pairs skip the address check, and nothing else does ---


def test_an_allowed_host_and_port_is_fetched(site: Site) -> None:
    port = site.server_address[1]
    got = fetch(f"{base(site)}/image.png", allowed_hosts=[f"127.0.0.1:{port}"])
    assert got.body == PNG


@pytest.mark.parametrize(
    "entry",
    ["127.0.0.1:{other}", "localhost:{port}", "127.0.0.2:{port}", "[::1]:{port}"],
)
def test_only_the_exact_pair_is_allowed(site: Site, entry: str) -> None:
    port = site.server_address[1]
    other = port + 1 if port < 65535 else port - 1
    before = len(site.hits)
    with pytest.raises(UrlRefused, match="non-public"):
        fetch(f"{base(site)}/image.png", allowed_hosts=[entry.format(port=port, other=other)])
    assert len(site.hits) == before


@pytest.mark.parametrize(
    "target",
    ["http://localhost:{port}/image.png", "http://127.0.0.2:{port}/", "http://10.0.0.1/"],
)
def test_a_redirect_from_an_allowed_host_is_judged_again(site: Site, target: str) -> None:
    port = site.server_address[1]
    before = len(site.hits)
    with pytest.raises(UrlRefused, match="non-public"):
        fetch(
            f"{base(site)}/redirect?to={target.format(port=port)}",
            allowed_hosts=[f"127.0.0.1:{port}"],
        )
    assert site.hits[before:] == [f"/redirect?to={target.format(port=port)}"]


@pytest.mark.parametrize("entry", ["127.0.0.1", "127.0.0.1:x", "http://127.0.0.1:80", ":80"])
def test_an_allowed_host_needs_a_host_and_a_port(entry: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        host_port(entry)
    assert host_port("[::1]:80") == ("::1", 80)  # a default port is kept, IPv6 unbracketed


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::200e"],
)
def test_public_addresses_are_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


# A policy that trusts exactly the test server (127.0.0.1) and nothing else that is private:
# with it the first hop reaches the server, and what a redirect points at is judged again.
def only_test_server(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip == ipaddress.ip_address("127.0.0.1") or is_public_address(ip)


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{port}/image.png",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/image.png",
        "http://[::ffff:127.0.0.2]:{port}/image.png",
        "http://0.0.0.0:{port}/image.png",
        "file:///etc/passwd",
    ],
)
def test_each_redirect_hop_is_checked(site: Site, target: str) -> None:
    port = site.server_address[1]
    assert fetch(f"{base(site)}/image.png", address_allowed=only_test_server).body == PNG
    before = len(site.hits)
    with pytest.raises(UrlRefused):
        fetch(
            f"{base(site)}/redirect?to={target.format(port=port)}",
            address_allowed=only_test_server,
        )
    assert site.hits[before:] == [f"/redirect?to={target.format(port=port)}"]


def test_connects_to_the_checked_address_not_a_second_lookup(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name is resolved once; a second answer would point elsewhere.

    The system resolver is replaced for one made-up name only: its first answer is the test
    server's address, every later answer a private address the policy refuses.
    """
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host: str, *args: object, **kwargs: object) -> list:
        if host != "rebind.example":
            return real(host, *args, **kwargs)
        lookups.append(host)
        address = "127.0.0.1" if len(lookups) == 1 else "10.0.0.1"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    got = fetch(
        f"http://rebind.example:{site.server_address[1]}/host", address_allowed=only_test_server
    )
    assert got.body == f"rebind.example:{site.server_address[1]}".encode()
    assert lookups == ["rebind.example"]


def test_a_name_with_any_private_address_is_refused(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every resolved address is checked, not only the first one."""
    real = socket.getaddrinfo

    def mixed(host: str, *args: object, **kwargs: object) -> list:
        if host != "mixed.example":
            return real(host, *args, **kwargs)
        return real("8.8.8.8", *args, **kwargs) + real("192.168.1.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", mixed)
    with pytest.raises(UrlRefused, match=r"192\.168\.1\.1"):
        fetch("http://mixed.example/image.png")
