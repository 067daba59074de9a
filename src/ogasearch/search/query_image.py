"""Opening a query image (uploaded, fetched, or a file given to the CLI), and the one
vocabulary of its refusals, shared by the CLI and the JSON API; and the part of it a user
boxed (``parse_box``, ``check_box``, ``crop_query``, ``offset_boxes``).

Every query image goes through ``open_query_image``: the byte limit (``max_query_bytes``),
the empty file, then ``extract.images.open_image`` with the query pixel bound
(``max_query_pixels``), so decompression bombs and unsupported formats are refused in the
one place that refuses them for the crawl. A refusal is a ``QueryImageRejected`` whose
``reason`` says which kind it is and whose text says it for people; the web maps the reason
to an HTTP status, the CLI prints the text on one line.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from PIL import Image

from ogasearch.extract.images import ImageRejected, open_image
from ogasearch.search.results import SearchResult
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


# -- a part of the query (the box the user drew) -----------------------------------------------

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in the query's pixels, x1 and y1 excluded


class BadBox(ValueError):
    """A box that is not a non-empty part of the query picture; ``str()`` says why."""


def parse_box(text: str) -> Box:
    """``"x0,y0,x1,y1"`` (whole pixels) as a box; ``BadBox`` when it is not four integers."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 4:
            raise ValueError
        x0, y0, x1, y1 = (int(p) for p in parts)
    except ValueError:
        raise BadBox(f"box {text[:60]!r}: expected four whole pixels x0,y0,x1,y1") from None
    return (x0, y0, x1, y1)


def check_box(box: Box, size: tuple[int, int]) -> None:
    """``BadBox`` unless ``box`` is a non-empty part of a picture of ``size`` (w, h)."""
    x0, y0, x1, y1 = box
    w, h = size
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise BadBox(
            f"box {x0},{y0},{x1},{y1} is not a non-empty part of the {w} x {h} picture "
            "(0 <= x0 < x1 <= width, 0 <= y0 < y1 <= height)"
        )


def crop_query(image: Image.Image, box: Box) -> Image.Image:
    """The part ``box`` of a query picture (its first frame), checked by ``check_box``; the
    crop keeps the picture's format (a JPEG's part is still searched as lossy)."""
    check_box(box, image.size)
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    part = image.crop(box)
    part.format = image.format
    return part


def offset_boxes(results: Sequence[SearchResult], box: Box) -> None:
    """Results of a search of the part ``box`` of a picture, told where they were found in the
    whole picture: their own box moved by the part's corner, or the part itself."""
    x0, y0 = box[0], box[1]
    for hit in [r for card in results for r in (card, *card.more)]:
        if hit.query_box is None:
            hit.query_box = box
        else:
            a, b, c, d = hit.query_box
            hit.query_box = (a + x0, b + y0, c + x0, d + y0)
