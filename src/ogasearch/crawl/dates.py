"""A content page's submission time: the RDF timestamp, else the date the page shows.

The shown form is ``Thursday, November 6, 2014 - 13:08``; the site's timezone is not stated,
so shown dates are taken as UTC. See ``docs/opengameart.md``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bs4 import BeautifulSoup

from ogasearch.crawl.html import attr, ds_field, field_items, text_of

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


def post_date(page: BeautifulSoup) -> tuple[datetime | None, str | None]:
    """The submission time (aware, UTC) and the text shown for it, each None when absent."""
    field_tag = ds_field(page, "post-date")
    shown = text_of(field_items(field_tag)) if field_tag is not None else ""
    for tag in page.select("[property~='dc:date'][content], [property~='dc:created'][content]"):
        if tag.find_parent(class_=re.compile(r"^comment")) is not None:
            continue
        when = _parse_iso(attr(tag, "content"))
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
