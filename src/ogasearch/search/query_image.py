"""Opening a query image (uploaded, fetched, or a file given to the CLI), and the one
vocabulary of its refusals, shared by the CLI and the JSON API.

Every query image goes through ``open_query_image``: the byte limit (``max_query_bytes``),
the empty file, then ``extract.images.open_image`` with the query pixel bound
(``max_query_pixels``), so decompression bombs and unsupported formats are refused in the
one place that refuses them for the crawl. A refusal is a ``QueryImageRejected`` whose
``reason`` says which kind it is and whose text says it for people; the web maps the reason
to an HTTP status, the CLI prints the text on one line.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

from PIL import Image

from ogasearch.extract.images import ImageRejected, open_image
from ogasearch.settings import Limits

Reason = Literal["empty", "unreadable", "too_large"]
EMPTY = "the image is empty"


class QueryImageRejected(ValueError):
    """A query image that cannot be searched with; ``str()`` says why, ``reason`` its kind."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason: Reason = reason
        self.detail = detail


def query_limits(limits: Limits) -> Limits:
    """The image limits for queries: the catalog's, with the (smaller) query pixel bound."""
    pixels = min(limits.max_image_pixels, limits.max_query_pixels)
    return limits.model_copy(update={"max_image_pixels": pixels})


def too_large(size: int | None, limit: int) -> QueryImageRejected:
    said = f"{size} bytes" if size is not None else "larger than the limit"
    return QueryImageRejected("too_large", f"image is {said}; the limit is {limit} bytes")


def open_query_image(data: bytes, limits: Limits) -> Image.Image:
    """Open query bytes as a loaded image (a context manager), or raise QueryImageRejected."""
    if len(data) > limits.max_query_bytes:
        raise too_large(len(data), limits.max_query_bytes)
    if not data:
        raise QueryImageRejected("empty", EMPTY)
    try:
        return open_image(io.BytesIO(data), query_limits(limits))
    except ImageRejected as exc:
        raise QueryImageRejected("unreadable", str(exc)) from None


def read_query_file(path: Path, limits: Limits) -> bytes:
    """A query image file's bytes (at most one byte past the limit, which then refuses it)."""
    with path.open("rb") as f:
        return f.read(limits.max_query_bytes + 1)
