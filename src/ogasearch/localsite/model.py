"""The local site's content: submissions (pages), the files they link and the site holding both.

A ``Site`` is the mutable, thread-safe state the server renders from. Tests change it at
run time (add, change or remove a page, add or remove a file) to exercise incremental crawls;
every change bumps ``revision`` and the changed page's ``changed`` time, so ETags and
Last-Modified follow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, TypedDict, Unpack
from urllib.parse import quote

if TYPE_CHECKING:
    from ogasearch.localsite.manifest import Manifest

ART_TYPES: Mapping[int, str] = {
    9: "2D Art",
    10: "3D Art",
    12: "Music",
    13: "Sound Effect",
    14: "Texture",
    7273: "Concept Art",
    11: "Document",
}
ART_TYPE_2D = 9


@dataclass(frozen=True)
class Licence:
    name: str
    url: str
    icon: str  # file name under /sites/default/files/license_images/
    tid: int  # the listing's field_art_licenses_tid[] value


LICENCES: Mapping[str, Licence] = {
    lic.name: lic
    for lic in (
        Licence("CC0", "http://creativecommons.org/publicdomain/zero/1.0/", "cc0.png", 4),
        Licence("CC-BY 3.0", "http://creativecommons.org/licenses/by/3.0/", "cc-by.png", 2),
        Licence("CC-BY 4.0", "https://creativecommons.org/licenses/by/4.0/", "cc-by.png", 17981),
        Licence(
            "CC-BY-SA 3.0", "http://creativecommons.org/licenses/by-sa/3.0/", "cc-by-sa.png", 3
        ),
        Licence(
            "CC-BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0/", "cc-by-sa.png", 17982
        ),
        Licence("GPL 2.0", "http://www.gnu.org/licenses/old-licenses/gpl-2.0.html", "gpl.png", 5),
        Licence("GPL 3.0", "http://www.gnu.org/licenses/gpl-3.0.html", "gpl.png", 6),
        Licence(
            "LGPL 2.1", "http://www.gnu.org/licenses/old-licenses/lgpl-2.1.html", "lgpl.png", 7
        ),
        Licence("LGPL 3.0", "http://www.gnu.org/licenses/lgpl-3.0.html", "lgpl.png", 8),
        Licence("OGA-BY 3.0", "https://static.opengameart.org/OGA-BY-3.0.txt", "oga-by.png", 10310),
        Licence("OGA-BY 4.0", "https://static.opengameart.org/OGA-BY-4.0.txt", "oga-by.png", 31772),
    )
}


@dataclass(frozen=True)
class Person:
    """An author, submitter or collaborator.

    ``url`` is ``None`` for a plain-text name, ``/users/NAME`` for an OGA account (rendered as a
    site-relative link, as OGA does) or an absolute external URL.
    """

    name: str
    url: str | None = None

    @classmethod
    def user(cls, name: str) -> Person:
        return cls(name, f"/users/{quote(name, safe='')}")


@dataclass(frozen=True)
class FileLink:
    """One link in a page's File(s) field, or its preview.

    ``name`` is the stored file's decoded name (the last URL segment once percent-decoded);
    ``link_text`` is what the page shows, which can differ (``gfx.zip`` for ``gfx_3.zip``).
    A link whose ``name`` the site does not hold answers 404.
    """

    name: str
    fid: int
    link_text: str | None = None
    downloads: int = 0
    declared_size: int | None = None  # for links to missing files: the size the page claims

    @property
    def text(self) -> str:
        return self.link_text if self.link_text is not None else self.name


@dataclass(frozen=True)
class Comment:
    author: Person
    posted: datetime
    html: str  # trusted markup written by the builder (may link to files on other pages)
    picture: str | None = None  # avatar file name under /sites/default/files/pictures/


AttributionField = Literal["copyright-notice", "art-attribution"]
Markup = Literal["standard", "odd"]


@dataclass(frozen=True)
class SitePage:
    """One submission, as its content page shows it."""

    slug: str
    node_id: int
    title: str  # as written in the markup (the odd page pads it with whitespace)
    author: Person
    post_date: datetime  # UTC
    licences: tuple[str, ...]
    submitter: Person | None = None  # None: the author submitted it
    collaborators: tuple[Person, ...] = ()
    art_type: int = ART_TYPE_2D
    tags: tuple[str, ...] = ()
    description: str = ""  # plain text, paragraphs separated by blank lines
    attribution: str | None = None
    attribution_field: AttributionField = "copyright-notice"
    favorites: int | None = 0  # None: the field is missing from the page
    collections: tuple[tuple[str, str], ...] = ()  # (slug, title)
    preview: FileLink | None = None
    files: tuple[FileLink, ...] = ()
    files_unavailable: bool = False
    comments: tuple[Comment, ...] = ()
    markup: Markup = "standard"
    changed: datetime | None = None  # last edit (UTC); None: never edited since posting

    @property
    def last_modified(self) -> datetime:
        return self.changed or self.post_date

    @property
    def clean_title(self) -> str:
        return " ".join(self.title.split())

    @property
    def submitted_by(self) -> Person:
        return self.submitter or self.author


class PageChanges(TypedDict, total=False):
    """The ``SitePage`` fields an edit may change (not slug, node_id, or ``changed``)."""

    title: str
    author: Person
    post_date: datetime
    licences: tuple[str, ...]
    submitter: Person | None
    collaborators: tuple[Person, ...]
    art_type: int
    tags: tuple[str, ...]
    description: str
    attribution: str | None
    attribution_field: AttributionField
    favorites: int | None
    collections: tuple[tuple[str, str], ...]
    preview: FileLink | None
    files: tuple[FileLink, ...]
    files_unavailable: bool
    comments: tuple[Comment, ...]
    markup: Markup


@dataclass(frozen=True)
class StoredFile:
    """Bytes served under ``/sites/default/files/NAME``."""

    name: str
    data: bytes
    content_type: str
    uploaded: datetime  # Last-Modified
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())

    @property
    def etag(self) -> str:
        return f'"{self.sha256[:32]}"'


CONTENT_TYPES: Mapping[str, str] = {
    "png": "image/png",
    "gif": "image/gif",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "bmp": "image/bmp",
    "zip": "application/zip",
    "7z": "application/x-7z-compressed",
    "gz": "application/x-gzip",
    "tgz": "application/x-gzip",
    "rar": "application/x-rar-compressed",
    "txt": "text/plain",
}


def content_type_for(name: str) -> str:
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return CONTENT_TYPES.get(extension, "application/octet-stream")


def slugify(title: str) -> str:
    """Pathauto-like slug: transliterated, lower case, words joined by ``-``."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-") or "untitled"


class Site:
    """Pages and files of one local OGA copy; safe to read and change from several threads."""

    def __init__(self, pages: Iterable[SitePage], files: Iterable[StoredFile], *, name: str):
        self.name = name
        self._lock = threading.RLock()
        self._pages: dict[str, SitePage] = {}
        self._files: dict[str, StoredFile] = {}
        self._dlcounts: dict[int, int] = {}
        self._revision = 0
        self._base_url: str | None = None
        self._manifest_cache: tuple[int, str, Manifest] | None = None
        for stored in files:
            self._files[stored.name] = stored
        for page in pages:
            if page.slug in self._pages:
                raise ValueError(f"duplicate slug {page.slug!r}")
            self._pages[page.slug] = page

    # -- reading ------------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def base_url(self) -> str | None:
        """The URL of the server last started for this site (set by ``serve_site``)."""
        return self._base_url

    def bind(self, base_url: str) -> None:
        with self._lock:
            self._base_url = base_url.rstrip("/")

    def pages(self) -> list[SitePage]:
        """All pages, newest first (the listing's ``sort_by=created&sort_order=DESC``)."""
        with self._lock:
            return sorted(
                self._pages.values(), key=lambda p: (p.post_date, p.node_id), reverse=True
            )

    def page(self, slug: str) -> SitePage | None:
        with self._lock:
            return self._pages.get(slug)

    def page_by_node(self, node_id: int) -> SitePage | None:
        with self._lock:
            return next((p for p in self._pages.values() if p.node_id == node_id), None)

    def file(self, name: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(name)

    def files(self) -> list[StoredFile]:
        with self._lock:
            return sorted(self._files.values(), key=lambda f: f.name)

    def last_modified(self) -> datetime:
        with self._lock:
            return max((p.last_modified for p in self._pages.values()), default=_EPOCH)

    def count_download(self, fid: int) -> int:
        with self._lock:
            self._dlcounts[fid] = self._dlcounts.get(fid, 0) + 1
            return self._dlcounts[fid]

    def manifest(self, base_url: str | None = None) -> Manifest:
        """What a complete crawl of this site should end up with (see ``manifest.Manifest``).

        ``base_url`` defaults to the server this site was last served by.
        """
        from ogasearch.localsite.manifest import build_manifest

        with self._lock:
            base = (base_url or self._base_url or "").rstrip("/")
            if not base:
                raise ValueError("manifest(): no base_url given and the site is not served")
            cached = self._manifest_cache
            if cached and cached[0] == self._revision and cached[1] == base:
                return cached[2]
            result = build_manifest(self, base)
            self._manifest_cache = (self._revision, base, result)
            return result

    # -- changing -----------------------------------------------------------------------------

    def _next_node_id(self) -> int:
        return max((p.node_id for p in self._pages.values()), default=1000) + 1

    def _next_fid(self) -> int:
        fids = [f.fid for p in self._pages.values() for f in (*p.files, p.preview) if f]
        return max(fids, default=1000) + 1

    def _touch(self, before: datetime | None) -> datetime:
        """A change time after ``before`` and after every earlier change, whole seconds."""
        now = datetime.now(UTC).replace(microsecond=0)
        floor = max(self.last_modified(), before or _EPOCH) + timedelta(seconds=1)
        return max(now, floor)

    def add_page(
        self,
        title: str,
        files: Mapping[str, bytes] | Iterable[tuple[str, bytes]] = (),
        *,
        author: str = "newcomer",
        licences: Iterable[str] = ("CC0",),
        tags: Iterable[str] = (),
        description: str = "",
        slug: str | None = None,
        preview: tuple[str, bytes] | None = None,
    ) -> SitePage:
        """Publish a new submission now; it becomes the first row of the created-DESC listing."""
        items = list(files.items()) if isinstance(files, Mapping) else list(files)
        with self._lock:
            slug = slug or self._free_slug(slugify(title))
            if slug in self._pages:
                raise ValueError(f"slug {slug!r} exists")
            posted = self._touch(None)
            fid = self._next_fid()
            links = []
            for offset, (name, data) in enumerate(items):
                self._store(name, data, posted)
                links.append(FileLink(name=name, fid=fid + offset))
            preview_link = None
            if preview is not None:
                self._store(preview[0], preview[1], posted)
                preview_link = FileLink(name=preview[0], fid=fid + len(items))
            page = SitePage(
                slug=slug,
                node_id=self._next_node_id(),
                title=title,
                author=Person.user(author),
                post_date=posted,
                licences=_known_licences(licences),
                tags=tuple(tags),
                description=description,
                preview=preview_link,
                files=tuple(links),
            )
            self._pages[slug] = page
            self._revision += 1
            return page

    def change_page(self, slug: str, **changes: Unpack[PageChanges]) -> SitePage:
        """Edit a page's fields (any ``SitePage`` field but slug and node_id); bumps ``changed``."""
        if {"slug", "node_id"} & changes.keys():
            raise ValueError("slug and node_id cannot change")
        with self._lock:
            page = self._require(slug)
            if "licences" in changes:
                changes["licences"] = _known_licences(changes["licences"])
            updated = dataclasses.replace(page, **changes)
            updated = dataclasses.replace(updated, changed=self._touch(page.last_modified))
            self._pages[slug] = updated
            self._revision += 1
            return updated

    def add_file_to_page(
        self, slug: str, name: str, data: bytes, *, link_text: str | None = None
    ) -> FileLink:
        """An author adds a file to an old submission (the page changes, its files grow)."""
        with self._lock:
            page = self._require(slug)
            when = self._touch(page.last_modified)
            self._store(name, data, when)
            link = FileLink(name=name, fid=self._next_fid(), link_text=link_text)
            self._pages[slug] = dataclasses.replace(page, files=(*page.files, link), changed=when)
            self._revision += 1
            return link

    def remove_page(self, slug: str) -> None:
        """Unpublish a page: its URL answers 404; its files stay (as on OGA)."""
        with self._lock:
            self._require(slug)
            del self._pages[slug]
            self._revision += 1

    def remove_file(self, name: str) -> None:
        """Delete a stored file: links to it answer 404."""
        with self._lock:
            if self._files.pop(name, None) is None:
                raise KeyError(name)
            self._revision += 1

    def _store(self, name: str, data: bytes, when: datetime) -> None:
        if "/" in name:
            raise ValueError(f"file names cannot contain '/': {name!r}")
        if name in self._files:
            raise ValueError(f"file {name!r} exists (OGA would rename it; pick another name)")
        self._files[name] = StoredFile(name, data, content_type_for(name), when)

    def _require(self, slug: str) -> SitePage:
        page = self._pages.get(slug)
        if page is None:
            raise KeyError(slug)
        return page

    def _free_slug(self, base: str) -> str:
        candidate, n = base, 0
        while candidate in self._pages:
            candidate = f"{base}-{n}"
            n += 1
        return candidate


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _known_licences(names: Iterable[str]) -> tuple[str, ...]:
    result = tuple(names)
    unknown = [n for n in result if n not in LICENCES]
    if unknown or not result:
        raise ValueError(f"licences must be 1+ of {sorted(LICENCES)}; got {result}")
    return result
