"""Ground truth for a crawl of a local site, computed from the bytes the site serves.

Nothing here is written by hand: file hashes are of the served bytes, archive members come
from reading the archives back with libarchive, image sizes and frame counts from Pillow.
The expected states follow the catalog's vocabulary (docs/architecture.md):

- files: ``done`` (downloaded and extracted), ``failed`` (corrupt archive, undecodable
  image), ``gone`` (the link answers 404);
- members: ``ok``, ``refused`` (path traversal, absolute path, symbolic or hard link),
  ``failed`` (undecodable image, unreadable nested archive).

Member paths are full paths from the downloaded file, nested archives joined with ``/``.
Directory entries are not members. ``__MACOSX/`` entries and AppleDouble ``._*`` files are
kind ``other``.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from io import BytesIO
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import libarchive
import libarchive.exception
from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    from ogasearch.localsite.model import FileLink, Site, SitePage

IMAGE_EXTENSIONS = frozenset({"png", "gif", "jpg", "jpeg", "bmp", "webp"})
ARCHIVE_EXTENSIONS = frozenset({"zip", "7z", "rar", "tar", "gz", "tgz", "bz2", "tbz2", "xz"})
MAX_NESTING = 3  # archives inside archives, as Limits.max_archive_depth

FileState = Literal["done", "failed", "gone"]
MemberState = Literal["ok", "refused", "failed"]
MemberKind = Literal["image", "archive", "other"]


@dataclass(frozen=True)
class PersonRecord:
    name: str
    url: str | None  # absolute (site users resolved against the base URL) or None


@dataclass(frozen=True)
class PageRecord:
    slug: str
    url: str
    node_id: int
    title: str  # whitespace-collapsed, HTML-unescaped
    author: PersonRecord
    submitter: PersonRecord  # equals author when the author submitted it
    collaborators: tuple[PersonRecord, ...]
    licences: tuple[str, ...]  # names, in page order
    licence_urls: tuple[str, ...]
    tags: tuple[str, ...]
    art_type: str
    post_date: datetime  # UTC
    post_date_text: str  # as shown, e.g. "Thursday, November 6, 2014 - 13:08"
    description: str  # plain text, paragraphs separated by blank lines
    attribution: str | None
    favorites: int | None
    files_unavailable: bool


@dataclass(frozen=True)
class FileRecord:
    page_slug: str
    url: str  # the href exactly as served (HTML-unescaped), percent-encoded once
    name: str  # decoded last path segment
    link_text: str
    kind: Literal["file", "preview"]
    position: int  # order on the page (the preview is 0 among previews)
    fid: int
    declared_size: int  # the ``length=`` the page claims
    size: int | None  # served bytes; None when gone
    sha256: str | None
    content_type: str | None
    expected_state: FileState
    reason: str | None = None


@dataclass(frozen=True)
class MemberRecord:
    file_url: str
    path: str
    kind: MemberKind
    size: int | None
    sha256: str | None
    expected_state: MemberState
    reason: str | None = None


@dataclass(frozen=True)
class ImageRecord:
    file_url: str
    archive_path: str  # "" for a direct image file
    sha256: str
    width: int
    height: int
    frames: int
    format: str


@dataclass(frozen=True)
class Manifest:
    base_url: str
    pages: tuple[PageRecord, ...]  # newest first, like the listing
    files: tuple[FileRecord, ...]
    members: tuple[MemberRecord, ...]
    images: tuple[ImageRecord, ...]

    def page(self, slug: str) -> PageRecord:
        return next(p for p in self.pages if p.slug == slug)

    def files_of(self, slug: str) -> list[FileRecord]:
        return [f for f in self.files if f.page_slug == slug]

    def file(self, url: str) -> FileRecord:
        return next(f for f in self.files if f.url == url)

    def members_of(self, file_url: str) -> list[MemberRecord]:
        return [m for m in self.members if m.file_url == file_url]

    def images_of(self, file_url: str) -> list[ImageRecord]:
        return [i for i in self.images if i.file_url == file_url]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (datetimes as ISO 8601 strings)."""
        data = asdict(self)
        for page in data["pages"]:
            page["post_date"] = page["post_date"].isoformat()
        return data


def file_url(base_url: str, name: str) -> str:
    """The absolute href of a stored file: its name percent-encoded once (rawurlencode)."""
    return f"{base_url}/sites/default/files/{quote(name, safe='')}"


def post_date_text(when: datetime) -> str:
    return f"{when:%A}, {when:%B} {when.day}, {when.year} - {when:%H:%M}"


def build_manifest(site: Site, base_url: str) -> Manifest:
    pages: list[PageRecord] = []
    files: list[FileRecord] = []
    members: list[MemberRecord] = []
    images: list[ImageRecord] = []
    for page in site.pages():
        pages.append(_page_record(page, base_url))
        links: list[tuple[FileLink, Literal["file", "preview"], int]] = []
        if page.preview is not None:
            links.append((page.preview, "preview", 0))
        if not page.files_unavailable:
            links.extend((link, "file", n) for n, link in enumerate(page.files))
        for link, kind, position in links:
            record, found_members, found_images = _file_truth(
                site, page, link, kind, position, base_url
            )
            files.append(record)
            members.extend(found_members)
            images.extend(found_images)
    return Manifest(base_url, tuple(pages), tuple(files), tuple(members), tuple(images))


def _person(person: Any, base_url: str) -> PersonRecord:
    url = person.url
    if url is not None and url.startswith("/"):
        url = base_url + url
    return PersonRecord(person.name, url)


def _page_record(page: SitePage, base_url: str) -> PageRecord:
    from ogasearch.localsite.model import ART_TYPES, LICENCES

    return PageRecord(
        slug=page.slug,
        url=f"{base_url}/content/{page.slug}",
        node_id=page.node_id,
        title=page.clean_title,
        author=_person(page.author, base_url),
        submitter=_person(page.submitted_by, base_url),
        collaborators=tuple(_person(c, base_url) for c in page.collaborators),
        licences=page.licences,
        licence_urls=tuple(LICENCES[name].url for name in page.licences),
        tags=page.tags,
        art_type=ART_TYPES[page.art_type],
        post_date=page.post_date,
        post_date_text=post_date_text(page.post_date),
        description=page.description,
        attribution=page.attribution,
        favorites=page.favorites,
        files_unavailable=page.files_unavailable,
    )


def _file_truth(
    site: Site,
    page: SitePage,
    link: FileLink,
    kind: Literal["file", "preview"],
    position: int,
    base_url: str,
) -> tuple[FileRecord, list[MemberRecord], list[ImageRecord]]:
    url = file_url(base_url, link.name)
    stored = site.file(link.name)
    gone = FileRecord(
        page_slug=page.slug,
        url=url,
        name=link.name,
        link_text=link.text,
        kind=kind,
        position=position,
        fid=link.fid,
        declared_size=link.declared_size or 0,
        size=None,
        sha256=None,
        content_type=None,
        expected_state="gone",
        reason="404 Not Found",
    )
    if stored is None:
        return gone, [], []
    record = replace(
        gone,
        declared_size=len(stored.data),
        size=len(stored.data),
        sha256=stored.sha256,
        content_type=stored.content_type,
        expected_state="done",
        reason=None,
    )
    category = classify(link.name)
    if category == "image":
        described = describe_image(stored.data)
        if isinstance(described, str):
            return replace(record, expected_state="failed", reason=described), [], []
        width, height, frames, fmt = described
        image = ImageRecord(url, "", stored.sha256, width, height, frames, fmt)
        return record, [], [image]
    if category == "archive":
        try:
            found_members, found_images = walk_archive(stored.data, url)
        except libarchive.exception.ArchiveError as error:
            reason = _archive_error(error)
            return replace(record, expected_state="failed", reason=reason), [], []
        return record, found_members, found_images
    return record, [], []


def classify(path: str) -> MemberKind:
    """Kind of an archive member or file by its name; macOS junk is ``other``."""
    parts = path.split("/")
    if "__MACOSX" in parts[:-1] or parts[-1].startswith("._"):
        return "other"
    name = parts[-1].lower()
    extension = name.rsplit(".", 1)[-1] if "." in name else ""
    if extension in IMAGE_EXTENSIONS:
        return "image"
    if extension in ARCHIVE_EXTENSIONS:
        return "archive"
    return "other"


def describe_image(data: bytes) -> tuple[int, int, int, str] | str:
    """(width, height, frames, format) of a fully decodable image, or why it is not one."""
    try:
        with Image.open(BytesIO(data)) as image:
            frames = getattr(image, "n_frames", 1)
            fmt = image.format or ""
            size = image.size
            for index in range(frames):
                image.seek(index)
                image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return f"undecodable image: {error}"
    return size[0], size[1], frames, fmt


def _archive_error(error: libarchive.exception.ArchiveError) -> str:
    """A stable reason (the exception's text holds a pointer address)."""
    return f"unreadable archive: {getattr(error, 'msg', None) or 'not an archive or truncated'}"


def _unsafe_path(path: str) -> str | None:
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return "absolute path"
    if ".." in posixpath.normpath(path).split("/") or ".." in path.split("/"):
        return "path traversal"
    return None


def walk_archive(
    data: bytes, file_url_: str, prefix: str = "", depth: int = 1
) -> tuple[list[MemberRecord], list[ImageRecord]]:
    """Members and images of an archive (raises ``ArchiveError`` when it cannot be read)."""
    members: list[MemberRecord] = []
    images: list[ImageRecord] = []
    with libarchive.memory_reader(data) as archive:
        for entry in archive:
            if entry.isdir:
                continue
            inner = entry.pathname
            path = prefix + inner
            kind = classify(inner)
            if entry.issym or entry.islnk:
                members.append(MemberRecord(file_url_, path, kind, None, None, "refused", "link"))
                continue
            unsafe = _unsafe_path(inner)
            if unsafe:
                members.append(MemberRecord(file_url_, path, kind, None, None, "refused", unsafe))
                continue
            content = b"".join(entry.get_blocks())
            digest = hashlib.sha256(content).hexdigest()
            state: MemberState = "ok"
            reason = None
            nested: tuple[list[MemberRecord], list[ImageRecord]] = ([], [])
            if kind == "image":
                described = describe_image(content)
                if isinstance(described, str):
                    state, reason = "failed", described
                else:
                    width, height, frames, fmt = described
                    images.append(ImageRecord(file_url_, path, digest, width, height, frames, fmt))
            elif kind == "archive":
                if depth >= MAX_NESTING:
                    state, reason = "refused", "nesting too deep"
                else:
                    try:
                        nested = walk_archive(content, file_url_, path + "/", depth + 1)
                    except libarchive.exception.ArchiveError as error:
                        state, reason = "failed", _archive_error(error)
            members.append(MemberRecord(file_url_, path, kind, len(content), digest, state, reason))
            members.extend(nested[0])
            images.extend(nested[1])
    return members, images
