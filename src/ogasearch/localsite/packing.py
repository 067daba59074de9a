"""Deterministic encoders for the files the local site serves: images and archives.

Every byte the local site serves must be the same on every build, so that the manifest's hashes
are stable ground truth: archives get fixed timestamps, owners and permissions and sorted
entries; gzip gets a zero mtime and no file name; images are encoded with fixed options.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import libarchive
from PIL import Image


@dataclass(frozen=True)
class Entry:
    """One entry to put in an archive: a regular file, or a symbolic link to ``target``."""

    path: str
    data: bytes = b""
    symlink_to: str | None = None


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=False)
    return buffer.getvalue()


def bmp(image: Image.Image, key_colour: tuple[int, int, int] = (255, 0, 255)) -> bytes:
    """A 24-bit BMP, transparency flattened onto a colour key as old sprite BMPs did."""
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, key_colour)
    flat.paste(rgba, mask=rgba.getchannel("A").point(lambda a: 255 if a >= 128 else 0))
    buffer = io.BytesIO()
    flat.save(buffer, format="BMP")
    return buffer.getvalue()


def animated_gif(frames: Sequence[Image.Image], duration_ms: int = 100) -> bytes:
    """A looping GIF; every frame is kept (no frame merging) so ``n_frames == len(frames)``."""
    prepared = [_gif_frame(frame) for frame in frames]
    buffer = io.BytesIO()
    prepared[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=prepared[1:],
        duration=duration_ms,
        loop=0,
        disposal=2,
        optimize=False,
    )
    return buffer.getvalue()


def single_gif(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    _gif_frame(image).save(buffer, format="GIF", optimize=False)
    return buffer.getvalue()


def _gif_frame(image: Image.Image) -> Image.Image:
    """Palette frame with index 255 transparent where the source alpha is low."""
    rgba = image.convert("RGBA")
    frame = rgba.convert("RGB").quantize(
        colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    mask = rgba.getchannel("A").point(lambda a: 255 if a < 128 else 0)
    frame.paste(255, mask=mask)
    frame.info["transparency"] = 255
    return frame


def _tree(entries: Iterable[Entry]) -> list[Entry]:
    """Entries sorted by path, with a directory entry (``dir/``) for every plain parent folder."""
    files = sorted(entries, key=lambda e: e.path)
    folders: set[str] = set()
    for entry in files:
        parts = entry.path.split("/")[:-1]
        if ".." in parts or entry.path.startswith("/"):
            continue  # a hostile path gets no helpful parent folders
        for depth in range(1, len(parts) + 1):
            folders.add("/".join(parts[:depth]) + "/")
    return sorted([*files, *(Entry(folder) for folder in folders)], key=lambda e: e.path)


def zip_archive(entries: Iterable[Entry], when: datetime) -> bytes:
    """A deflated zip; non-ASCII names get the UTF-8 flag (zipfile sets it)."""
    stamp = when.astimezone(UTC).timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for entry in _tree(entries):
            info = zipfile.ZipInfo(entry.path, date_time=stamp)
            info.create_system = 3  # Unix, so the mode bits below mean what they say
            if entry.path.endswith("/"):
                info.external_attr = (0o40755 << 16) | 0x10
                archive.writestr(info, b"")
            elif entry.symlink_to is not None:
                info.external_attr = 0o120777 << 16
                archive.writestr(info, entry.symlink_to.encode("utf-8"))
            else:
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, entry.data, compresslevel=9)
    return buffer.getvalue()


def sevenzip_archive(entries: Iterable[Entry], when: datetime) -> bytes:
    return _libarchive_bytes("7zip", entries, when)


def _libarchive_bytes(format_name: str, entries: Iterable[Entry], when: datetime) -> bytes:
    chunks: list[bytes] = []

    def write(data: bytes) -> int:
        chunks.append(bytes(data))
        return len(data)

    mtime = int(when.timestamp())
    with libarchive.custom_writer(write, format_name) as archive:
        for entry in _tree(entries):
            if entry.symlink_to is not None:
                raise ValueError(f"{format_name}: symlinks are not written by this builder")
            if entry.path.endswith("/"):
                archive.add_file_from_memory(
                    entry.path.rstrip("/"),
                    0,
                    b"",
                    filetype=libarchive.entry.FileType.DIRECTORY,
                    permission=0o755,
                    mtime=mtime,
                )
            else:
                archive.add_file_from_memory(
                    entry.path, len(entry.data), entry.data, permission=0o644, mtime=mtime
                )
    return b"".join(chunks)


def tar_gz_archive(entries: Iterable[Entry], when: datetime) -> bytes:
    mtime = int(when.timestamp())
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in _tree(entries):
            info = tarfile.TarInfo(entry.path.rstrip("/"))
            info.mtime = mtime
            info.uid = info.gid = 1000
            info.uname = info.gname = "artist"
            if entry.path.endswith("/"):
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                archive.addfile(info)
            elif entry.symlink_to is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = entry.symlink_to
                info.mode = 0o777
                archive.addfile(info)
            else:
                info.size = len(entry.data)
                info.mode = 0o644
                archive.addfile(info, io.BytesIO(entry.data))
    gz_buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz_buffer, mtime=0, compresslevel=9) as gz:
        gz.write(tar_buffer.getvalue())
    return gz_buffer.getvalue()


def apple_double() -> bytes:
    """The ``__MACOSX/._NAME`` resource-fork file macOS puts beside every file it zips."""
    finder_info = b"PNGf8BIM" + bytes(24)  # type/creator codes, then zeroed Finder flags
    header = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", 1)
    entry_table = struct.pack(">III", 9, 26 + 12, len(finder_info))  # entry id 9: Finder info
    return header + entry_table + finder_info


def truncated(data: bytes, keep: int) -> bytes:
    """The first ``keep`` bytes: an upload that stopped half-way."""
    if not 0 < keep < len(data):
        raise ValueError(f"keep must be between 1 and {len(data) - 1}")
    return data[:keep]
