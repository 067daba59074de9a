"""People on a content page: the author, the submitter and the collaborators.

OGA shows one ``span.username`` when the author submitted the work, else the author (a user,
an external link or plain text) followed by "(Submitted by USER)". See ``docs/opengameart.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from bs4 import NavigableString, Tag
from bs4.element import Comment, PageElement

from ogasearch.crawl.html import attr, classes, field_items, join_href, squash, text_of, unique


@dataclass(frozen=True)
class Person:
    """An author, submitter or collaborator: a name and a link (OGA user or external), if any."""

    name: str
    url: str | None


_SUBMITTED_BY = re.compile(r"\(?\s*submitted\s+by\b", re.I)


def author_submitter(field_tag: Tag | None, page_url: str) -> tuple[Person | None, Person | None]:
    """Author and submitter; one name shown alone is both (unless it is not an OGA account)."""
    items = field_items(field_tag)
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


def collaborators(field_tag: Tag | None, page_url: str) -> list[Person]:
    """The people of a collaborators field: its links, or its items' texts when unlinked."""
    items = field_items(field_tag)
    if items is None:
        return []
    people: list[Person] = []
    links = items.select("a[href]")
    if links:
        for link in links:
            name = text_of(link)
            if name:
                people.append(Person(name, join_href(page_url, attr(link, "href"))))
    else:
        for item in items.select(".field-item") or [items]:
            name = text_of(item)
            if name:
                people.append(Person(name, None))
    return unique(people, key=lambda p: p.name)


def _person_in(nodes: list[PageElement], page_url: str) -> Person | None:
    """The first person in a run of nodes: a ``span.username``, else a link, else plain text."""
    for node in nodes:
        if isinstance(node, Tag) and "username" in classes(node):
            link = node.find("a", href=True)
            name = text_of(node)
            if name:
                return Person(name, join_href(page_url, attr(link, "href")) if link else None)
    for node in nodes:
        if isinstance(node, Tag) and node.name == "a" and node.get("href") is not None:
            name = text_of(node)
            if name:
                return Person(name, join_href(page_url, attr(node, "href")))
    text = " ".join(
        str(n) for n in nodes if isinstance(n, NavigableString) and not isinstance(n, Comment)
    )
    name = squash(text).strip(" ()")
    return Person(name, None) if name else None


def _is_user_url(url: str | None) -> bool:
    if not url:
        return False
    try:
        return re.match(r"^/users/[^/]+", urlsplit(url).path) is not None
    except ValueError:
        return False
