"""Small helpers for reading OGA's HTML: soup, attributes, text, Display Suite fields.

Shared by the listing and content-page parsers. They never raise on odd markup: a missing
tag, attribute or number comes back as ``None`` (or empty), because one odd page must not stop
a crawl of sixteen thousand.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment

T = TypeVar("T")


def soup(html: bytes | str) -> BeautifulSoup:
    """Parse a page with lxml (tolerant of real-world markup)."""
    return BeautifulSoup(html, "lxml")


def ds_field(page: BeautifulSoup | Tag, name: str) -> Tag | None:
    """The ``div.field-name-NAME`` of the page's main node (not of a comment or a block)."""
    found = page.select(f".field-name-{name}")
    for tag in found:
        if tag.find_parent(class_=re.compile(r"^(comment|block-)")) is None:
            return tag
    return found[0] if found else None


def field_items(field_tag: Tag | None) -> Tag | None:
    """The ``field-items`` wrapper (skipping the label), or the field itself."""
    if field_tag is None:
        return None
    return field_tag.select_one(".field-items") or field_tag


def attr(tag: Tag | None, name: str) -> str | None:
    """An attribute as one string (BeautifulSoup gives lists for multi-valued ones)."""
    if tag is None:
        return None
    value = tag.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        return " ".join(value)
    return str(value)


def classes(tag: Tag) -> list[str]:
    """The tag's CSS classes."""
    value = tag.get("class")
    if value is None:
        return []
    return value.split() if isinstance(value, str) else list(value)


def join_href(base: str, href: str | None) -> str | None:
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


def squash(text: str) -> str:
    """Whitespace (non-breaking spaces included) collapsed to single spaces, trimmed."""
    return re.sub(r"\s+", " ", text.replace("\xa0", " ")).strip()


def text_of(tag: Tag | None) -> str:
    """A tag's text on one line ("" for no tag)."""
    return squash(tag.get_text(" ")) if tag is not None else ""


_BLOCK_TAGS = frozenset(
    {"p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote"}
    | {"table", "tr", "section", "article"}
)


def block_text(tag: Tag | None) -> str | None:
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


def to_int(value: str | None) -> int | None:
    """A whole number written in ASCII digits (surrounding space allowed), else None."""
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or not value.isascii():
        return None
    try:
        return int(value)
    except ValueError:
        return None


def unique(items: Iterable[T], key: Callable[[T], Hashable]) -> list[T]:
    """``items`` in order, keeping the first of each ``key``."""
    seen: set[object] = set()
    out: list[T] = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out
