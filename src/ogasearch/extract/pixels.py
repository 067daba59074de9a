"""Pixels of a catalog image: its blob, or for a tile its sheet's blob cropped to the box."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from PIL import Image
from sqlalchemy import Select, func, select
from sqlalchemy.orm import aliased

from ogasearch.catalog.schema import images
from ogasearch.extract.images import open_image
from ogasearch.settings import Limits
from ogasearch.store.blobs import BlobStore

Box = tuple[int, int, int, int]


def pixel_rows() -> Select:
    """Rows saying where each image's pixels are: ``id``, ``blob`` (its own blob, or for a
    tile its sheet's) and the tile box columns; add a ``where``. Read the box with
    ``tile_box``."""
    parent = aliased(images)
    return select(
        images.c.id,
        func.coalesce(parent.c.sha256, images.c.sha256).label("blob"),
        images.c.parent_id,
        images.c.tile_x,
        images.c.tile_y,
        images.c.tile_w,
        images.c.tile_h,
    ).select_from(images.outerjoin(parent, parent.c.id == images.c.parent_id))


def tile_box(row: Any) -> Box | None:
    """(x, y, w, h) of a tile row in its sheet, or None for a whole image."""
    if row.parent_id is None:
        return None
    return (int(row.tile_x), int(row.tile_y), int(row.tile_w), int(row.tile_h))


def load_pixels(store: BlobStore, limits: Limits, blob_sha256: str, box: Box | None) -> Image.Image:
    """Open the blob through ``open_image`` (first frame), cropped to ``box`` = (x, y, w, h).

    For a whole image ``blob_sha256`` is its own ``images.sha256``; for a tile it is the
    parent's (tiles are not stored, they are cut from the sheet on demand).
    """
    return PixelCache(store, limits, max_pixels=0).load(blob_sha256, box)


class PixelCache:
    """``load_pixels`` that keeps recently decoded sheets, so the tiles of one sheet decode it
    once (a sheet can hold thousands of tiles). Bounded by total pixels held."""

    def __init__(self, store: BlobStore, limits: Limits, max_pixels: int = 64_000_000) -> None:
        self.store = store
        self.limits = limits
        self.max_pixels = max_pixels
        self._held: OrderedDict[str, Image.Image] = OrderedDict()
        self._pixels = 0

    def _decoded(self, blob_sha256: str) -> Image.Image:
        cached = self._held.get(blob_sha256)
        if cached is not None:
            self._held.move_to_end(blob_sha256)
            return cached
        with open_image(self.store.path(blob_sha256), self.limits) as im:
            fmt = im.format
            decoded = im.copy()
        decoded.format = fmt
        size = decoded.width * decoded.height
        if size <= self.max_pixels:
            self._held[blob_sha256] = decoded
            self._pixels += size
            while self._pixels > self.max_pixels:
                _, old = self._held.popitem(last=False)
                self._pixels -= old.width * old.height
        return decoded

    def load(self, blob_sha256: str, box: Box | None) -> Image.Image:
        im = self._decoded(blob_sha256)
        if box is None:
            out = im.copy()
            out.format = im.format
            return out
        x, y, w, h = box
        return im.crop((x, y, x + w, y + h))  # a crop is lossless pixels, whatever the sheet
