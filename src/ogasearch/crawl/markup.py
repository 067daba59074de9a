"""OpenGameArt's URLs and markup: the listing and content pages turned into dataclasses.

This is the one place that knows how OGA (a Drupal 7 site with Display Suite layouts) writes
its pages. Parsing is defensive by design: a field that is missing or malformed becomes
``None`` or an empty list, never an exception, because one odd page must not stop a crawl of
sixteen thousand. The facts behind each rule are in ``shared/docs/opengameart-site.md``.

URL rules (the prototype's double-encoding bug is the reason for them): hrefs are kept exactly
as given after HTML-unescaping (BeautifulSoup does that) and resolving against the page URL;
names shown to people are the percent-decoded last path segment, decoded once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import parse_qs, unquote, urlencode, urljoin, urlsplit, urlunsplit

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment, PageElement

T = TypeVar("T")

ART_TYPE_IDS = {
    "2D Art": 9,
    "3D Art": 10,
    "Music": 12,
    "Sound Effect": 13,
    "Texture": 14,
    "Concept Art": 7273,
    "Document": 11,
}

ITEMS_PER_PAGE = 144
OGA_HOST = "opengameart.org"


@dataclass(frozen=True)
class ListingEntry:
    """One result of the art search: a content page's slug (decoded), URL and title."""

    slug: str
    url: str
    title: str | None


@dataclass(frozen=True)
class ListingPage:
    """One page of search results; ``total``, ``last_page`` and ``current_page`` when shown.

    Page numbers are 0-based, as in the ``page`` query parameter. Drupal answers a page number
    past the end with the last page, so ``current_page`` tells a crawler it has run out.
    """

    entries: list[ListingEntry]
    total: int | None
    last_page: int | None
    current_page: int | None = None


@dataclass(frozen=True)
class Person:
    """An author, submitter or collaborator: a name and a link (OGA user or external), if any."""

    name: str
    url: str | None


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


# --------------------------------------------------------------------------------------------
# URLs


def listing_url(
    site_root: str,
    page: int,
    items_per_page: int = ITEMS_PER_PAGE,
    art_type_ids: Sequence[int] = (9,),
) -> str:
    """The advanced-search URL for one page (0-based) of art, newest submissions first."""
    params: list[tuple[str, str | int]] = [
        ("keys", ""),
        ("title", ""),
        ("field_art_tags_tid_op", "or"),
        ("field_art_tags_tid", ""),
        ("name", ""),
    ]
    params += [("field_art_type_tid[]", tid) for tid in art_type_ids]
    params += [
        ("sort_by", "created"),
        ("sort_order", "DESC"),
        ("items_per_page", items_per_page),
        ("Collection", ""),
        ("page", page),
    ]
    return f"{site_root.rstrip('/')}/art-search-advanced?{urlencode(params)}"


def file_name_from_url(url: str) -> str:
    """The percent-decoded last path segment of ``url`` (decoded exactly once)."""
    path = urlsplit(url).path
    return unquote(path.rstrip("/").rsplit("/", 1)[-1])


_FILES_PATH = re.compile(r"/sites/[^/]+/files/(?P<rest>.+)$")
_NOT_ART_PREFIXES = ("styles/", "license_images/", "pictures/", "audio_preview/")
_NOT_ART_ANYWHERE = ("forum-attachments/",)


def is_art_file_url(url: str) -> bool:
    """True for a file uploaded as part of a submission (not a thumbnail, avatar or icon)."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return False
    match = _FILES_PATH.search(path)
    if match is None:
        return False
    rest = match.group("rest")
    if rest.endswith("/") or any(rest.startswith(p) for p in _NOT_ART_PREFIXES):
        return False
    return not any(p in rest for p in _NOT_ART_ANYWHERE)


def is_oga_host(host: str | None) -> bool:
    host = (host or "").lower().rstrip(".")
    return host == OGA_HOST or host.endswith("." + OGA_HOST)


def rebase(url: str, site_root: str) -> str:
    """Map a URL on opengameart.org (or a subdomain) onto ``site_root``; leave others alone.

    A local mirror of real OGA markup keeps absolute ``https://opengameart.org/...`` hrefs;
    rebasing sends them to the configured site instead. Path, query and fragment are kept
    byte for byte (never re-encoded).
    """
    try:
        parts = urlsplit(url)
        root = urlsplit(site_root.rstrip("/"))
    except ValueError:
        return url
    if not is_oga_host(parts.hostname):
        return url
    return urlunsplit(
        (root.scheme, root.netloc, root.path + parts.path, parts.query, parts.fragment)
    )


def slug_from_url(url: str) -> str | None:
    """The decoded SLUG of a ``.../content/SLUG`` URL, else None."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    match = re.search(r"/content/([^/?#]+)/?$", path)
    return unquote(match.group(1)) if match else None


# --------------------------------------------------------------------------------------------
# Listing


def parse_listing(html: bytes | str, base_url: str) -> ListingPage:
    """Read the entries, the total count and the last page number of a search results page."""
    soup = _soup(html)
    entries: list[ListingEntry] = []
    seen: set[str] = set()
    links = soup.select(".art-preview-title a[href]") or [
        a for node in soup.select(".view-content .node") for a in node.select("a[href]")
    ]
    for link in links:
        url = _join(base_url, _attr(link, "href"))
        slug = slug_from_url(url) if url else None
        if url is None or not slug or slug in seen:
            continue
        seen.add(slug)
        entries.append(ListingEntry(slug=slug, url=url, title=_text(link) or None))
    return ListingPage(
        entries=entries,
        total=_listing_total(soup),
        last_page=_last_page(soup),
        current_page=_current_page(soup),
    )


def _listing_total(soup: BeautifulSoup) -> int | None:
    header = soup.select_one(".view-header")
    if header is None:
        return None
    match = re.search(r"\bof\s+([\d,.\s]*\d)", _text(header))
    return _to_int(re.sub(r"\D", "", match.group(1))) if match else None


def _pager(soup: BeautifulSoup) -> Tag | None:
    return soup.select_one("ul.pager, .item-list .pager")


def _current_page(soup: BeautifulSoup) -> int | None:
    pager = _pager(soup)
    current = pager.select_one("li.pager-current") if pager is not None else None
    number = _to_int(_text(current)) if current is not None else None
    return number - 1 if number is not None and number >= 1 else None


def _last_page(soup: BeautifulSoup) -> int | None:
    pager = _pager(soup)
    if pager is None:
        return None
    last = pager.select_one("li.pager-last a[href]")
    if last is not None:
        page = _page_param(_attr(last, "href"))
        if page is not None:
            return page
    pages = [_page_param(_attr(a, "href")) for a in pager.select("a[href]")]
    candidates = [p for p in pages if p is not None]
    current = _current_page(soup)
    if current is not None:
        candidates.append(current)
    return max(candidates) if candidates else None


def _page_param(href: str | None) -> int | None:
    if not href:
        return None
    try:
        values = parse_qs(urlsplit(href).query).get("page")
    except ValueError:
        return None
    return _to_int(values[0]) if values else 0


# --------------------------------------------------------------------------------------------
# Content page


def parse_content_page(html: bytes | str, url: str) -> ContentPage:
    """Read a submission page. Fields the page lacks come back as None or empty lists."""
    soup = _soup(html)
    author, submitter = _author_submitter(_field(soup, "author-submitter"), url)
    post_date, post_date_text = _post_date(soup)
    return ContentPage(
        slug=slug_from_url(url) or _canonical_slug(soup, url) or file_name_from_url(url),
        url=url,
        node_id=_node_id(soup),
        title=_title(soup),
        author=author,
        submitter=submitter,
        collaborators=_people(_field(soup, "field-collaborators"), url),
        post_date=post_date,
        post_date_text=post_date_text,
        art_type=_first_item_text(_field(soup, "field-art-type")),
        tags=_link_or_item_texts(_field(soup, "field-art-tags")),
        licenses=_licenses(_field(soup, "field-art-licenses"), url),
        attribution=_block_text(
            _items(_field(soup, "field-copyright-notice"))
            or _items(_field(soup, "field-art-attribution"))
        ),
        description=_description(soup),
        favorites=_favorites(_field(soup, "favorites")),
        previews=_previews(_field(soup, "field-art-preview"), url),
        files=_files(_field(soup, "field-art-files"), url),
        files_unavailable=_files_unavailable(soup),
    )


def _field(soup: BeautifulSoup | Tag, name: str) -> Tag | None:
    """The ``div.field-name-NAME`` of the page's main node (not of a comment or a block)."""
    found = soup.select(f".field-name-{name}")
    for tag in found:
        if tag.find_parent(class_=re.compile(r"^(comment|block-)")) is None:
            return tag
    return found[0] if found else None


def _items(field_tag: Tag | None) -> Tag | None:
    """The ``field-items`` wrapper (skipping the label), or the field itself."""
    if field_tag is None:
        return None
    return field_tag.select_one(".field-items") or field_tag


def _title(soup: BeautifulSoup) -> str | None:
    title_field = _field(soup, "title")
    if title_field is not None:
        heading = title_field.select_one("h1, h2, [property~='dc:title']") or _items(title_field)
        text = _text(heading) if heading is not None else ""
        if text:
            return text
    for tag in soup.select("[property~='dc:title']"):
        text = _attr(tag, "content") or _text(tag)
        if text:
            return text
    if soup.title is not None:
        text = re.sub(r"\s*\|\s*OpenGameArt\.org\s*$", "", _text(soup.title), flags=re.I)
        if text:
            return text
    return None


def _node_id(soup: BeautifulSoup) -> int | None:
    for tag in soup.select("[class*='flag-favorites-']"):
        for cls in _classes(tag):
            match = re.fullmatch(r"flag-favorites-(\d+)", cls)
            if match:
                return int(match.group(1))
    shortlink = soup.select_one("link[rel~='shortlink'][href]")
    if shortlink is not None:
        match = re.search(r"/node/(\d+)", _attr(shortlink, "href") or "")
        if match:
            return int(match.group(1))
    for tag in soup.select("[id^='node-']"):
        match = re.fullmatch(r"node-(\d+)", _attr(tag, "id") or "")
        if match:
            return int(match.group(1))
    body = soup.body
    if body is not None:
        for cls in _classes(body):
            match = re.fullmatch(r"page-node-(\d+)", cls)
            if match:
                return int(match.group(1))
    return None


def _canonical_slug(soup: BeautifulSoup, url: str) -> str | None:
    link = soup.select_one("link[rel~='canonical'][href]")
    href = _join(url, _attr(link, "href")) if link is not None else None
    return slug_from_url(href) if href else None


_SUBMITTED_BY = re.compile(r"\(?\s*submitted\s+by\b", re.I)


def _author_submitter(field_tag: Tag | None, page_url: str) -> tuple[Person | None, Person | None]:
    """Author and submitter; one name shown alone is both (unless it is not an OGA account)."""
    items = _items(field_tag)
    if items is None:
        return None, None
    before: list[PageElement] = []
    after: list[PageElement] = []
    marker_seen = False
    for node in items.descendants:
        if isinstance(node, NavigableString) and not isinstance(node, Comment):
            match = _SUBMITTED_BY.search(str(node))
            if match and not marker_seen:
                marker_seen = True
                head = str(node)[: match.start()]
                tail = str(node)[match.end() :]
                if head.strip():
                    before.append(NavigableString(head))
                if tail.strip():
                    after.append(NavigableString(tail))
                continue
        (after if marker_seen else before).append(node)
    author = _person_in(before, page_url)
    submitter = _person_in(after, page_url) if marker_seen else None
    if not marker_seen and author is not None and _is_user_url(author.url):
        submitter = author
    return author, submitter


def _person_in(nodes: list[PageElement], page_url: str) -> Person | None:
    """The first person in a run of nodes: a ``span.username``, else a link, else plain text."""
    for node in nodes:
        if isinstance(node, Tag) and "username" in _classes(node):
            link = node.find("a", href=True)
            name = _text(node)
            if name:
                return Person(name, _join(page_url, _attr(link, "href")) if link else None)
    for node in nodes:
        if isinstance(node, Tag) and node.name == "a" and node.get("href") is not None:
            name = _text(node)
            if name:
                return Person(name, _join(page_url, _attr(node, "href")))
    text = " ".join(
        str(n) for n in nodes if isinstance(n, NavigableString) and not isinstance(n, Comment)
    )
    name = _squash(text).strip(" ()")
    return Person(name, None) if name else None


def _is_user_url(url: str | None) -> bool:
    if not url:
        return False
    try:
        return re.match(r"^/users/[^/]+", urlsplit(url).path) is not None
    except ValueError:
        return False


def _people(field_tag: Tag | None, page_url: str) -> list[Person]:
    items = _items(field_tag)
    if items is None:
        return []
    people: list[Person] = []
    links = items.select("a[href]")
    if links:
        for link in links:
            name = _text(link)
            if name:
                people.append(Person(name, _join(page_url, _attr(link, "href"))))
    else:
        for item in items.select(".field-item") or [items]:
            name = _text(item)
            if name:
                people.append(Person(name, None))
    return _unique(people, key=lambda p: p.name)


_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_SHOWN_DATE = re.compile(
    r"(?P<month>[A-Za-z]+)\.?\s+(?P<day>\d{1,2}),?\s+(?P<year>\d{4})"
    r"(?:\s*(?:-|,|at)?\s*(?P<hour>\d{1,2}):(?P<minute>\d{2}))?"
)


def _post_date(soup: BeautifulSoup) -> tuple[datetime | None, str | None]:
    """The submission time: the RDF ``content`` timestamp if any, else the shown text (UTC)."""
    field_tag = _field(soup, "post-date")
    shown = _text(_items(field_tag)) if field_tag is not None else ""
    for tag in soup.select("[property~='dc:date'][content], [property~='dc:created'][content]"):
        if tag.find_parent(class_=re.compile(r"^comment")) is not None:
            continue
        when = _parse_iso(_attr(tag, "content"))
        if when is not None:
            return when, shown or None
    return _parse_shown_date(shown), shown or None


def _parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _parse_shown_date(text: str) -> datetime | None:
    """``Thursday, November 6, 2014 - 13:08`` -> aware UTC (the site shows UTC, as far as known)."""
    match = _SHOWN_DATE.search(text)
    if match is None:
        return None
    month = _MONTHS.get(match.group("month").lower())
    if month is None:
        return None
    try:
        return datetime(
            int(match.group("year")),
            month,
            int(match.group("day")),
            int(match.group("hour") or 0),
            int(match.group("minute") or 0),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def _first_item_text(field_tag: Tag | None) -> str | None:
    texts = _link_or_item_texts(field_tag)
    return texts[0] if texts else None


def _link_or_item_texts(field_tag: Tag | None) -> list[str]:
    """Texts of a field's links, or of its items when they are not links."""
    items = _items(field_tag)
    if items is None:
        return []
    elements = items.select(".field-item") or [items]
    texts: list[str] = []
    for element in elements:
        links = element.select("a")
        texts.extend(_text(a) for a in links) if links else texts.append(_text(element))
    return _unique([t for t in texts if t], key=lambda t: t)


def _licenses(field_tag: Tag | None, page_url: str) -> list[LicenseRef]:
    """One licence per ``.license-name`` (or per item on plainer markup), linked if linked."""
    items = _items(field_tag)
    if items is None:
        return []
    refs: list[LicenseRef] = []
    for element in items.select(".license-name") or items.select(".field-item") or [items]:
        link = element.find_parent("a", href=True) or element.find("a", href=True)
        name = _text(element)
        if name:
            refs.append(LicenseRef(name, _join(page_url, _attr(link, "href")) if link else None))
    return _unique(refs, key=lambda r: r.name)


def _description(soup: BeautifulSoup) -> str | None:
    encoded = [
        tag
        for tag in soup.select("[property~='content:encoded']")
        if tag.find_parent(class_=re.compile(r"^comment")) is None
    ]
    if encoded:
        return _block_text(encoded[0])
    return _block_text(_items(_field(soup, "body")))


def _favorites(field_tag: Tag | None) -> int | None:
    items = _items(field_tag)
    if items is None:
        return None
    for text in items.find_all(string=True):
        if isinstance(text, Comment) or text.find_parent(class_="flag-wrapper") is not None:
            continue
        match = re.search(r"\d[\d,]*", str(text))
        if match:
            return _to_int(match.group(0).replace(",", ""))
    return None


def _previews(field_tag: Tag | None, page_url: str) -> list[FileLink]:
    items = _items(field_tag)
    if items is None:
        return []
    links: list[FileLink] = []
    for link in items.select("a[href]"):
        url = _join(page_url, _attr(link, "href"))
        if url and is_art_file_url(url):
            links.append(_file_link(url, None, None, None))
    for source in items.select("[src]"):  # previews shown without a link (audio, video)
        url = _join(page_url, _attr(source, "src"))
        if url and is_art_file_url(url):
            links.append(_file_link(url, None, None, None))
    return _unique(links, key=lambda f: f.url)


def _files(field_tag: Tag | None, page_url: str) -> list[FileLink]:
    items = _items(field_tag)
    if items is None:
        return []
    links: list[FileLink] = []
    for link in items.select("a[href]"):
        url = _join(page_url, _attr(link, "href"))
        if not url or not is_art_file_url(url):
            continue
        size = re.search(r"length\s*=\s*(\d+)", _attr(link, "type") or "")
        links.append(
            _file_link(
                url,
                _text(link) or None,
                _to_int(size.group(1)) if size else None,
                _to_int(_attr(link, "data-fid")) or _dlcount_fid(link),
            )
        )
    return _unique(links, key=lambda f: f.url)


def _dlcount_fid(link: Tag) -> int | None:
    holder = link.find_parent(class_="file") or link.parent
    counter = holder.select_one("[id^='dlcount-']") if holder is not None else None
    match = re.fullmatch(r"dlcount-(\d+)", _attr(counter, "id") or "") if counter else None
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


def _files_unavailable(soup: BeautifulSoup) -> bool:
    pattern = re.compile(r"files?\(?s?\)?\s+currently\s+unava(?:i)?lable", re.I)
    return soup.find(string=pattern) is not None


# --------------------------------------------------------------------------------------------
# Small helpers


def _soup(html: bytes | str) -> BeautifulSoup:
    return BeautifulSoup(html, "lxml")


def _attr(tag: Tag | None, name: str) -> str | None:
    """An attribute as one string (BeautifulSoup gives lists for multi-valued ones)."""
    if tag is None:
        return None
    value = tag.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        return " ".join(value)
    return str(value)


def _classes(tag: Tag) -> list[str]:
    value = tag.get("class")
    if value is None:
        return []
    return value.split() if isinstance(value, str) else list(value)


def _join(base: str, href: str | None) -> str | None:
    """Resolve ``href`` against ``base`` without re-encoding anything; None when unusable."""
    if href is None:
        return None
    href = href.strip()
    if not href or href.startswith(("#", "javascript:", "mailto:", "data:")):
        return None
    try:
        joined = urljoin(base, href)
        urlsplit(joined).port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        return None
    return joined


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\xa0", " ")).strip()


def _text(tag: Tag | None) -> str:
    return _squash(tag.get_text(" ")) if tag is not None else ""


_BLOCK_TAGS = frozenset(
    {"p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote"}
    | {"table", "tr", "section", "article"}
)


def _block_text(tag: Tag | None) -> str | None:
    """Readable text of rich content: paragraphs and ``<br>`` become line breaks."""
    if tag is None:
        return None
    parts: list[str] = []
    _collect_text(tag, parts)
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in "".join(parts).split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text or None


def _collect_text(tag: Tag, parts: list[str]) -> None:
    for node in tag.children:
        if isinstance(node, Comment):
            continue
        if isinstance(node, NavigableString):
            parts.append(re.sub(r"\s+", " ", str(node).replace("\xa0", " ")))
        elif isinstance(node, Tag):
            if node.name in ("script", "style"):
                continue
            if node.name == "br":
                parts.append("\n")
            elif node.name in _BLOCK_TAGS:
                parts.append("\n\n")
                _collect_text(node, parts)
                parts.append("\n\n")
            else:
                _collect_text(node, parts)


def _to_int(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or not value.isascii():
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _unique(items: Iterable[T], key: Callable[[T], Hashable]) -> list[T]:
    seen: set[object] = set()
    out: list[T] = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out
