"""ASGI middleware: a hard cap on request bodies, security headers on every response, and the
answer to an unexpected exception.

Starlette parses a multipart upload into a temporary file of any size, and FastAPI turns a
failure while parsing into a generic 400. The cap therefore sits outside both: a declared
``Content-Length`` over the cap is answered 413 before a byte is read; an undeclared (chunked)
body is counted as it arrives, reading stops at the cap, and whatever the application made of
the cut-off body is replaced by the 413.

Before answering, the rest of the body is read and dropped (up to ``drain_bytes`` and
``drain_seconds``): a server that closes a connection with unread data in it makes the kernel
send a reset, and the client loses the 413 it was about to read ("lingering close", as in
nginx). A body beyond the drain allowance just gets the connection closed.

Starlette answers an unexpected exception in its outermost layer, outside every middleware,
so that 500 would go out without the security headers: ``ServerErrors`` answers it inside
them instead (logged with its traceback), and a client that went away in the middle of its
upload is logged in one line, not as a server error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyTooLarge(Exception):
    """Raised into the application when a body passes the cap (it answers 413 instead)."""


class BodySizeLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        limit_text: str = "",
        drain_bytes: int = 64 << 20,
        drain_seconds: float = 10.0,
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.limit_text = limit_text or f"{max_bytes} bytes"
        self.drain_bytes = drain_bytes
        self.drain_seconds = drain_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            if declared.isdigit() and int(declared) <= self.drain_bytes:
                await self._drain(receive, 0)
            await self._refuse(scope, send)
            return

        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the application's answer to a cut-off body is replaced below
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._drain(receive, received)
            await self._refuse(scope, send)

    async def _drain(self, receive: Receive, already: int) -> None:
        """Read and drop what is left of the body, within the drain allowance."""

        async def drain() -> None:
            total = already
            while total <= self.drain_bytes:
                message = await receive()
                if message["type"] != "http.request":
                    return
                total += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drain(), self.drain_seconds)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        detail = f"the request body is larger than the limit of {self.limit_text}"
        accept = (_header(scope, b"accept") or "").lower()
        if "text/html" in accept and not scope["path"].startswith("/api/"):
            body = (
                "<!doctype html><title>Too large</title><p>The image is too large: "
                f"{detail}.</p><p><a href='/'>Back to the search</a></p>"
            ).encode()
            media_type = b"text/html; charset=utf-8"
        else:
            body = json.dumps({"error": "too_large", "detail": detail}).encode()
            media_type = b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", media_type),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """Headers every answer carries; HTML pages of the UI add a Content-Security-Policy."""

    def __init__(self, app: ASGIApp, headers: Iterable[tuple[str, str]]):
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


class ServerErrors:
    """An exception out of the application: logged, and answered with the JSON 500."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except ClientDisconnect:
            client = scope.get("client") or ("?", 0)
            log.info(
                "%s %s: %s went away before its request body was read",
                scope["method"],
                scope["path"],
                client[0],
            )
        except Exception:
            log.exception("error answering %s %s", scope["method"], scope["path"])
            if started:
                raise  # too late for an answer: the server drops the connection
            body = json.dumps(
                {"error": "internal_error", "detail": "the server failed to answer; see its log"}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        # the request may not have been read to its end: start afresh
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None
