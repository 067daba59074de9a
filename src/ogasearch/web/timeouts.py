"""uvicorn's HTTP/1.1 protocol (h11) with read timeouts for headers and bodies.

uvicorn only times out idle keep-alive connections: a connection that sends nothing, or its
headers a line every few seconds ("slowloris"), or its body a byte at a time, is held as long
as the client likes, and enough of them use up the server's connections. Here:

* a request's line and headers must arrive within ``header_timeout`` seconds, counted from
  the connection's start or, on a kept-alive connection, from the first byte of the request
  (the idle wait before it is uvicorn's keep-alive timeout);
* its body must arrive within ``body_timeout`` seconds after its headers.

A connection past either is closed (a request whose handler is already running sees the
client disconnect). Behind a reverse proxy these are the proxy's job too (nginx:
``client_header_timeout``, ``client_body_timeout``); see the README.
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


class TimedH11Protocol(H11Protocol):
    """``H11Protocol`` that closes connections whose headers or body arrive too slowly."""

    header_timeout: float = 10.0
    body_timeout: float = 60.0

    _read_timer: asyncio.TimerHandle | None = None
    _reading: str | None = None  # "headers" or "body" while a timer runs

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("headers", self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading is None and self.conn.their_state is h11.IDLE:
            self._arm("headers", self.header_timeout)
        super().data_received(data)
        self._follow_state()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and self._reading is not None:
            self._disarm()  # idle between requests: the keep-alive timeout applies
        self._follow_state()

    def _follow_state(self) -> None:
        """Move the timer along with what is awaited from the client."""
        state = self.conn.their_state
        if state is h11.SEND_BODY and self._reading != "body":
            self._arm("body", self.body_timeout)
        elif state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR):
            self._disarm()

    def _arm(self, what: str, seconds: float) -> None:
        self._disarm()
        self._reading = what
        self._read_timer = self.loop.call_later(seconds, self._timed_out, what)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer = None
        self._reading = None

    def _timed_out(self, what: str) -> None:
        self._read_timer = None
        self._reading = None
        if not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            log.info("closing the connection of %s: its request %s came too slowly", client, what)
            self.transport.close()


def timed_protocol(header_timeout: float, body_timeout: float) -> type[H11Protocol]:
    """A ``TimedH11Protocol`` class with these timeouts (uvicorn's ``http=`` option)."""
    return type(
        "TimedH11Protocol",
        (TimedH11Protocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )
