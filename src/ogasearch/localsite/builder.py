"""SiteBuilder: collects a generated site's stored files and pages, handing out file ids in
order (the sample site and the benchmark scale site are both built with it)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from ogasearch.localsite.model import FileLink, Site, SitePage, StoredFile, content_type_for


class SiteBuilder:
    """Collects stored files and pages; hands out file ids in order."""

    def __init__(self, first_fid: int = 5001) -> None:
        self.files: dict[str, StoredFile] = {}
        self.pages: list[SitePage] = []
        self._fid = first_fid

    def file(
        self,
        name: str,
        data: bytes,
        when: datetime,
        *,
        link_text: str | None = None,
    ) -> FileLink:
        if name in self.files:
            raise ValueError(f"file {name!r} stored twice")
        self.files[name] = StoredFile(name, data, content_type_for(name), when)
        return self._link(name, link_text, declared_size=None, seed=data)

    def missing(self, name: str, declared_size: int) -> FileLink:
        """A link to a file the site no longer has (answers 404)."""
        return self._link(name, None, declared_size=declared_size, seed=name.encode())

    def _link(
        self, name: str, link_text: str | None, declared_size: int | None, seed: bytes
    ) -> FileLink:
        fid = self._fid
        self._fid += 1
        downloads = int(hashlib.sha256(seed).hexdigest()[:6], 16) % 900 + 3
        return FileLink(name, fid, link_text, downloads, declared_size)

    def build(self, name: str) -> Site:
        return Site(self.pages, self.files.values(), name=name)


def at(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    """A UTC moment, for post dates."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)
