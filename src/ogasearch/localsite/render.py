"""HTML of the local site: the art listing and content pages, in OGA's Drupal 7 markup.

The markup follows docs/opengameart.md (Display Suite fields, the Views
listing, the stock Drupal pager). Templates live in ``templates/`` and autoescape everything;
the only pre-built markup is the description, escaped here paragraph by paragraph.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from html import escape
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from ogasearch.localsite.manifest import file_url, post_date_text
from ogasearch.localsite.model import (
    ART_TYPES,
    LICENCES,
    FileLink,
    Site,
    SitePage,
    content_type_for,
)

_env = Environment(
    loader=PackageLoader("ogasearch.localsite", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)

FILE_ICONS = {
    "image": "image-x-generic.png",
    "application/zip": "package-x-generic.png",
    "application/x-7z-compressed": "package-x-generic.png",
    "application/x-gzip": "package-x-generic.png",
    "text/plain": "text-plain.png",
}
PAGER_QUANTITY = 9  # Drupal's default number of page links


def shown_size(size: int) -> str:
    """OGA's file size label: 1000-based b / Kb / Mb / Gb."""
    if size < 1000:
        return f"{size} b"
    for unit, scale in (("Kb", 1e3), ("Mb", 1e6), ("Gb", 1e9)):
        if size < scale * 1000 or unit == "Gb":
            return f"{size / scale:.1f} {unit}"
    raise AssertionError("unreachable")


def style_url(base_url: str, style: str, name: str) -> str:
    """A resized derivative (Drupal image style): not an art file for the crawler."""
    return f"{base_url}/sites/default/files/styles/{style}/public/{quote(name, safe='')}"


def _description_html(page: SitePage) -> Markup:
    paragraphs = [p.strip() for p in page.description.split("\n\n") if p.strip()]
    if not paragraphs:
        return Markup("")
    if page.markup == "odd":
        # Unclosed <p> and <strong>, as hand-written descriptions often are.
        *head, last = paragraphs
        words = last.rsplit(" ", 1)
        tail = f"{escape(words[0])} <strong>{escape(words[1])}" if len(words) == 2 else escape(last)
        return Markup("".join(f"<p>{escape(p)}\n" for p in head) + f"<p>{tail}\n")
    return Markup("".join(f"<p>{escape(p)}</p>" for p in paragraphs))


@dataclass(frozen=True)
class _FileView:
    url: str
    text: str
    fid: int
    mime: str
    icon: str
    length: int
    shown_size: str
    downloads: int


def _file_view(site: Site, link: FileLink, base_url: str) -> _FileView:
    stored = site.file(link.name)
    length = len(stored.data) if stored else (link.declared_size or 0)
    mime = content_type_for(link.name)
    icon = FILE_ICONS.get(
        "image" if mime.startswith("image/") else mime, "application-octet-stream.png"
    )
    return _FileView(
        url=file_url(base_url, link.name),
        text=link.text,
        fid=link.fid,
        mime=mime,
        icon=icon,
        length=length,
        shown_size=shown_size(length),
        downloads=link.downloads,
    )


def render_content(site: Site, page: SitePage, base_url: str) -> str:
    odd = page.markup == "odd"
    preview = None
    if page.preview is not None:
        preview = {
            "url": file_url(base_url, page.preview.name),
            "medium": style_url(base_url, "medium", page.preview.name),
        }
    comments = [
        {
            "cid": page.node_id * 10 + n,
            "author": c.author,
            "posted": post_date_text(c.posted),
            "html": Markup(c.html.replace("{base}", base_url)),
            "picture": f"{base_url}/sites/default/files/pictures/{c.picture}"
            if c.picture
            else None,
        }
        for n, c in enumerate(page.comments)
    ]
    return _env.get_template("content.html").render(
        base=base_url,
        page=page,
        q=Markup("'" if odd else '"'),
        ws="\n   " if odd else "",
        br=Markup("<br>") if odd else Markup("<br/>"),
        post_date=post_date_text(page.post_date),
        art_type=ART_TYPES[page.art_type],
        tags=[{"name": t, "query": quote(t, safe="")} for t in page.tags],
        licences=[LICENCES[name] for name in page.licences],
        preview=preview,
        body_html=_description_html(page),
        files=[_file_view(site, link, base_url) for link in page.files],
        comments=comments,
    )


@dataclass(frozen=True)
class ListingQuery:
    """The parts of ``/art-search-advanced?...`` the local site understands."""

    params: tuple[tuple[str, str], ...]  # as received, in order
    page: int = 0
    items_per_page: int = 24
    sort_by: str = "created"
    sort_order: str = "DESC"
    art_types: tuple[int, ...] = ()
    licence_ids: tuple[int, ...] = ()
    keys: str = ""
    title: str = ""
    name: str = ""
    tags: tuple[str, ...] = ()

    @classmethod
    def parse(cls, params: Sequence[tuple[str, str]], max_items: int | None) -> ListingQuery:
        def values(key: str) -> list[str]:
            # PHP array parameters: key[] and key[N] are the same list.
            return [v for k, v in params if k == key or (k.startswith(key + "[") and k[-1] == "]")]

        def first(key: str, default: str = "") -> str:
            found = values(key)
            return found[0] if found else default

        def ints(key: str) -> tuple[int, ...]:
            return tuple(int(v) for v in values(key) if v.strip().isdigit())

        per_page = first("items_per_page", "24")
        items = int(per_page) if per_page.isdigit() and int(per_page) > 0 else 24
        items = min(items, 200)
        if max_items is not None:
            items = min(items, max_items)
        page = first("page", "0")
        order = first("sort_order", "DESC").upper()
        return cls(
            params=tuple(params),
            page=int(page) if page.isdigit() else 0,
            items_per_page=items,
            sort_by=first("sort_by", "created") or "created",
            sort_order=order if order in ("ASC", "DESC") else "DESC",
            art_types=ints("field_art_type_tid"),
            licence_ids=ints("field_art_licenses_tid"),
            keys=first("keys").strip(),
            title=first("title").strip(),
            name=first("name").strip(),
            tags=tuple(t.strip() for t in first("field_art_tags_tid").split(",") if t.strip()),
        )

    def matches(self, page: SitePage) -> bool:
        if self.art_types and page.art_type not in self.art_types:
            return False
        if self.licence_ids and not {LICENCES[n].tid for n in page.licences} & set(
            self.licence_ids
        ):
            return False
        title = page.clean_title.lower()
        if self.keys and not all(word in title for word in self.keys.lower().split()):
            return False
        if self.title and self.title.lower() not in title:
            return False
        if self.name and self.name.lower() != page.submitted_by.name.lower():
            return False
        tags = {t.lower() for t in page.tags}
        return not (self.tags and not any(t.lower() in tags for t in self.tags))

    def pager_href(self, page: int) -> str:
        """Drupal's pager link: the query as received minus ``page``, plus ``page`` when > 0."""
        kept = [(k, v) for k, v in _php_keys(self.params) if k not in ("page", "q")]
        if page > 0:
            kept.append(("page", str(page)))
        query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in kept)
        return "/art-search-advanced" + (f"?{query}" if query else "")


def _php_keys(params: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Parameters as PHP's drupal_http_build_query writes them back: ``a[]`` becomes ``a[0]``.

    Plain keys are rawurlencoded; array keys keep their brackets unencoded, as Drupal does.
    """
    counters: dict[str, int] = {}
    result = []
    for key, value in params:
        if key.endswith("[]"):
            stem = key[:-2]
            index = counters.get(stem, 0)
            counters[stem] = index + 1
            result.append((f"{quote(stem, safe='')}[{index}]", value))
        elif "[" in key and key.endswith("]"):
            stem, _, rest = key.partition("[")
            result.append((f"{quote(stem, safe='')}[{quote(rest[:-1], safe='')}]", value))
        else:
            result.append((quote(key, safe=""), value))
    return result


def _sort_key(query: ListingQuery) -> Callable[[SitePage], tuple[Any, ...]]:
    """created: post date; count: favourites; totalcount: downloads (stands in for views)."""
    if query.sort_by == "count":
        return lambda p: (p.favorites or 0, p.post_date, p.node_id)
    if query.sort_by == "totalcount":
        return lambda p: (sum(f.downloads for f in p.files), p.post_date, p.node_id)
    return lambda p: (p.post_date, p.node_id)


def render_listing(site: Site, query: ListingQuery, base_url: str) -> str:
    matching = [p for p in site.pages() if query.matches(p)]
    matching.sort(key=_sort_key(query), reverse=query.sort_order == "DESC")
    total = len(matching)
    pages = max(1, math.ceil(total / query.items_per_page))
    current = min(query.page, pages - 1)  # Views clamps a page past the end to the last page
    start = current * query.items_per_page
    shown = matching[start : start + query.items_per_page]
    rows = [
        {
            "slug": p.slug,
            "title": p.clean_title,
            "thumb": style_url(base_url, "thumbnail", p.preview.name) if p.preview else None,
        }
        for p in shown
    ]
    dom_id = hashlib.sha256(repr(query.params).encode()).hexdigest()[:32]
    return _env.get_template("listing.html").render(
        base=base_url,
        rows=rows,
        first=start + 1,
        last=start + len(shown),
        total=total,
        pager=_pager(query, current, pages),
        keys=query.keys,
        dom_id=dom_id,
    )


def _pager(query: ListingQuery, current: int, total_pages: int) -> list[dict[str, str | None]]:
    """Drupal 7 theme_pager: first/previous, up to 9 numbered links with ellipses, next/last."""
    if total_pages <= 1:
        return []
    middle = math.ceil(PAGER_QUANTITY / 2)
    one_based = current + 1
    low = one_based - middle + 1
    high = one_based + PAGER_QUANTITY - middle
    if high > total_pages:
        low += total_pages - high
        high = total_pages
    if low <= 0:
        high += 1 - low
        low = 1
    items: list[dict[str, str | None]] = []

    def link(css: str, page: int, title: str, text: str) -> None:
        items.append({"css": css, "href": query.pager_href(page), "title": title, "text": text})

    if current > 0:
        link("pager-first", 0, "Go to first page", "« first")
        link("pager-previous", current - 1, "Go to previous page", "‹ previous")
    if low > 1:
        items.append({"css": "pager-ellipsis", "href": None, "title": None, "text": "…"})
    for number in range(low, high + 1):
        if number == one_based:
            items.append({"css": "pager-current", "href": None, "title": None, "text": str(number)})
        else:
            link("pager-item", number - 1, f"Go to page {number}", str(number))
    if high < total_pages:
        items.append({"css": "pager-ellipsis", "href": None, "title": None, "text": "…"})
    if current < total_pages - 1:
        link("pager-next", current + 1, "Go to next page", "next ›")
        link("pager-last", total_pages - 1, "Go to last page", "last »")
    items[0]["css"] = f"{items[0]['css']} first"
    items[-1]["css"] = f"{items[-1]['css']} last"
    return items


def render_simple(title: str, message: str, base_url: str) -> str:
    """Drupal-looking page for the front page, 404s and error statuses."""
    return _env.get_template("simple.html").render(base=base_url, title=title, message=message)


def robots_txt(crawl_delay: float | None) -> str:
    """OGA's robots.txt: Drupal 7's stock rules, Crawl-delay only when configured."""
    delay = "" if crawl_delay is None else f"Crawl-delay: {crawl_delay:g}\n"
    return _ROBOTS.format(crawl_delay=delay)


_ROBOTS = """#
# robots.txt
#
# This file is to prevent the crawling and indexing of certain parts
# of your site by web crawlers and spiders run by sites like Yahoo!
# and Google. By telling these "robots" where not to go on your site,
# you save bandwidth and server resources.
#
# For more information about the robots.txt standard, see:
# http://www.robotstxt.org/robotstxt.html

User-agent: *
{crawl_delay}# CSS, JS, Images
Allow: /misc/*.css$
Allow: /misc/*.css?
Allow: /misc/*.js$
Allow: /misc/*.js?
Allow: /misc/*.gif
Allow: /misc/*.jpg
Allow: /misc/*.jpeg
Allow: /misc/*.png
Allow: /modules/*.css$
Allow: /modules/*.css?
Allow: /modules/*.js$
Allow: /modules/*.js?
Allow: /modules/*.gif
Allow: /modules/*.jpg
Allow: /modules/*.jpeg
Allow: /modules/*.png
# Directories
Disallow: /includes/
Disallow: /misc/
Disallow: /modules/
Disallow: /profiles/
Disallow: /scripts/
Disallow: /themes/
# Files
Disallow: /CHANGELOG.txt
Disallow: /cron.php
Disallow: /INSTALL.mysql.txt
Disallow: /INSTALL.pgsql.txt
Disallow: /INSTALL.sqlite.txt
Disallow: /install.php
Disallow: /INSTALL.txt
Disallow: /LICENSE.txt
Disallow: /MAINTAINERS.txt
Disallow: /update.php
Disallow: /UPGRADE.txt
Disallow: /xmlrpc.php
# Paths (clean URLs)
Disallow: /admin/
Disallow: /comment/reply/
Disallow: /filter/tips/
Disallow: /node/add/
Disallow: /search/
Disallow: /user/register/
Disallow: /user/password/
Disallow: /user/login/
Disallow: /user/logout/
# Paths (no clean URLs)
Disallow: /?q=admin/
Disallow: /?q=comment/reply/
Disallow: /?q=filter/tips/
Disallow: /?q=node/add/
Disallow: /?q=search/
Disallow: /?q=user/password/
Disallow: /?q=user/register/
Disallow: /?q=user/login/
Disallow: /?q=user/logout/
"""


def http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)
