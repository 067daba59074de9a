"""OpenGameArt's URL rules: the listing URL, content pages, art files, names and rebasing.

Facts behind the rules are in ``docs/opengameart.md``. The prototype's double-encoding bug is
the reason for the name rules: hrefs are kept exactly as given after HTML-unescaping
(BeautifulSoup does that) and resolving against the page URL; names shown to people are the
percent-decoded last path segment, decoded once. Nothing here re-encodes a path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

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


def slug_from_url(url: str) -> str | None:
    """The decoded SLUG of a ``.../content/SLUG`` URL, else None."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    match = re.search(r"/content/([^/?#]+)/?$", path)
    return unquote(match.group(1)) if match else None


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


_DOWNLOAD_COUNTER = re.compile(r"/file/[^/]+/dlcounter/?$")


def is_download_counter(path: str) -> bool:
    """True for the path of the site's download counter (``/file/FID/dlcounter``).

    Requesting it would count a download that no person made, so it is never requested.
    """
    return _DOWNLOAD_COUNTER.search(path) is not None


def is_oga_host(host: str | None) -> bool:
    """True for opengameart.org and its subdomains (any case, trailing dot allowed)."""
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


def on_site(url: str, site_root: str) -> str:
    """A stored page URL on today's site root (a local site may have moved to another port)."""
    rebased = rebase(url, site_root)
    parts, root = urlsplit(rebased), urlsplit(site_root)
    if parts.netloc == root.netloc:
        return rebased
    return urlunsplit((root.scheme, root.netloc, parts.path, parts.query, ""))
