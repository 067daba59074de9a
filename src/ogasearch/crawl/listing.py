"""The art listing (``/art-search-advanced``): one page of results -> ``ListingPage``.

A Drupal Views page: entries under ``.art-preview-title`` (or any node link in
``.view-content``), "Displaying 1 - 144 of N" in ``.view-header`` and the stock Drupal pager.
See ``docs/opengameart.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from bs4 import BeautifulSoup, Tag

from ogasearch.crawl.html import attr, join_href, soup, text_of, to_int
from ogasearch.crawl.urls import slug_from_url


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


def parse_listing(html: bytes | str, base_url: str) -> ListingPage:
    """Read the entries, the total count and the last page number of a search results page."""
    page = soup(html)
    entries: list[ListingEntry] = []
    seen: set[str] = set()
    links = page.select(".art-preview-title a[href]") or [
        a for node in page.select(".view-content .node") for a in node.select("a[href]")
    ]
    for link in links:
        url = join_href(base_url, attr(link, "href"))
        slug = slug_from_url(url) if url else None
        if url is None or not slug or slug in seen:
            continue
        seen.add(slug)
        entries.append(ListingEntry(slug=slug, url=url, title=text_of(link) or None))
    return ListingPage(
        entries=entries,
        total=_listing_total(page),
        last_page=_last_page(page),
        current_page=_current_page(page),
    )


def _listing_total(page: BeautifulSoup) -> int | None:
    header = page.select_one(".view-header")
    if header is None:
        return None
    match = re.search(r"\bof\s+([\d,.\s]*\d)", text_of(header))
    return to_int(re.sub(r"\D", "", match.group(1))) if match else None


def _pager(page: BeautifulSoup) -> Tag | None:
    return page.select_one("ul.pager, .item-list .pager")


def _current_page(page: BeautifulSoup) -> int | None:
    pager = _pager(page)
    current = pager.select_one("li.pager-current") if pager is not None else None
    number = to_int(text_of(current)) if current is not None else None
    return number - 1 if number is not None and number >= 1 else None


def _last_page(page: BeautifulSoup) -> int | None:
    pager = _pager(page)
    if pager is None:
        return None
    last = pager.select_one("li.pager-last a[href]")
    if last is not None:
        number = _page_param(attr(last, "href"))
        if number is not None:
            return number
    numbers = [_page_param(attr(a, "href")) for a in pager.select("a[href]")]
    candidates = [n for n in numbers if n is not None]
    current = _current_page(page)
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
    return to_int(values[0]) if values else 0
