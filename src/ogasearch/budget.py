"""The cost budget of one query: a deadline, a cancel flag and a pixel bound.

A query image comes from anyone who can reach the server, and the work it causes grows with
its pixels and its structure (noise makes every grid and block of the region path differ).
Two things bound it:

* pixels: ``bounded_image`` shrinks a query larger than ``max_pixels`` by a whole factor
  (nearest neighbour, so pixel art upscaled by a multiple of that factor keeps its exact
  blocks) before anything is analysed;
* time: the web layer runs each query under a :class:`QueryBudget` (``with budget.active():``)
  and the loops of the matcher, the region analysis and the preprocessing call :func:`check`,
  which raises :class:`QueryCancelled` once the client has gone and :class:`BudgetExceeded`
  once the deadline has passed. The matcher runs its optional stages (regions, pixel
  verification) in :func:`optional_stage`: there the deadline is ``seconds``, and a stage
  that reaches it ends while the query goes on with what it has. The stages every answer
  needs (canonicalising the query, its vectors and hashes) are cheap once pixels are bounded;
  they stop only at the hard deadline, twice ``seconds``, and then the query fails (the web
  layer answers 503).

The budget travels in a ``contextvars.ContextVar``: code that runs outside any budget (the
CLI, the benchmarks, the indexer) sees no budget and ``check`` costs nothing. A worker thread
gets the budget by running in a copy of the caller's context (``contextvars.copy_context``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from PIL import Image


class QueryStopped(Exception):
    """The query was stopped before it finished (see the subclasses)."""


class QueryCancelled(QueryStopped):
    """The client that asked has gone: nobody will read the answer."""


class BudgetExceeded(QueryStopped):
    """The query ran past its deadline."""


class QueryBudget:
    """A deadline (seconds from now) and a cancel flag that another thread may set."""

    def __init__(self, seconds: float, cancelled: threading.Event | None = None) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds  # of the optional stages
        self._cancelled = cancelled if cancelled is not None else threading.Event()
        self.degraded = False  # an optional stage was cut short by the deadline
        self._optional = 0  # depth of optional stages being run

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    @property
    def hard_deadline(self) -> float:
        """When the stages every answer needs stop too (the query then fails)."""
        return self.deadline + self.seconds

    def check(self) -> None:
        if self._cancelled.is_set():
            raise QueryCancelled("the client went away")
        limit = self.deadline if self._optional else self.hard_deadline
        if time.monotonic() > limit:
            raise BudgetExceeded(f"the query ran past its {self.seconds:g} s budget")

    @contextmanager
    def active(self) -> Iterator[QueryBudget]:
        """Make this the budget that :func:`check` sees in this context."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)


_current: ContextVar[QueryBudget | None] = ContextVar("ogasearch_query_budget", default=None)


def current() -> QueryBudget | None:
    """The budget of the query running in this context, if any."""
    return _current.get()


def check() -> None:
    """Raise ``QueryCancelled`` or ``BudgetExceeded`` if the current query must stop."""
    budget = _current.get()
    if budget is not None:
        budget.check()


@contextmanager
def optional_stage() -> Iterator[None]:
    """Run a stage whose results improve the answer but are not needed for one: past the
    deadline it stops and the query goes on with what it has (cancellation still stops it)."""
    budget = _current.get()
    if budget is None:
        yield
        return
    budget._optional += 1
    try:
        yield
    except BudgetExceeded:
        budget.degraded = True
    finally:
        budget._optional -= 1


def shrink_factor(width: int, height: int, max_pixels: int) -> int:
    """The smallest whole factor that brings ``width`` x ``height`` within ``max_pixels``."""
    if max_pixels <= 0 or width * height <= max_pixels:
        return 1
    return math.ceil(math.sqrt(width * height / max_pixels))


def bounded_image(img: Image.Image, max_pixels: int) -> Image.Image:
    """``img`` itself when it has at most ``max_pixels``, else its first frame shrunk by the
    smallest whole factor that fits (nearest neighbour: every s-th pixel, no new colours)."""
    factor = shrink_factor(img.width, img.height, max_pixels)
    if factor == 1:
        return img
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    size = (max(1, img.width // factor), max(1, img.height // factor))
    small = img.resize(size, Image.Resampling.NEAREST, reducing_gap=None)
    small.format = img.format  # lossy (JPEG) handling of the query follows its format
    return small
