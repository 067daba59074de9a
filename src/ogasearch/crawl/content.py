"""A content page (``/content/SLUG``): everything it says about one submission -> ``ContentPage``.

OGA is a Drupal 7 site with Display Suite layouts: every fact is a ``div.field-name-NAME``
(see ``docs/opengameart.md``). Parsing is defensive by design: a field that is missing or
malformed becomes ``None`` or an empty list, never an exception. People are read in
``people``, the submission time in ``dates``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from bs4 import BeautifulSoup, Tag
from bs4.element import Comment

from ogasearch.crawl.dates import post_date
from ogasearch.crawl.html import (
    attr,
    block_text,
    classes,
    ds_field,
    field_items,
    join_href,
    soup,
    text_of,
    to_int,
    unique,
)
from ogasearch.crawl.people import Person, author_submitter, collaborators
from ogasearch.crawl.urls import file_name_from_url, is_art_file_url, slug_from_url


@dataclass(frozen=True)
class LicenseRef:
    """A licence as named on the page ("CC-BY-SA 3.0") and the licence text's URL."""

    name: str
    url: str | None


@dataclass(frozen=True)
class FileLink:
    """A link to a file on the site: the href as given, its decoded name and what the page says.

    ``declared_size`` is the exact byte count from ``type="...; length=N"``; ``fid`` is Drupal's
    file id (``data-fid``) when shown.
    """

    url: str
    name: str
    link_text: str | None
    declared_size: int | None
    fid: int | None


@dataclass(frozen=True)
class ContentPage:
    """Everything a ``/content/SLUG`` page says about one submission."""

    slug: str
    url: str
    node_id: int | None
    title: str | None
    author: Person | None
    submitter: Person | None
    collaborators: list[Person] = field(default_factory=list)
    post_date: datetime | None = None
    post_date_text: str | None = None
    art_type: str | None = None
    tags: list[str] = field(default_factory=list)
    licenses: list[LicenseRef] = field(default_factory=list)
    attribution: str | None = None
    description: str | None = None
    favorites: int | None = None
    previews: list[FileLink] = field(default_factory=list)
    files: list[FileLink] = field(default_factory=list)
    files_unavailable: bool = False


def parse_content_page(html: bytes | str, url: str) -> ContentPage:
    """Read a submission page. Fields the page lacks come back as None or empty lists."""
    page = soup(html)
    author, submitter = author_submitter(ds_field(page, "author-submitter"), url)
    when, when_text = post_date(page)
    return ContentPage(
        slug=slug_from_url(url) or _canonical_slug(page, url) or file_name_from_url(url),
        url=url,
        node_id=_node_id(page),
        title=_title(page),
        author=author,
        submitter=submitter,
        collaborators=collaborators(ds_field(page, "field-collaborators"), url),
        post_date=when,
        post_date_text=when_text,
        art_type=_first_item_text(ds_field(page, "field-art-type")),
        tags=_link_or_item_texts(ds_field(page, "field-art-tags")),
        licenses=_licenses(ds_field(page, "field-art-licenses"), url),
        attribution=block_text(
            field_items(ds_field(page, "field-copyright-notice"))
            or field_items(ds_field(page, "field-art-attribution"))
        ),
        description=_description(page),
        favorites=_favorites(ds_field(page, "favorites")),
        previews=_previews(ds_field(page, "field-art-preview"), url),
        files=_files(ds_field(page, "field-art-files"), url),
        files_unavailable=_files_unavailable(page),
    )


def _title(page: BeautifulSoup) -> str | None:
    title_field = ds_field(page, "title")
    if title_field is not None:
        heading = title_field.select_one("h1, h2, [property~='dc:title']") or field_items(
            title_field
        )
        text = text_of(heading) if heading is not None else ""
        if text:
            return text
    for tag in page.select("[property~='dc:title']"):
        text = attr(tag, "content") or text_of(tag)
        if text:
            return text
    if page.title is not None:
        text = re.sub(r"\s*\|\s*OpenGameArt\.org\s*$", "", text_of(page.title), flags=re.I)
        if text:
            return text
    return None


def _node_id(page: BeautifulSoup) -> int | None:
    for tag in page.select("[class*='flag-favorites-']"):
        for cls in classes(tag):
            match = re.fullmatch(r"flag-favorites-(\d+)", cls)
            if match:
                return int(match.group(1))
    shortlink = page.select_one("link[rel~='shortlink'][href]")
    if shortlink is not None:
        match = re.search(r"/node/(\d+)", attr(shortlink, "href") or "")
        if match:
            return int(match.group(1))
    for tag in page.select("[id^='node-']"):
        match = re.fullmatch(r"node-(\d+)", attr(tag, "id") or "")
        if match:
            return int(match.group(1))
    body = page.body
    if body is not None:
        for cls in classes(body):
            match = re.fullmatch(r"page-node-(\d+)", cls)
            if match:
                return int(match.group(1))
    return None


def _canonical_slug(page: BeautifulSoup, url: str) -> str | None:
    link = page.select_one("link[rel~='canonical'][href]")
    href = join_href(url, attr(link, "href")) if link is not None else None
    return slug_from_url(href) if href else None


def _first_item_text(field_tag: Tag | None) -> str | None:
    texts = _link_or_item_texts(field_tag)
    return texts[0] if texts else None


def _link_or_item_texts(field_tag: Tag | None) -> list[str]:
    """Texts of a field's links, or of its items when they are not links."""
    items = field_items(field_tag)
    if items is None:
        return []
    elements = items.select(".field-item") or [items]
    texts: list[str] = []
    for element in elements:
        links = element.select("a")
        texts.extend(text_of(a) for a in links) if links else texts.append(text_of(element))
    return unique([t for t in texts if t], key=lambda t: t)


def _licenses(field_tag: Tag | None, page_url: str) -> list[LicenseRef]:
    """One licence per ``.license-name`` (or per item on plainer markup), linked if linked."""
    items = field_items(field_tag)
    if items is None:
        return []
    refs: list[LicenseRef] = []
    for element in items.select(".license-name") or items.select(".field-item") or [items]:
        link = element.find_parent("a", href=True) or element.find("a", href=True)
        name = text_of(element)
        if name:
            refs.append(LicenseRef(name, join_href(page_url, attr(link, "href")) if link else None))
    return unique(refs, key=lambda r: r.name)


def _description(page: BeautifulSoup) -> str | None:
    encoded = [
        tag
        for tag in page.select("[property~='content:encoded']")
        if tag.find_parent(class_=re.compile(r"^comment")) is None
    ]
    if encoded:
        return block_text(encoded[0])
    return block_text(field_items(ds_field(page, "body")))


def _favorites(field_tag: Tag | None) -> int | None:
    items = field_items(field_tag)
    if items is None:
        return None
    for text in items.find_all(string=True):
        if isinstance(text, Comment) or text.find_parent(class_="flag-wrapper") is not None:
            continue
        match = re.search(r"\d[\d,]*", str(text))
        if match:
            return to_int(match.group(0).replace(",", ""))
    return None


def _previews(field_tag: Tag | None, page_url: str) -> list[FileLink]:
    items = field_items(field_tag)
    if items is None:
        return []
    links: list[FileLink] = []
    for link in items.select("a[href]"):
        url = join_href(page_url, attr(link, "href"))
        if url and is_art_file_url(url):
            links.append(_file_link(url, None, None, None))
    for source in items.select("[src]"):  # previews shown without a link (audio, video)
        url = join_href(page_url, attr(source, "src"))
        if url and is_art_file_url(url):
            links.append(_file_link(url, None, None, None))
    return unique(links, key=lambda f: f.url)


def _files(field_tag: Tag | None, page_url: str) -> list[FileLink]:
    items = field_items(field_tag)
    if items is None:
        return []
    links: list[FileLink] = []
    for link in items.select("a[href]"):
        url = join_href(page_url, attr(link, "href"))
        if not url or not is_art_file_url(url):
            continue
        size = re.search(r"length\s*=\s*(\d+)", attr(link, "type") or "")
        links.append(
            _file_link(
                url,
                text_of(link) or None,
                to_int(size.group(1)) if size else None,
                to_int(attr(link, "data-fid")) or _dlcount_fid(link),
            )
        )
    return unique(links, key=lambda f: f.url)


def _dlcount_fid(link: Tag) -> int | None:
    holder = link.find_parent(class_="file") or link.parent
    counter = holder.select_one("[id^='dlcount-']") if holder is not None else None
    match = re.fullmatch(r"dlcount-(\d+)", attr(counter, "id") or "") if counter else None
    return int(match.group(1)) if match else None


def _file_link(
    url: str, link_text: str | None, declared_size: int | None, fid: int | None
) -> FileLink:
    return FileLink(
        url=url,
        name=file_name_from_url(url),
        link_text=link_text,
        declared_size=declared_size,
        fid=fid,
    )


def _files_unavailable(page: BeautifulSoup) -> bool:
    pattern = re.compile(r"files?\(?s?\)?\s+currently\s+unava(?:i)?lable", re.I)
    return page.find(string=pattern) is not None
