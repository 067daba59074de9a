"""Pixels of a catalog image: its blob, or for a tile its sheet's blob cropped to the box."""

from __future__ import annotations

from PIL import Image

from ogasearch.extract.images import open_image
from ogasearch.settings import Limits
from ogasearch.store.blobs import BlobStore

Box = tuple[int, int, int, int]


def load_pixels(store: BlobStore, limits: Limits, blob_sha256: str, box: Box | None) -> Image.Image:
    """Open the blob through ``open_image`` (first frame), cropped to ``box`` = (x, y, w, h).

    For a whole image ``blob_sha256`` is its own ``images.sha256``; for a tile it is the
    parent's (tiles are not stored, they are cut from the sheet on demand).
    """
    with open_image(store.path(blob_sha256), limits) as im:
        fmt = im.format
        if box is None:
            out = im.copy()
        else:
            x, y, w, h = box
            out = im.crop((x, y, x + w, y + h))
    out.format = fmt if box is None else None  # a crop is lossless pixels, whatever the sheet
    return out
