"""The one progress bar: tqdm on stderr (items/s and ETA), quiet when not a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def _disabled() -> bool:
    if os.environ.get("OGASEARCH_PROGRESS") == "1":
        return False
    if os.environ.get("OGASEARCH_PROGRESS") == "0":
        return True
    return not sys.stderr.isatty()


def progress(total: int | None, desc: str, unit: str = "item") -> tqdm:
    """A progress bar for ``total`` items (``None`` when unknown); call ``.update(n)``."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        dynamic_ncols=True,
        disable=_disabled(),
        file=sys.stderr,
        smoothing=0.1,
    )


def track(items: Iterable[T], total: int | None, desc: str, unit: str = "item") -> Iterator[T]:
    with progress(total, desc, unit) as bar:
        for item in items:
            yield item
            bar.update(1)
