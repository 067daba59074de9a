"""Running the web application: ``serve`` (the ``ogasearch serve`` command) and a server in a
background thread for tests, the demo and benchmarks.

Both use the same uvicorn settings (``uvicorn_options``): HTTP/1.1 with header and body read
timeouts (``timeouts.py``), a cap on open connections (uvicorn's ``limit_concurrency``:
requests past it are answered 503) and a keep-alive longer than client pools keep theirs.
"""

from __future__ import annotations

import ctypes
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import uvicorn
from fastapi import FastAPI

from ogasearch.settings import Settings
from ogasearch.web.app import create_app
from ogasearch.web.timeouts import timed_protocol

# How long an idle keep-alive connection stays open. Longer than the idle time of client
# connection pools (httpx and many others keep one for 5 s, uvicorn's own default): when the
# server closes first, a request already on its way meets a reset, which the client sees as an
# error (measured: 1 in 1,800 requests under load). 75 s is nginx's default.
KEEP_ALIVE_SECONDS = 75
# glibc gives threads that allocate at the same time arenas of their own (up to 8 per core);
# memory freed in them is seldom returned, so a server's resident memory climbs with every
# burst of concurrent queries. Two arenas, as MALLOC_ARENA_MAX=2 would set (mallopt's
# M_ARENA_MAX is -8).
MALLOC_ARENAS = 2
M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Cap glibc's malloc arenas for this process (no-op elsewhere than glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings every server of the app runs with."""
    serving = settings.serving
    return {
        "http": timed_protocol(serving.header_timeout, serving.body_timeout),
        "limit_concurrency": serving.max_connections,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "access_log": False,
    }


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (0: a free port); ``OSError`` when taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen()
    except OSError:
        sock.close()
        raise
    return sock


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    sock: socket.socket | None = None,
) -> None:
    """Serve the UI and the API on ``host:port`` until interrupted (uvicorn, one process), or
    on ``sock`` when given (from ``listening_socket``: the port was reserved earlier)."""
    limit_malloc_arenas()
    config = uvicorn.Config(
        create_app(settings), host=host, port=port, log_level="info", **uvicorn_options(settings)
    )
    with suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=None if sock is None else [sock])


@contextmanager
def running_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` from a background thread; yield its base URL (``port=0``: a free port).

    The socket is bound before the thread starts, so the URL is valid as soon as it is
    yielded; the server is stopped (and the app's shutdown run) when the block ends.
    """
    sock = listening_socket(host, port)
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", **uvicorn_options(app.state.settings)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the web server did not start")
        time.sleep(0.02)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
    try:
        yield f"http://{shown}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
