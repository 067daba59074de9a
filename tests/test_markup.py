"""OGA markup parsing: realistic pages (as the site writes them), odd variants, and fuzzing.

The page builders here write markup the way opengameart.org does (Drupal 7 + Display Suite,
see docs/opengameart.md); test_crawler.py serves them over loopback.
"""

from __future__ import annotations

import html as html_lib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ogasearch.crawl.content import ContentPage, FileLink, LicenseRef, parse_content_page
from ogasearch.crawl.listing import ListingPage, parse_listing
from ogasearch.crawl.people import Person
from ogasearch.crawl.urls import file_name_from_url, is_art_file_url, listing_url, rebase

OGA = "https://opengameart.org"
FILES = f"{OGA}/sites/default/files"
LICENSE_URLS = {
    "CC0": "http://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY 3.0": "http://creativecommons.org/licenses/by/3.0/",
    "CC-BY-SA 3.0": "http://creativecommons.org/licenses/by-sa/3.0/",
    "GPL 3.0": "http://www.gnu.org/licenses/gpl-3.0.html",
    "OGA-BY 3.0": "https://static.opengameart.org/OGA-BY-3.0.txt",
}


# --------------------------------------------------------------------------------------------
# Page builders (also used by test_crawler.py)


def listing_html(
    entries: Sequence[tuple[str, str]],
    *,
    page: int,
    last_page: int,
    total: int,
    per_page: int = 144,
    thumbs_host: str = OGA,
) -> str:
    """A search results page: ``entries`` are (href-encoded slug, title)."""
    rows = []
    for slug, title in entries:
        rows.append(
            '<div class="ds-1col node node-art view-mode-art_preview clearfix ">\n'
            '  <div class="field field-name-title field-type-ds field-label-hidden">'
            '<div class="field-items"><div class="field-item even">'
            f'<span class="art-preview-title"><a href="/content/{slug}">'
            f"{html_lib.escape(title)}</a></span></div></div></div>\n"
            '  <div class="field field-name-field-art-preview field-type-file '
            'field-label-hidden"><div class="field-items"><div class="field-item even">'
            f'<a href="/content/{slug}"><img src=\'{thumbs_host}/sites/default/files/styles/'
            f"thumbnail/public/{slug}.png' alt='Preview'></a></div></div></div>\n"
            "</div>"
        )
    first = page * per_page + 1
    shown_last = min(total, (page + 1) * per_page)
    return (
        "<!DOCTYPE html><html><head><title>Art Search | OpenGameArt.org</title></head>"
        '<body class="html not-front page-art-search-advanced">'
        '<div class="view view-art view-id-art view-display-id-search_art_advanced">'
        f'<div class="view-header">Displaying {first} - {shown_last} of {total:,}</div>'
        '<div class="view-content"><div class="art-previews-inline">'
        + "\n".join(rows)
        + "</div></div>"
        + _pager(page, last_page)
        + "</div></body></html>"
    )


def _pager(page: int, last_page: int) -> str:
    if last_page <= 0:
        return ""

    def href(n: int) -> str:
        return html_lib.escape(
            "/art-search-advanced?keys=&field_art_type_tid%5B%5D=9&sort_by=created"
            f"&sort_order=DESC&items_per_page=144&page={n}"
        )

    items = []
    if page > 0:
        items.append(f'<li class="pager-first first"><a href="{href(0)}">« first</a></li>')
        items.append(f'<li class="pager-previous"><a href="{href(page - 1)}">‹ previous</a></li>')
    for n in range(max(0, page - 4), min(last_page, page + 4) + 1):
        if n == page:
            items.append(f'<li class="pager-current">{n + 1}</li>')
        else:
            items.append(f'<li class="pager-item"><a href="{href(n)}">{n + 1}</a></li>')
    if page < last_page:
        items.append(f'<li class="pager-next"><a href="{href(page + 1)}">next ›</a></li>')
        items.append(
            f'<li class="pager-last last"><a title="Go to last page" href="{href(last_page)}">'
            "last »</a></li>"
        )
    return '<h2 class="element-invisible">Pages</h2><div class="item-list"><ul class="pager">' + (
        "".join(items) + "</ul></div>"
    )


@dataclass
class FileSpec:
    """A file as the File(s) field shows it; ``href`` is the encoded path under files/."""

    href: str
    text: str
    length: int | None = 1234
    fid: int | None = None
    mime: str = "application/zip"


@dataclass
class PageSpec:
    title: str = "Market Booth"
    node_id: int = 31347
    author: tuple[str, str | None] | None = ("Jane", "/users/jane")
    submitter: tuple[str, str] | None = None  # shown as "(Submitted by ...)"
    collaborators: list[tuple[str, str]] = field(default_factory=list)
    post_date: str = "Thursday, November 6, 2014 - 13:08"
    art_type: str = "2D Art"
    tags: list[str] = field(default_factory=lambda: ["Market Booth", "pixel art"])
    licenses: list[str] = field(default_factory=lambda: ["CC-BY-SA 3.0", "GPL 3.0"])
    favorites: int = 12
    previews: list[str] = field(default_factory=lambda: ["booth%20preview.png"])
    files: list[FileSpec] = field(
        default_factory=lambda: [FileSpec("booth%20pack.zip", "booth pack.zip", 14100000, 123)]
    )
    description: str = (
        "<p>A booth for <a href='/content/markets'>markets</a>.</p><p>Two<br/>lines</p>"
    )
    attribution: str | None = "Credit &quot;Jane&quot; and link here."
    attribution_field: str = "field-copyright-notice"
    unavailable: bool = False
    files_host: str = OGA


def _field(name: str, ftype: str, label: str | None, items: Sequence[str]) -> str:
    label_class = "field-label-above" if label else "field-label-hidden"
    label_html = f'<div class="field-label">{label}:&nbsp;</div>' if label else ""
    parity = ("even", "odd")
    body = "".join(
        f'<div class="field-item {parity[i % 2]}">{item}</div>' for i, item in enumerate(items)
    )
    return (
        f'<div class="field field-name-{name} field-type-{ftype} {label_class}">{label_html}'
        f'<div class="field-items">{body}</div></div>\n'
    )


def content_html(spec: PageSpec) -> str:
    """A /content/SLUG page written the way OGA writes one."""
    files_root = f"{spec.files_host}/sites/default/files"
    left = ""
    if spec.author is not None:
        name, href = spec.author
        who = f'<a href="{href}">{name}</a>' if href else name
        author_html = f"<span class='username'>{who}</span>"
        if spec.submitter is not None:
            author_html += (
                f'<br/>(Submitted by <strong><a href="{spec.submitter[1]}">{spec.submitter[0]}'
                "</a></strong>)"
            )
        left += _field("author-submitter", "ds", None, [author_html])
    left += _field("post-date", "ds", None, [spec.post_date])
    if spec.collaborators:
        left += _field(
            "field-collaborators",
            "user-reference",
            "Collaborators",
            [f'<a href="{href}">{name}</a>' for name, href in spec.collaborators],
        )
    left += _field(
        "field-art-type",
        "taxonomy-term-reference",
        "Art Type",
        [
            '<a href="/art-search-advanced?field_art_type_tid%5B%5D=9" typeof="skos:Concept" '
            f'property="rdfs:label skos:prefLabel" datatype="">{spec.art_type}</a>'
        ],
    )
    left += _field(
        "field-art-tags",
        "taxonomy-term-reference",
        "Tags",
        [
            f'<a href="/art-search-advanced?field_art_tags_tid={t.replace(" ", "%20")}">{t}</a>'
            for t in spec.tags
        ],
    )
    left += _field(
        "field-art-licenses",
        "taxonomy-term-reference",
        "License(s)",
        [
            f"<div class='license-icon'><a href='{LICENSE_URLS.get(name, 'http://x/')}' "
            f"target='_blank'><img src='{OGA}/sites/default/files/license_images/x.png' "
            f"alt='' title=''><div class='license-name'>{name}</div></a></div>"
            for name in spec.licenses
        ],
    )
    left += _field(
        "collect",
        "ds",
        "Collections",
        [
            "<div class='collect-container'><ul><li><a href=\"/content/3d-packs\">3D - Packs"
            "</a></li></ul></div>"
        ],
    )
    left += _field(
        "favorites",
        "ds",
        "Favorites",
        [
            f'{spec.favorites}<span class="flag-wrapper flag-favorites '
            f'flag-favorites-{spec.node_id}"><a href="/flag/flag/favorites/{spec.node_id}'
            '?destination=node/1&amp;token=abc" class="flag flag-action">Favorite 7</a></span>'
        ],
    )
    right = ""
    if spec.previews:
        right += _field(
            "field-art-preview",
            "file",
            None,
            [
                f'<a href="{files_root}/{p}" class="preview-lightbox"><img '
                f"src='{files_root}/styles/medium/public/{p}' alt='Preview'></a>"
                for p in spec.previews
            ],
        )
    right += (
        '<div class="field field-name-body field-type-text-with-summary field-label-hidden">'
        '<div class="field-items"><div class="field-item even" property="content:encoded">'
        f"{spec.description}</div></div></div>\n"
    )
    if spec.attribution is not None:
        right += _field(
            spec.attribution_field, "text-long", "Copyright/Attribution Notice", [spec.attribution]
        )
    if spec.unavailable:
        right += (
            '<div class="field field-name-field-art-files"><div class="field-items">'
            "<div class='field-item even'>File(s) currently unavalable due to potential "
            "licensing issues</div></div></div>"
        )
    elif spec.files:
        items = []
        for f in spec.files:
            mime = f"{f.mime}; length={f.length}" if f.length is not None else f.mime
            fid = f' data-fid="{f.fid}"' if f.fid is not None else ""
            counter = (
                f'<span class="dlcount">[<span class="dlcount-number" id="dlcount-{f.fid}">42'
                "</span> download(s)]</span>"
                if f.fid is not None
                else ""
            )
            items.append(
                '<span class="file"><img class="file-icon" alt="" title="application/zip" '
                'src="/modules/file/icons/package-x-generic.png" /> '
                f'<a href="{files_root}/{f.href}" type="{mime}"{fid} target="_blank" '
                f'download="{f.text}">{html_lib.escape(f.text)}</a> 14.1 Mb {counter}</span>'
            )
        right += _field("field-art-files", "file", "File(s)", items)
    comments = (
        '<div id="comments" class="comment-wrapper"><div class="comment clearfix">'
        '<div class="field field-name-comment-body"><div class="field-items"><div '
        'class="field-item even" property="content:encoded"><p>Nice work!</p></div></div></div>'
        '<span property="dc:date dc:created" content="2020-01-01T00:00:00+00:00"></span>'
        "</div></div>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en" dir="ltr"><head>'
        '<meta http-equiv="Content-Type" content="text/html; charset=utf-8" />'
        f'<link rel="shortlink" href="/node/{spec.node_id}" />'
        f"<title>{html_lib.escape(spec.title)} | OpenGameArt.org</title>"
        "<script>var x = '<div class=\"field-name-title\">nope</div>';</script></head>"
        f'<body class="html not-front page-node page-node-{spec.node_id} node-type-art">'
        '<div id="page"><div id="main">'
        '<div class="ds-2col-stacked-fluid node node-art view-mode-full clearfix">'
        '<div class="group-header">'
        '<div class="field field-name-title field-type-ds field-label-hidden">'
        '<div class="field-items"><div class="field-item even" property="dc:title">'
        f"<h2>{html_lib.escape(spec.title)}</h2></div></div></div></div>"
        f'<div class="group-left left-column">{left}</div>'
        f'<div class="group-right right-column">{right}</div>'
        f'<div class="group-footer">{comments}</div>'
        "</div></div></div></body></html>"
    )


# --------------------------------------------------------------------------------------------
# URLs


def test_listing_url_is_the_sites_advanced_search() -> None:
    url = listing_url("https://opengameart.org/", 3)
    assert url == (
        "https://opengameart.org/art-search-advanced?keys=&title=&field_art_tags_tid_op=or"
        "&field_art_tags_tid=&name=&field_art_type_tid%5B%5D=9&sort_by=created&sort_order=DESC"
        "&items_per_page=144&Collection=&page=3"
    )
    query = parse_qs(urlsplit(listing_url("http://h", 0, 48, (9, 14))).query)
    assert query["field_art_type_tid[]"] == ["9", "14"]
    assert query["items_per_page"] == ["48"]
    assert query["page"] == ["0"]


@pytest.mark.parametrize(
    ("url", "name"),
    [
        (f"{FILES}/booth%20pack.zip", "booth pack.zip"),
        (f"{FILES}/a%21b%27c%23d.png", "a!b'c#d.png"),
        (f"{FILES}/caf%C3%A9.png", "café.png"),
        (f"{FILES}/already%2520encoded.png", "already%20encoded.png"),  # decoded once, not twice
        (f"{FILES}/plain.png?itok=abc", "plain.png"),
        (f"{FILES}/CREDITS-furniture.txt_.zip", "CREDITS-furniture.txt_.zip"),
    ],
)
def test_file_name_is_decoded_exactly_once(url: str, name: str) -> None:
    assert file_name_from_url(url) == name


@pytest.mark.parametrize(
    ("url", "art"),
    [
        (f"{FILES}/sheet.png", True),
        (f"{FILES}/sub/dir/sheet.png", True),
        ("/sites/default/files/relative.zip", True),
        (f"{FILES}/styles/medium/public/sheet.png", False),
        (f"{FILES}/styles/thumbnail/public/sheet.png", False),
        (f"{FILES}/license_images/cc-by-sa.png", False),
        (f"{FILES}/pictures/picture-1-1.png", False),
        (f"{FILES}/audio_preview/song.ogg.mp3", False),
        (f"{FILES}/forum-attachments/x.png", False),
        (f"{OGA}/content/sheet", False),
        (f"{OGA}/file/123/dlcounter", False),
        ("https://example.com/elsewhere.png", False),
    ],
)
def test_is_art_file_url(url: str, art: bool) -> None:
    assert is_art_file_url(url) is art


@pytest.mark.parametrize(
    ("url", "root", "expected"),
    [
        (f"{FILES}/a%20b.png", "http://127.0.0.1:8123", "http://127.0.0.1:8123/sites/default/files/a%20b.png"),
        ("http://lpc.opengameart.org/content/x?a=1#f", "http://127.0.0.1:1/oga/", "http://127.0.0.1:1/oga/content/x?a=1#f"),
        ("https://opengameart.org/content/x", OGA, "https://opengameart.org/content/x"),
        ("https://lpc.opengameart.org/content/x", OGA, "https://opengameart.org/content/x"),
        ("https://example.com/a.png", "http://127.0.0.1:8123", "https://example.com/a.png"),
        ("https://notopengameart.org/a.png", "http://127.0.0.1:8123", "https://notopengameart.org/a.png"),
        ("http://127.0.0.1:8123/content/y", "http://127.0.0.1:8123", "http://127.0.0.1:8123/content/y"),
    ],
)  # fmt: skip
def test_rebase_maps_only_opengameart_hosts(url: str, root: str, expected: str) -> None:
    assert rebase(url, root) == expected


# --------------------------------------------------------------------------------------------
# Listing


def test_listing_entries_total_and_pager() -> None:
    entries = [("market-booth", "Market & Booth"), ("caf%C3%A9-tiles", "Café tiles")]
    page = parse_listing(
        listing_html(entries, page=2, last_page=111, total=16012), listing_url(OGA, 2)
    )
    assert page.entries[0].slug == "market-booth"
    assert page.entries[0].url == f"{OGA}/content/market-booth"
    assert page.entries[0].title == "Market & Booth"
    assert page.entries[1].slug == "café-tiles"
    assert page.entries[1].url == f"{OGA}/content/caf%C3%A9-tiles"  # href kept as given
    assert page.total == 16012
    assert page.last_page == 111
    assert page.current_page == 2


def test_listing_last_page_without_pager_last_link() -> None:
    html = listing_html([("a", "A")], page=5, last_page=5, total=5 * 144 + 1)
    page = parse_listing(html, listing_url(OGA, 5))
    assert "pager-last" not in html
    assert page.last_page == 5
    assert page.current_page == 5


def test_listing_single_page_has_no_pager() -> None:
    page = parse_listing(listing_html([("a", "A")], page=0, last_page=0, total=1), OGA)
    assert page == ListingPage(entries=page.entries, total=1, last_page=None, current_page=None)
    assert [e.slug for e in page.entries] == ["a"]


def test_listing_empty_and_broken() -> None:
    assert parse_listing(b"", OGA) == ListingPage([], None, None)
    assert parse_listing("<div class='view-header'>Displaying 0 of </div>", OGA).total is None
    html = "<div class=view-content><div class='node'><a href='/content/x%20y'>t</a></div></div>"
    assert [e.slug for e in parse_listing(html, OGA).entries] == ["x y"]


# --------------------------------------------------------------------------------------------
# Content page


def test_content_page_every_field() -> None:
    url = f"{OGA}/content/market-booth"
    page = parse_content_page(content_html(PageSpec()).encode(), url)
    assert page == ContentPage(
        slug="market-booth",
        url=url,
        node_id=31347,
        title="Market Booth",
        author=Person("Jane", f"{OGA}/users/jane"),
        submitter=Person("Jane", f"{OGA}/users/jane"),
        collaborators=[],
        post_date=datetime(2014, 11, 6, 13, 8, tzinfo=UTC),
        post_date_text="Thursday, November 6, 2014 - 13:08",
        art_type="2D Art",
        tags=["Market Booth", "pixel art"],
        licenses=[
            LicenseRef("CC-BY-SA 3.0", LICENSE_URLS["CC-BY-SA 3.0"]),
            LicenseRef("GPL 3.0", LICENSE_URLS["GPL 3.0"]),
        ],
        attribution='Credit "Jane" and link here.',
        description="A booth for markets.\n\nTwo\nlines",
        favorites=12,
        previews=[FileLink(f"{FILES}/booth%20preview.png", "booth preview.png", None, None, None)],
        files=[
            FileLink(f"{FILES}/booth%20pack.zip", "booth pack.zip", "booth pack.zip", 14100000, 123)
        ],
        files_unavailable=False,
    )


def test_author_differs_from_submitter() -> None:
    spec = PageSpec(
        author=("Some Artist", "http://example.com/artist"),
        submitter=("uploader", "/users/uploader"),
        collaborators=[("Bob", "/users/bob"), ("Ann", "/users/ann")],
    )
    page = parse_content_page(content_html(spec), f"{OGA}/content/x")
    assert page.author == Person("Some Artist", "http://example.com/artist")
    assert page.submitter == Person("uploader", f"{OGA}/users/uploader")
    assert page.collaborators == [
        Person("Bob", f"{OGA}/users/bob"),
        Person("Ann", f"{OGA}/users/ann"),
    ]


def test_author_as_plain_text() -> None:
    spec = PageSpec(author=("Daniel Cook", None), submitter=("Lamoot", "/users/lamoot"))
    page = parse_content_page(content_html(spec), f"{OGA}/content/x")
    assert page.author == Person("Daniel Cook", None)
    assert page.submitter == Person("Lamoot", f"{OGA}/users/lamoot")
    alone = parse_content_page(content_html(PageSpec(author=("Daniel Cook", None))), OGA)
    assert alone.author == Person("Daniel Cook", None)
    assert alone.submitter is None  # a name that is not an account is not the submitter


def test_submitted_by_in_plain_markup() -> None:
    html = (
        '<div class="field field-name-author-submitter">Artist Person (Submitted by '
        '<a href="/users/up">up</a>)</div>'
    )
    page = parse_content_page(html, f"{OGA}/content/x")
    assert page.author == Person("Artist Person", None)
    assert page.submitter == Person("up", f"{OGA}/users/up")


def test_older_attribution_field_and_files_unavailable() -> None:
    spec = PageSpec(
        attribution_field="field-art-attribution",
        attribution="Please credit <b>me</b>.<br/>Thanks",
        unavailable=True,
    )
    page = parse_content_page(content_html(spec), f"{OGA}/content/x")
    assert page.attribution == "Please credit me.\nThanks"
    assert page.files_unavailable is True
    assert page.files == []


def test_file_hrefs_are_kept_as_given_and_names_decoded() -> None:
    spec = PageSpec(
        files=[
            FileSpec("a%21%20b%27s%20%23.zip", "gfx.zip", 10, 5),
            FileSpec("caf%C3%A9.png", "café.png", None, None, "image/png"),
            FileSpec("x.png?a=1&amp;b=2", "x.png", 7, None),
            FileSpec("gfx_3.zip", "gfx.zip", 99, 8),
        ],
        previews=[],
    )
    page = parse_content_page(content_html(spec), f"{OGA}/content/x")
    assert [f.url for f in page.files] == [
        f"{FILES}/a%21%20b%27s%20%23.zip",
        f"{FILES}/caf%C3%A9.png",
        f"{FILES}/x.png?a=1&b=2",
        f"{FILES}/gfx_3.zip",
    ]
    assert [f.name for f in page.files] == ["a! b's #.zip", "café.png", "x.png", "gfx_3.zip"]
    assert [f.link_text for f in page.files] == ["gfx.zip", "café.png", "x.png", "gfx.zip"]
    assert [f.declared_size for f in page.files] == [10, None, 7, 99]
    assert [f.fid for f in page.files] == [5, None, None, 8]
    assert page.previews == []


def test_relative_file_links_and_dlcount_fid() -> None:
    html = (
        '<div class="field field-name-field-art-files"><div class="field-items">'
        "<div class='field-item even'><span class='file'><a href='/sites/default/files/r.zip' "
        "type='application/zip;length=55'>r.zip</a> <span class='dlcount'>"
        "<span class='dlcount-number' id='dlcount-901'>3</span></span></span>"
        "<a href='/file/901/dlcounter'>count</a></div></div></div>"
    )
    page = parse_content_page(html, "http://127.0.0.1:9/content/r")
    assert page.files == [
        FileLink("http://127.0.0.1:9/sites/default/files/r.zip", "r.zip", "r.zip", 55, 901)
    ]


def test_post_date_prefers_rdf_timestamp() -> None:
    html = (
        '<div class="field field-name-post-date"><div class="field-items"><div class="field-item">'
        "Monday, March 2, 2020 - 09:05</div></div></div>"
        '<span property="dc:date dc:created" content="2020-03-02T10:05:00+01:00"></span>'
    )
    page = parse_content_page(html, f"{OGA}/content/x")
    assert page.post_date == datetime(2020, 3, 2, 9, 5, tzinfo=UTC)
    assert page.post_date_text == "Monday, March 2, 2020 - 09:05"
    odd = parse_content_page(
        '<div class="field-name-post-date">Sometime in Smarch 40, 2014</div>', OGA
    )
    assert odd.post_date is None
    assert odd.post_date_text == "Sometime in Smarch 40, 2014"


def test_node_id_and_title_fallbacks() -> None:
    html = (
        "<html><head><title>Only Title | OpenGameArt.org</title>"
        '<link rel="shortlink" href="/node/4242"></head><body></body></html>'
    )
    page = parse_content_page(html, f"{OGA}/content/only-title")
    assert (page.title, page.node_id) == ("Only Title", 4242)
    body_class = parse_content_page('<body class="page-node page-node-77"></body>', OGA)
    assert body_class.node_id == 77


def test_comments_do_not_leak_into_the_page() -> None:
    spec = PageSpec(description="", attribution=None)
    page = parse_content_page(content_html(spec), f"{OGA}/content/x")
    assert page.description is None
    assert page.attribution is None
    assert page.post_date == datetime(2014, 11, 6, 13, 8, tzinfo=UTC)


def test_empty_and_non_content_pages_give_empty_records() -> None:
    page = parse_content_page(b"", f"{OGA}/content/empty%20slug")
    assert page == ContentPage(
        slug="empty slug",
        url=f"{OGA}/content/empty%20slug",
        node_id=None,
        title=None,
        author=None,
        submitter=None,
    )
    junk = parse_content_page(b"\x00\xff<<<>>>&&&<div class='field-name-favorites'>x", OGA)
    assert junk.favorites is None
    assert junk.files == []


# --------------------------------------------------------------------------------------------
# Fuzzing: the parsers never raise, whatever the bytes


_REAL_CONTENT = content_html(
    PageSpec(
        submitter=("up", "/users/up"),
        collaborators=[("Bob", "/users/bob")],
        files=[FileSpec("a%20b.zip", "a b.zip", 5, 1), FileSpec("c.png", "c.png", None, 2)],
    )
)
_REAL_LISTING = listing_html([("a", "A"), ("b%20c", "B C")], page=1, last_page=3, total=500)


@st.composite
def _mutated(draw: st.DrawFn, base: str) -> str:
    """``base`` with a few random cuts, duplications and insertions of markup-ish junk."""
    text = base
    junk = st.text(alphabet=st.sampled_from(list("<>/\"'=&;# \n%abcdivspan01")), max_size=30)
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 400)))
        op = draw(st.sampled_from(["cut", "dup", "insert", "truncate"]))
        if op == "cut":
            text = text[:i] + text[j:]
        elif op == "dup":
            text = text[:j] + text[i:j] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(junk) + text[i:]
        else:
            text = text[:i]
    return text


@pytest.mark.slow  # 200 fuzzed documents
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        _mutated(_REAL_CONTENT),
        _mutated(_REAL_LISTING),
        st.binary(max_size=2000),
        st.text(max_size=2000),
    )
)
def test_parsers_never_raise(data: str | bytes) -> None:
    page = parse_content_page(data, f"{OGA}/content/fuzz")
    assert isinstance(page, ContentPage)
    assert all(is_art_file_url(f.url) for f in page.files + page.previews)
    listing = parse_listing(data, listing_url(OGA, 1))
    assert all(e.slug for e in listing.entries)
