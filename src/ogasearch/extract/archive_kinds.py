"""What a file or archive member is, by its first bytes and its name: an image, an archive
(zip, 7z, rar, tar, or a compressed stream), or something else; and which members are
operating-system junk (``__MACOSX``, AppleDouble ``._*``, ``Thumbs.db``) rather than art.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Literal

from ogasearch.extract.images import is_image_name, is_supported_image

Kind = Literal["image", "archive", "other"]

ARCHIVE_EXTENSIONS = frozenset(
    {".zip", ".7z", ".rar", ".tar", ".tgz", ".tbz", ".tbz2", ".txz", ".gz", ".bz2", ".xz", ".zst"}
)
_JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})


def sniff_archive(head: bytes) -> str | None:
    """The archive or compression format ``head`` starts, or None."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "zip"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head.startswith(b"Rar!\x1a\x07"):
        return "rar"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and head[3:4].isdigit():
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"\x1f\x9d"):
        return "compress"
    if head[257:262] == b"ustar":
        return "tar"
    return None


def is_archive_name(name: str) -> bool:
    return PurePosixPath(name.lower()).suffix in ARCHIVE_EXTENSIONS


def classify(head: bytes, name: str) -> Kind:
    """What to try on a file: its magic bytes first, then its name's extension.

    A supported image or an archive by content is that; otherwise a name that promises one
    (``x.png``, ``x.zip``) is still tried, so that a broken file is recorded as broken.
    """
    if is_supported_image(head):
        return "image"
    if sniff_archive(head) is not None:
        return "archive"
    if is_image_name(name):
        return "image"
    if is_archive_name(name):
        return "archive"
    return "other"


def is_junk(path: str) -> bool:
    """macOS resource forks and folder metadata: never art."""
    parts = path.split("/")
    base = parts[-1].lower()
    return "__MACOSX" in parts[:-1] or base in _JUNK_NAMES or base.startswith("._")
