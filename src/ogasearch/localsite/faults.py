"""Fault injection and the request log of the local site's server.

Rules are added at run time from any thread: a regular expression searched in the raw request
target (path and query as sent, percent-escapes included), an optional method, a fault, and how
many times it fires (``None``: until removed). The first live matching rule fires.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["status", "slow", "drop", "truncate", "redirect", "raw"]


@dataclass(frozen=True)
class Fault:
    """What goes wrong. Build with the class methods."""

    kind: FaultKind
    status: int = 500
    retry_after: str | None = None  # Retry-After header value (seconds or an HTTP date)
    delay: float = 0.0  # seconds to wait before answering normally
    fraction: float = 0.5  # share of the body sent before the connection closes
    location: str | None = None  # redirect target; "/path" is made absolute on the site
    reset: bool = False  # drop with a TCP reset instead of a clean close
    data: bytes = b""  # the body of a "raw" answer
    content_type: str | None = None  # its Content-Type header (None: no such header)

    @classmethod
    def error(cls, status: int = 500, retry_after: float | str | None = None) -> Fault:
        """An error status (500, 503, 429, ...), with a Retry-After header if given."""
        after = None if retry_after is None else _retry_after(retry_after)
        return cls("status", status=status, retry_after=after)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        return cls("slow", delay=seconds)

    @classmethod
    def drop(cls, *, reset: bool = False) -> Fault:
        """Close the connection without sending a response."""
        return cls("drop", reset=reset)

    @classmethod
    def truncate(cls, fraction: float = 0.5) -> Fault:
        """Send the full Content-Length, then only ``fraction`` of the body, then close."""
        if not 0 <= fraction < 1:
            raise ValueError("fraction must be in [0, 1)")
        return cls("truncate", fraction=fraction)

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Fault:
        return cls("redirect", status=status, location=location)

    @classmethod
    def raw(
        cls, data: bytes, content_type: str | None = "text/html; charset=utf-8", status: int = 200
    ) -> Fault:
        """Answer with exactly these bytes (hand-broken markup, another charset, a robots.txt)."""
        return cls("raw", status=status, data=data, content_type=content_type)


def _retry_after(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass
class FaultRule:
    pattern: re.Pattern[str]
    fault: Fault
    remaining: int | None  # None: unlimited
    method: str | None = None
    hits: int = 0


class FaultRules:
    """Thread-safe list of fault rules."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(
        self, pattern: str, fault: Fault, times: int | None = 1, *, method: str | None = None
    ) -> FaultRule:
        """Fire ``fault`` on the next ``times`` requests whose target matches ``pattern``."""
        rule = FaultRule(re.compile(pattern), fault, times, method.upper() if method else None)
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, method: str, target: str) -> Fault | None:
        """The fault for this request, if any; consumes one use of its rule."""
        with self._lock:
            for rule in self._rules:
                if rule.remaining is not None and rule.remaining <= 0:
                    continue
                if rule.method and rule.method != method:
                    continue
                if rule.pattern.search(target):
                    rule.hits += 1
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule.fault
        return None


@dataclass
class RequestRecord:
    """One request as it arrived, completed with what the server did."""

    method: str
    target: str  # raw request target: path and query as sent
    path: str  # percent-decoded path
    headers: dict[str, str]  # lower-case names
    at: float  # time.time() on arrival
    monotonic: float  # time.monotonic() on arrival (for measuring gaps)
    client: str
    status: int | None = None  # None: no response was sent (dropped)
    fault: FaultKind | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class RequestLog:
    """Every request the server received, in arrival order."""

    def __init__(self) -> None:
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()

    def start(
        self, method: str, target: str, path: str, headers: Mapping[str, str], client: str
    ) -> RequestRecord:
        record = RequestRecord(
            method=method,
            target=target,
            path=path,
            headers={k.lower(): v for k, v in headers.items()},
            at=time.time(),
            monotonic=time.monotonic(),
            client=client,
        )
        with self._lock:
            self._records.append(record)
        return record

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
