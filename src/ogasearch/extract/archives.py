"""A safe, limited walk over untrusted archives (zip, 7z, rar, tar and tar.gz/bz2/xz/zst).

Nothing is ever extracted to disk: ``walk_archive`` reads the archive with libarchive
(libarchive-c) and yields one ``ArchiveEntry`` per member, whose content the caller may stream
(``copy_to``, e.g. into the blob store) before asking for the next entry. The format is found
by libarchive from the content, never from the file name. Only the formats above are enabled:
in particular not ``mtree``, whose reader opens files named in the archive on the local disk,
and no filter that runs an external program.

Refused per member (``state == "refused"``, ``error`` says why; the walk goes on): absolute
paths, ``..`` components, symbolic and hard links, device files, encrypted members, members
over ``max_member_bytes``. A member whose data libarchive cannot decode (bad CRC, unsupported
method) is ``state == "failed"``.

Refused as a whole (``LimitExceeded``, an ``ArchiveRefused``, raised and nothing yielded after
it): more than ``max_archive_members`` entries, more than ``max_archive_total_bytes``
uncompressed bytes, or an expansion ratio over ``max_compression_ratio`` once past
``ratio_floor_bytes``. These count the bytes actually decoded (never the sizes headers claim)
and, through one shared ``ArchiveBudget``, hold for a whole tree of nested archives; the ratio
is decoded bytes over the size of the outermost file. An archive whose headers are encrypted
raises ``ArchiveRefused``; a corrupt one raises ``ArchiveCorrupt`` with libarchive's message.
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from libarchive import ffi
from libarchive.entry import ArchiveEntry as _LibEntry
from libarchive.exception import ArchiveError as _LibArchiveError

from ogasearch.extract.archive_kinds import Kind, classify, is_junk, sniff_archive
from ogasearch.settings import Limits

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

State = Literal["ok", "refused", "failed"]

FORMATS = ("zip", "7zip", "rar", "rar5", "tar")
FILTERS = ("gzip", "bzip2", "xz", "lzma", "zstd", "compress")
HEAD_BYTES = 512  # tar's magic sits at offset 257
_BLOCK = 1 << 16
_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".z", ".lzma")

# The raw C functions, without libarchive-c's errcheck: we need the return codes themselves.
_lib = ffi.libarchive
_next_header = _lib["archive_read_next_header2"]
_next_header.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
_next_header.restype = ctypes.c_int
_read_data = _lib["archive_read_data"]
_read_data.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
_read_data.restype = ctypes.c_ssize_t
_is_encrypted = _lib["archive_entry_is_encrypted"]
_is_encrypted.argtypes = [ctypes.c_void_p]
_is_encrypted.restype = ctypes.c_int


class ArchiveError(Exception):
    """Base of every error this module raises."""


class ArchiveCorrupt(ArchiveError):
    """libarchive cannot read the archive (any further); the message is libarchive's."""


class ArchiveRefused(ArchiveError):
    """The archive is refused as a whole (encrypted headers, or a limit: see LimitExceeded)."""


class ArchiveUnsupported(ArchiveCorrupt):
    """libarchive cannot read this variant of a format (a RAR compression method, solid RAR)."""


_UNSUPPORTED = re.compile(r"not supported|unsupported|support unavailable", re.IGNORECASE)


def _unreadable(message: str) -> ArchiveCorrupt:
    """The error for a libarchive failure: unsupported when libarchive says so, else corrupt."""
    return ArchiveUnsupported(message) if _UNSUPPORTED.search(message) else ArchiveCorrupt(message)


class LimitExceeded(ArchiveRefused):
    """A whole-tree limit (entries, total bytes, ratio) was passed: refuse the whole tree."""


class MemberRefused(ArchiveError):
    """One member is refused (over max_member_bytes); the walk goes on."""


class MemberFailed(ArchiveError):
    """One member's data cannot be decoded (bad CRC, unsupported method); the walk goes on."""


@dataclass
class ArchiveBudget:
    """Counts shared by an archive and every archive nested in it."""

    limits: Limits
    compressed_bytes: int  # size of the outermost file: the ratio's denominator
    entries: int = 0
    total_bytes: int = 0
    exceeded: LimitExceeded | None = None

    def count_entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_archive_members:
            self._refuse(f"more than {self.limits.max_archive_members} entries")

    def count_bytes(self, n: int) -> None:
        self.total_bytes += n
        limits = self.limits
        if self.total_bytes > limits.max_archive_total_bytes:
            self._refuse(
                f"more than {limits.max_archive_total_bytes} uncompressed bytes"
                f" (limit max_archive_total_bytes)"
            )
        if self.total_bytes > limits.ratio_floor_bytes:
            ratio = self.total_bytes / max(1, self.compressed_bytes)
            if ratio > limits.max_compression_ratio:
                self._refuse(
                    f"compression ratio over {limits.max_compression_ratio:g}:"
                    f" {self.total_bytes} bytes decoded from {self.compressed_bytes}"
                )

    def check(self) -> None:
        if self.exceeded is not None:
            raise self.exceeded

    def _refuse(self, reason: str) -> None:
        self.exceeded = LimitExceeded(f"archive refused: {reason}")
        raise self.exceeded


@dataclass(eq=False)
class ArchiveEntry:
    """One member. Its content can be read until the walk moves on to the next entry."""

    path: str  # full path from the outermost file (prefix + name)
    name: str  # the path inside this archive, as stored
    kind: Kind
    size: int | None  # bytes decoded once read, else what the header claims
    state: State = "ok"
    error: str | None = None
    _reader: _Reader | None = field(default=None, repr=False)
    _head: bytes = field(default=b"", repr=False)
    _rest: Generator[bytes, None, None] | None = field(default=None, repr=False)
    _status: Literal["unread", "reading", "done"] = field(default="unread", repr=False)
    _eof: bool = field(default=False, repr=False)  # libarchive has no more data for it

    @property
    def readable(self) -> bool:
        """True for a regular member whose content has not been read yet."""
        return self._reader is not None and self._status == "unread" and self.state == "ok"

    def chunks(self) -> Iterator[bytes]:
        """The member's bytes, counted against every limit.

        Raises MemberRefused / MemberFailed (this member only), LimitExceeded or
        ArchiveCorrupt (the whole walk); ``state`` and ``error`` say the same.
        """
        if not self.readable:
            raise RuntimeError(f"content of {self.path!r} is not readable (any more)")
        self._status = "reading"
        if self._head:
            yield self._head
        if self._rest is not None:
            yield from self._rest
        self._status = "done"
        assert self._reader is not None
        self.size = self._reader.member_bytes

    def copy_to(self, out: SupportsWrite[bytes]) -> int:
        """Write the whole content to ``out``; return its size."""
        n = 0
        for block in self.chunks():
            out.write(block)
            n += len(block)
        return n

    def drain(self) -> None:
        """Read and discard what is left of the content, so that its bytes count.

        A refusal or failure of this member only sets ``state``; whole-walk errors propagate.
        """
        if self._reader is not None and not self._eof:
            self._reader.drain(self)
        self._status = "done"


class _Reader:
    """libarchive read state for one archive, with the byte accounting."""

    def __init__(self, archive_p: int, budget: ArchiveBudget, limits: Limits) -> None:
        self.p = archive_p
        self.budget = budget
        self.limits = limits
        self.buffer = ctypes.create_string_buffer(_BLOCK)
        self.member_bytes = 0
        self.fatal: ArchiveError | None = None

    def error_message(self, fallback: str) -> str:
        message = ffi.error_string(self.p)
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        return message or fallback

    def check(self) -> None:
        self.budget.check()
        if self.fatal is not None:
            raise self.fatal

    def _block(self, entry: ArchiveEntry) -> bytes:
        """The next decoded block of the current member (b"" at its end), counted."""
        self.check()
        n = _read_data(self.p, self.buffer, _BLOCK)
        if n < 0:
            entry._eof = True
            message = self.error_message("cannot read member data")
            if n <= ffi.ARCHIVE_FATAL:
                self.fatal = _unreadable(message)
                entry.state, entry.error = "failed", message
                raise self.fatal
            if "encrypt" in message.lower() or "passphrase" in message.lower():
                entry.state, entry.error = "refused", f"encrypted member: {message}"
                raise MemberRefused(entry.error)
            entry.state, entry.error = "failed", message
            raise MemberFailed(message)
        if n == 0:
            entry._eof = True
            entry.size = self.member_bytes
            return b""
        self.member_bytes += n
        try:
            self.budget.count_bytes(n)
        except LimitExceeded as exc:
            entry.state, entry.error = "refused", str(exc)
            raise
        return ctypes.string_at(self.buffer, n)

    def blocks(self, entry: ArchiveEntry) -> Generator[bytes, None, None]:
        """The member's blocks, refusing it once past max_member_bytes."""
        while block := self._block(entry):
            if self.member_bytes > self.limits.max_member_bytes:
                entry.state = "refused"
                entry.error = f"member over {self.limits.max_member_bytes} bytes (max_member_bytes)"
                raise MemberRefused(entry.error)
            yield block

    def drain(self, entry: ArchiveEntry) -> None:
        """Decode the rest of the member, counting its bytes for the whole-tree limits."""
        if entry._rest is not None:
            entry._rest.close()
        try:
            while not entry._eof and self._block(entry):
                pass
        except (MemberRefused, MemberFailed):
            pass
        if entry.state == "refused":
            entry.size = self.member_bytes


@contextmanager
def _open(path: str | os.PathLike[str], formats: tuple[str, ...]) -> Iterator[int]:
    archive_p = ffi.read_new()
    try:
        for name in formats:
            ffi.get_read_format_function(name)(archive_p)
        for name in FILTERS:
            ffi.get_read_filter_function(name)(archive_p)
        try:
            ffi.read_open_filename_w(archive_p, os.fspath(path), _BLOCK)
        except _LibArchiveError as exc:
            raise _unreadable(_lib_message(exc)) from None
        yield archive_p
    finally:
        ffi.read_free(archive_p)


def _lib_message(exc: _LibArchiveError) -> str:
    msg = exc.msg
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8", "replace")
    return str(msg or "unreadable archive")


def walk_archive(
    path: str | os.PathLike[str],
    limits: Limits,
    *,
    budget: ArchiveBudget | None = None,
    prefix: str = "",
    name: str | None = None,
) -> Iterator[ArchiveEntry]:
    """Yield the members of the archive at ``path`` (directories excluded).

    ``prefix`` is prepended to member paths (``"inner.7z/"`` for a nested archive); ``budget``
    is shared with the enclosing walk for nested archives (a new one otherwise); ``name`` is
    the archive's own file name, used to name the content of a compressed single file
    (``tiles.png.gz`` holds ``tiles.png``).
    """
    if budget is None:
        budget = ArchiveBudget(limits, compressed_bytes=os.path.getsize(path))
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    walked_any = False
    try:
        for entry in _walk(path, FORMATS, limits, budget, prefix, name):
            walked_any = True
            yield entry
    except ArchiveCorrupt as exc:
        compressed_single = sniff_archive(head) in ("gzip", "bzip2", "xz", "zstd", "compress")
        if walked_any or not compressed_single or "Unrecognized archive format" not in str(exc):
            raise
        # Not a tar inside: a single compressed file (e.g. sprites.png.gz).
        yield from _walk(path, ("raw",), limits, budget, prefix, name)


def _walk(
    path: str | os.PathLike[str],
    formats: tuple[str, ...],
    limits: Limits,
    budget: ArchiveBudget,
    prefix: str,
    name: str | None,
) -> Iterator[ArchiveEntry]:
    with _open(path, formats) as archive_p:
        reader = _Reader(archive_p, budget, limits)
        lib_entry = _LibEntry(archive_p)
        while True:
            budget.check()
            if reader.fatal is not None:
                raise reader.fatal
            r = _next_header(archive_p, lib_entry._entry_p)
            if r == ffi.ARCHIVE_EOF:
                return
            if r == ffi.ARCHIVE_RETRY:  # a damaged header skipped (tar resyncs on the next one)
                budget.count_entry()
                continue
            if r < ffi.ARCHIVE_WARN:
                message = reader.error_message(
                    "truncated or corrupt archive (libarchive gave no reason)"
                )
                if "encrypt" in message.lower() or "passphrase" in message.lower():
                    raise ArchiveRefused(f"encrypted archive: {message}")
                raise _unreadable(message)
            budget.count_entry()
            if lib_entry.isdir:
                continue
            raw_name = _decompressed_name(name) if formats == ("raw",) else _entry_name(lib_entry)
            entry = _make_entry(lib_entry, raw_name, prefix, limits)
            if entry.state == "ok":
                reader.member_bytes = 0
                entry._reader = reader
                if is_junk(entry.name):
                    entry._rest = reader.blocks(entry)
                else:
                    _read_head(entry, reader)
            elif lib_entry.isreg and entry.size:
                # Skipping data in a compressed stream means decoding it: count what it claims.
                budget.count_bytes(entry.size)
            yield entry
            reader.check()
            entry.drain()  # whatever the caller left unread still counts


def _read_head(entry: ArchiveEntry, reader: _Reader) -> None:
    """Read the first bytes of a member to recognise its kind by content."""
    rest = reader.blocks(entry)
    head = b""
    try:
        while len(head) < HEAD_BYTES:
            block = next(rest, b"")
            if not block:
                break
            head += block
    except (MemberRefused, MemberFailed):
        return
    entry._head = head
    entry._rest = rest
    entry.kind = classify(head, entry.name)


def _make_entry(lib_entry: _LibEntry, raw_name: str, prefix: str, limits: Limits) -> ArchiveEntry:
    size = lib_entry.size
    name, problem = _safe_name(raw_name)
    kind: Kind = "other" if is_junk(name) else classify(b"", name)
    entry = ArchiveEntry(path=prefix + name, name=name, kind=kind, size=size)
    if problem is None:
        problem = _refusal(lib_entry, size, limits)
    if problem is not None:
        entry.state, entry.error = "refused", problem
    return entry


def _refusal(lib_entry: _LibEntry, size: int | None, limits: Limits) -> str | None:
    if lib_entry.issym:
        return f"symbolic link to {lib_entry.linkpath!r}"
    if lib_entry.islnk:
        return f"hard link to {lib_entry.linkpath!r}"
    if lib_entry.isdev:
        return "device or special file"
    if not lib_entry.isreg:
        return f"not a regular file (type {lib_entry.filetype:o})"
    if _is_encrypted(lib_entry._entry_p):
        return "encrypted member"
    if size is not None and size > limits.max_member_bytes:
        return f"member claims {size} bytes, over {limits.max_member_bytes} (max_member_bytes)"
    return None


_DRIVE = re.compile(r"^[A-Za-z]:")


def _safe_name(raw: str) -> tuple[str, str | None]:
    """The member's path normalised (``./`` and ``//`` dropped), or the raw one and why not."""
    unified = raw.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        return raw, "absolute path"
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        return raw, "path leaves the archive (.. component)"
    if not parts:
        return raw or "(empty name)", "empty path"
    return "/".join(parts), None


def _entry_name(lib_entry: _LibEntry) -> str:
    """The member's path as text; bytes that are not UTF-8 are read as zip's CP437."""
    name = lib_entry.pathname
    if isinstance(name, bytes):
        try:
            name = name.decode("utf-8")
        except UnicodeDecodeError:
            name = name.decode("cp437")
    return name or ""


def _decompressed_name(name: str | None) -> str:
    if not name:
        return "data"
    lower = name.lower()
    for suffix in _COMPRESSED_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name
