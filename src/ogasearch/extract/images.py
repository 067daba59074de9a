"""Opening untrusted images: the one way ogasearch opens an image, and the facts it records.

``open_image`` is the only door: it accepts PNG, GIF, JPEG, BMP and WebP only (checked by
magic bytes, then by Pillow restricted to that one format), refuses decompression bombs
(pixels per frame over ``limits.max_image_pixels``, checked before any pixel is decoded),
animations with more than ``limits.max_image_frames`` frames, and truncated or corrupt files
(``verify()`` and a full decode of the first frame: Pillow's lenient truncated-image loading
stays off). Everything it refuses raises ``ImageRejected`` with a reason fit for the catalog.

``describe_image`` gives what the catalog stores per image; ``pixel_sha256`` and
``perceptual_hash`` are public so that tiles and queries are hashed exactly like images.
"""

from __future__ import annotations

import hashlib
import os
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

import imagehash
import numpy as np
from PIL import Image, UnidentifiedImageError

from ogasearch.settings import Limits

SUPPORTED_FORMATS = ("PNG", "GIF", "JPEG", "BMP", "WEBP")
IMAGE_EXTENSIONS = frozenset({".png", ".gif", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".webp"})
HEAD_BYTES = 64  # enough bytes to recognise any format below
BACKGROUND = (128, 128, 128, 255)  # mid-grey: transparency must not turn black (or white)

# What Pillow's decoders raise on malformed input (besides OSError / SyntaxError for most).
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    MemoryError,
    struct.error,
    zlib.error,
)

_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})

# Formats recognised by magic bytes: the supported ones, and others only to name them in errors.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"8BPS", "PSD"),
    (b"gimp xcf", "XCF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"qoif", "QOI"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG2000"),
    (b"DDS ", "DDS"),
)


class ImageRejected(ValueError):
    """An image that ogasearch will not use; ``str()`` says why."""


@dataclass(frozen=True)
class ImageFacts:
    format: str
    mode: str
    width: int
    height: int
    frames: int
    pixel_sha256: str
    phash: str


def is_image_name(name: str) -> bool:
    """True if ``name`` has the extension of a supported image format."""
    return PurePosixPath(name.lower()).suffix in IMAGE_EXTENSIONS


def sniff_image_format(head: bytes) -> str | None:
    """The image format that ``head`` (the first bytes of a file) starts, or None.

    Also names some unsupported formats (TIFF, PSD, ...) so that refusals can say which.
    """
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM" and len(head) >= 18:
        (dib_size,) = struct.unpack_from("<I", head, 14)
        if dib_size in _BMP_HEADER_SIZES:
            return "BMP"
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis", b"heic"):
        return "AVIF" if head[8:11] == b"avi" else "HEIC"
    return None


def is_supported_image(head: bytes) -> bool:
    return sniff_image_format(head) in SUPPORTED_FORMATS


def open_image(source: str | os.PathLike[str] | BinaryIO, limits: Limits) -> Image.Image:
    """Open, check and fully decode (first frame) an untrusted image, or raise ImageRejected.

    ``source`` is a path or a seekable binary file (which the caller keeps and closes). The
    returned image is loaded; use it as a context manager (animations keep their file open).
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as f:
            head = f.read(HEAD_BYTES)
    else:
        start = source.tell()
        head = source.read(HEAD_BYTES)
        source.seek(start)
    fmt = sniff_image_format(head)
    if fmt not in SUPPORTED_FORMATS:
        if fmt is None:
            raise ImageRejected("unsupported format: not a PNG, GIF, JPEG, BMP or WebP file")
        raise ImageRejected(f"unsupported format {fmt}")
    # Pillow's guard is process-wide: only ever raise it, so that concurrent callers with
    # smaller limits (web queries) cannot make a larger image fail; each call's own limit is
    # enforced by the explicit check in ``_checked``, before any pixel is decoded.
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, limits.max_image_pixels)
    if isinstance(source, str | os.PathLike):
        _checked(source, fmt, limits, verify=True).close()
        return _checked(source, fmt, limits, verify=False)
    # A caller's file: Pillow must not close it (Image.close() would), so images are dropped.
    _checked(source, fmt, limits, verify=True, close=_leave_open)
    source.seek(start)
    return _checked(source, fmt, limits, verify=False, close=_leave_open)


def _leave_open(im: Image.Image) -> None:
    """Let an image opened on a caller's file go without closing that file."""


def _checked(
    source: str | os.PathLike[str] | BinaryIO,
    fmt: str,
    limits: Limits,
    verify: bool,
    close: Callable[[Image.Image], None] = Image.Image.close,
) -> Image.Image:
    """Open with Pillow (one format only), check size and frames, then verify or load."""
    try:
        with warnings.catch_warnings():
            # Pillow warns past MAX_IMAGE_PIXELS and raises past twice that: both refuse here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(source, formats=[fmt])
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageRejected(f"decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise ImageRejected(f"corrupt {fmt} image: Pillow cannot read its header") from None
    except _DECODE_ERRORS as exc:
        raise ImageRejected(f"corrupt {fmt} image: {exc or type(exc).__name__}") from None
    try:
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ImageRejected(f"corrupt {fmt} image: size {width}x{height}")
        if width * height > limits.max_image_pixels:
            raise ImageRejected(
                f"decompression bomb: {width}x{height} = {width * height} pixels per frame,"
                f" over the limit of {limits.max_image_pixels}"
            )
        if verify:
            im.verify()
            return im
        frames = getattr(im, "n_frames", 1)
        if frames > limits.max_image_frames:
            raise ImageRejected(
                f"too many frames: {frames}, over the limit of {limits.max_image_frames}"
            )
        if frames > 1:
            im.seek(0)
        im.load()
        return im
    except ImageRejected:
        close(im)
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        close(im)
        raise ImageRejected(f"decompression bomb: {exc}") from None
    except _DECODE_ERRORS as exc:
        close(im)
        message = str(exc) or type(exc).__name__
        if "truncated" in message.lower() or isinstance(exc, EOFError):
            raise ImageRejected(f"truncated {fmt} image: {message}") from None
        raise ImageRejected(f"corrupt {fmt} image: {message}") from None


def to_rgba(im: Image.Image) -> Image.Image:
    """The image as 8-bit RGBA, honouring transparency (palette, tRNS) and 16-bit depth.

    Pillow's own conversion clips 16-bit greys to 255 instead of scaling them; here the top
    8 bits are kept.
    """
    if im.mode == "RGBA":
        return im.copy()
    if im.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        values = np.asarray(im).astype(np.int64)
        grey = Image.fromarray((np.clip(values, 0, 65535) >> 8).astype(np.uint8))
        rgba = grey.convert("RGBA")
        transparent = im.info.get("transparency")
        if isinstance(transparent, int):
            alpha = np.where(values == transparent, 0, 255).astype(np.uint8)
            rgba.putalpha(Image.fromarray(alpha))
        return rgba
    if im.mode == "F":
        values = np.nan_to_num(np.asarray(im), nan=0.0)
        return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8)).convert("RGBA")
    return im.convert("RGBA")


def pixel_sha256(im: Image.Image) -> str:
    """SHA-256 of the size and RGBA pixels: the same for one picture in any lossless format."""
    rgba = to_rgba(im)
    width, height = rgba.size
    digest = hashlib.sha256(f"{width}x{height}\n".encode())
    rows = max(1, (4 << 20) // max(1, width * 4))  # hash in strips of about 4 MiB
    for top in range(0, height, rows):
        digest.update(rgba.crop((0, top, width, min(height, top + rows))).tobytes())
    return digest.hexdigest()


def on_background(im: Image.Image) -> Image.Image:
    """The image composited on mid-grey, as RGB (never ``convert('RGB')`` on transparency)."""
    rgba = to_rgba(im)
    background = Image.new("RGBA", rgba.size, BACKGROUND)
    return Image.alpha_composite(background, rgba).convert("RGB")


def perceptual_hash(im: Image.Image) -> str:
    """64-bit DCT perceptual hash (imagehash.phash) as 16 hex characters, on mid-grey."""
    return str(imagehash.phash(on_background(im)))


def describe_image(source: str | os.PathLike[str] | BinaryIO, limits: Limits) -> ImageFacts:
    """Open an image through ``open_image`` and compute what the catalog records about it."""
    with open_image(source, limits) as im:
        return ImageFacts(
            format=im.format or "",
            mode=im.mode,
            width=im.width,
            height=im.height,
            frames=getattr(im, "n_frames", 1),
            pixel_sha256=pixel_sha256(im),
            phash=perceptual_hash(im),
        )
