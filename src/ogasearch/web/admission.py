"""Running a query for the web layer: admission, a cost budget, and cancellation.

* Admission (``QueryGate``): image queries cost a core each for up to their deadline, so at
  most ``slots`` of them run at once (default: one per core) and at most ``queue`` more wait
  for a slot; past that the server answers 503 with ``Retry-After`` at once, instead of
  making every client wait longer (a queue that grows only moves the wait into every answer).
  An upload is refused before its body is read (``RefuseWhenBusy``): a refusal costs nothing.
* Budget: each query runs under a ``budget.QueryBudget`` whose deadline
  (``limits.query_deadline_seconds``) starts when the query arrives, so time in the queue
  counts: the matcher answers with what it has at the deadline, and a query still waiting or
  running at the hard deadline (twice that) ends in a 503.
* Cancellation: while the query runs in its worker thread, the request's connection is
  watched; when the client goes away, the budget's cancel flag is set and the query stops at
  its next check instead of working on for nobody.

The worker thread runs in a copy of the request's context (``contextvars.copy_context``), in
which the budget is the current one.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from typing import Any, TypeVar

from anyio import to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ogasearch.budget import BudgetExceeded, QueryBudget, QueryCancelled
from ogasearch.settings import Settings
from ogasearch.web.query_images import QueryError

log = logging.getLogger(__name__)
T = TypeVar("T")


class QueryGate:
    """At most ``slots`` queries at once and ``queue`` waiting; more are refused (503)."""

    def __init__(self, slots: int, queue: int, retry_after: int) -> None:
        self.slots = slots
        self.queue = queue
        self.retry_after = retry_after
        self.admitted = 0  # running or waiting (only touched on the event loop)
        self._semaphore = asyncio.Semaphore(slots)

    @classmethod
    def from_settings(cls, settings: Settings) -> QueryGate:
        serving = settings.serving
        slots = serving.query_slots or os.cpu_count() or 1
        return cls(slots, serving.query_queue or slots, serving.retry_after_seconds)

    @property
    def full(self) -> bool:
        return self.admitted >= self.slots + self.queue

    def busy(self) -> QueryError:
        return QueryError(
            503,
            "overloaded",
            "the server is busy with other image queries; try again shortly",
            headers={"Retry-After": str(self.retry_after)},
        )

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold a slot for the block (waiting in the queue first), or raise the 503."""
        if self.full:
            raise self.busy()
        self.admitted += 1
        try:
            async with self._semaphore:
                yield
        finally:
            self.admitted -= 1


async def _watch_disconnect(request: Request, gone: threading.Event) -> None:
    """Set ``gone`` when the client disconnects (the body has been read by then)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return


async def run_query(request: Request, work: Callable[..., T], *args: Any, gated: bool = True) -> T:
    """``work(*args)`` in a worker thread, under a budget, admitted by the app's gate
    (``gated``: image queries); a query past its budget raises QueryError 503."""
    settings: Settings = request.app.state.settings
    gate: QueryGate = request.app.state.query_gate
    gone = threading.Event()
    watcher = asyncio.create_task(_watch_disconnect(request, gone))
    budget = QueryBudget(settings.limits.query_deadline_seconds, cancelled=gone)
    try:
        async with gate.admit() if gated else nullcontext():

            def budgeted() -> T:
                with budget.active():
                    budget.check()  # gone while it waited for its slot, or no time at all
                    return work(*args)

            context = contextvars.copy_context()
            try:
                return await to_thread.run_sync(context.run, budgeted)
            except BudgetExceeded:
                raise QueryError(
                    503,
                    "over_budget",
                    "the query needs more work than one query may have; try a smaller image",
                    headers={"Retry-After": str(gate.retry_after)},
                ) from None
            except QueryCancelled:
                log.info(
                    "%s %s: the client went away; query stopped", request.method, request.url.path
                )
                raise QueryError(499, "client_gone", "the client went away") from None
    finally:
        watcher.cancel()


class RefuseWhenBusy:
    """Answers an image upload 503 before reading its body when the gate is full (the
    handler's own admission still decides for the uploads let through)."""

    def __init__(self, app: ASGIApp, gate: QueryGate, paths: frozenset[tuple[str, str]]):
        self.app = app
        self.gate = gate
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and (scope["method"], scope["path"]) in self.paths
            and self.gate.full
        ):
            busy = self.gate.busy()
            body = json.dumps({"error": busy.code, "detail": busy.detail}).encode()
            headers = [(k.lower().encode(), v.encode()) for k, v in busy.headers.items()]
            await send(
                {
                    "type": "http.response.start",
                    "status": busy.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        *headers,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
