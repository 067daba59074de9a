"""The local OGA copy: markup as documented, HTTP validators, faults, mutations, ground truth.

Everything runs over real HTTP on 127.0.0.1 with httpx; markup is checked with BeautifulSoup
against docs/opengameart.md, and the manifest against the served bytes.
"""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from bs4 import BeautifulSoup, Tag
from PIL import Image
from protego import Protego

from ogasearch.localsite import Fault, Manifest, RunningSite, Site, build_site, serve_site
from ogasearch.localsite.kenney import SAMPLE_ROOT
from ogasearch.localsite.packing import Entry, zip_archive


@pytest.fixture(scope="module")
def sample_site() -> Site:
    return build_site()


@pytest.fixture(scope="module")
def running(sample_site: Site) -> Iterator[RunningSite]:
    """Shared read-only server; tests that inject faults clear them afterwards."""
    with serve_site(sample_site) as served:
        yield served


@pytest.fixture
def client(running: RunningSite) -> Iterator[httpx.Client]:
    running.faults.clear()
    with httpx.Client(timeout=5) as http:
        yield http
    running.faults.clear()


@pytest.fixture(scope="module")
def manifest(running: RunningSite) -> Manifest:
    return running.manifest()


def soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "lxml")


def text(node: Tag | None) -> str:
    assert node is not None
    return " ".join(node.get_text(" ").split())


def field(page: BeautifulSoup, name: str) -> Tag | None:
    return page.select_one(f"div.field.field-name-{name}")


# -- the bundled sample -------------------------------------------------------------------------


def test_sample_folder_is_small_licensed_kenney_art() -> None:
    root = Path(str(SAMPLE_ROOT))
    pngs = list(root.rglob("*.png"))
    assert 40 <= len(pngs) <= 80
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 3_000_000
    assert "CC0" in (root / "kenney" / "License.txt").read_text()
    assert (root / "README.md").is_file()
    assert {p.parent.name for p in pngs} >= {"spritesheets", "tiles"}
    assert not any("crawl" in str(p.relative_to(root)).lower() for p in pngs)


def test_two_builds_are_byte_identical(sample_site: Site) -> None:
    again = build_site()
    assert [(f.name, f.sha256) for f in again.files()] == [
        (f.name, f.sha256) for f in sample_site.files()
    ]
    base = "http://127.0.0.1:9"
    assert again.manifest(base).to_dict() == sample_site.manifest(base).to_dict()


def test_sample_covers_the_hard_cases(manifest: Manifest) -> None:
    assert 12 <= len(manifest.pages) <= 20
    files = {f.name: f for f in manifest.files}
    states = Counter(f.expected_state for f in manifest.files)
    assert states["gone"] == 1 and states["failed"] == 2 and states["done"] > 30
    assert files["gfx_3.zip"].link_text == "gfx.zip"
    for odd in (
        "Coin gold (100% shiny)!.png",
        "gem's #2.png",
        "Schätze_宝石.png",
        "items on wood.jpg",
    ):
        assert odd in files
        assert files[odd].url.endswith(urlsplit(files[odd].url).path.rsplit("/", 1)[1])
        assert unquote(files[odd].url.rsplit("/", 1)[1]) == odd  # encoded exactly once
    kinds = {f.name.rsplit(".", 1)[-1] for f in manifest.files}
    assert {"png", "gif", "jpg", "bmp", "zip", "7z", "gz"} <= kinds
    assert any(i.frames > 1 for i in manifest.images)  # animated GIF
    paths = {m.path: m for m in manifest.members}
    assert paths["tanks/terrain.7z/terrain/tileGrass1.png"].kind == "image"  # 7z in zip
    assert (
        paths["enemies/extra/slimes.zip/slimes/slimeBlue.png"].expected_state == "ok"
    )  # zip in zip
    macosx = [m for m in manifest.members if m.path.startswith("__MACOSX/")]
    assert macosx and all(m.kind == "other" for m in macosx)
    assert paths["../../escape.png"].expected_state == "refused"
    assert paths["cave/latest"].expected_state == "refused"
    assert paths["cave/broken.png"].expected_state == "failed"
    # An exact re-upload: the same bytes on two pages, the later one is the copy.
    hero = files["hero.png"]
    original = files["adventurer_idle.png"]
    assert hero.sha256 == original.sha256 and hero.page_slug != original.page_slug
    assert manifest.page(hero.page_slug).post_date > manifest.page(original.page_slug).post_date
    unavailable = [p for p in manifest.pages if p.files_unavailable]
    assert len(unavailable) == 1
    assert [f.kind for f in manifest.files_of(unavailable[0].slug)] == ["preview"]
    assert {p.attribution is not None for p in manifest.pages} == {True, False}
    assert any(len(p.licences) == 3 for p in manifest.pages)
    assert any(p.collaborators for p in manifest.pages)
    assert any(p.submitter != p.author for p in manifest.pages)
    assert any(p.author.url is None for p in manifest.pages)  # plain-text author


# -- listing ------------------------------------------------------------------------------------


def test_listing_markup_and_order(
    running: RunningSite, client: httpx.Client, manifest: Manifest
) -> None:
    response = client.get(running.listing_url())
    assert response.status_code == 200
    page = soup(response.text)
    view = page.select_one("div.view.view-art.view-id-art.view-display-id-search_art_advanced")
    assert view is not None
    total = len(manifest.pages)
    assert text(view.select_one(".view-header")) == f"Displaying 1 - {total} of {total}"
    rows = view.select(".view-content .art-previews-inline div.node-art.view-mode-art_preview")
    links = [row.select_one("span.art-preview-title a") for row in rows]
    assert [a["href"] for a in links] == [f"/content/{p.slug}" for p in manifest.pages]
    assert [a.get_text() for a in links] == [p.title for p in manifest.pages]
    dates = [p.post_date for p in manifest.pages]
    assert dates == sorted(dates, reverse=True)  # created DESC
    thumbs = [r.select_one(".field-name-field-art-preview img") for r in rows]
    assert all("/styles/thumbnail/public/" in t["src"] for t in thumbs if t is not None)
    assert page.select_one("ul.pager") is None  # one page only


def test_listing_pager_follows_drupal(running: RunningSite, client: httpx.Client) -> None:
    running.max_items_per_page = 5
    try:
        first = client.get(running.listing_url(items_per_page=144))
        assert "&amp;" in first.text.split('class="pager"', 1)[1]
        page = soup(first.text)
        assert text(page.select_one(".view-header")) == "Displaying 1 - 5 of 17"
        last_href = page.select_one("ul.pager li.pager-last a")
        assert last_href is not None and last_href["title"] == "Go to last page"
        assert page.select_one("li.pager-current").get_text() == "1"
        assert page.select_one("li.pager-first") is None  # not on the first page
        query = parse_qs(urlsplit(last_href["href"]).query, keep_blank_values=True)
        assert query["page"] == ["3"]
        last = soup(client.get(running.url(last_href["href"])).text)
        assert text(last.select_one(".view-header")) == "Displaying 16 - 17 of 17"
        assert last.select_one("li.pager-last") is None
        assert len(last.select(".art-preview-title")) == 2
        # Views clamps a page number past the end to the last page.
        beyond = soup(client.get(running.listing_url(page=50)).text)
        assert text(beyond.select_one(".view-header")) == "Displaying 16 - 17 of 17"
    finally:
        running.max_items_per_page = None


def test_listing_parameters(running: RunningSite, client: httpx.Client) -> None:
    base = running.url("/art-search-advanced")
    three_d = soup(client.get(base, params={"field_art_type_tid[]": "10"}).text)
    assert three_d.select(".art-preview-title") == [] and three_d.select_one(".view-empty")
    oldest = soup(client.get(base, params={"sort_by": "created", "sort_order": "ASC"}).text)
    assert oldest.select_one(".art-preview-title a")["href"] == "/content/bitmap-keys-and-star"
    cc0 = soup(client.get(base, params={"field_art_licenses_tid[]": "4"}).text)
    assert 0 < len(cc0.select(".art-preview-title")) < 17


# -- content pages ------------------------------------------------------------------------------


def test_content_pages_match_manifest(
    running: RunningSite, client: httpx.Client, manifest: Manifest
) -> None:
    for record in manifest.pages:
        response = client.get(record.url)
        assert response.status_code == 200, record.slug
        page = soup(response.text)
        assert " ".join(page.title.get_text().split()) == f"{record.title} | OpenGameArt.org"
        for group in ("group-header", "group-left.left-column", "group-right.right-column"):
            assert page.select_one(f"div.{group}") is not None
        title = field(page, "title").select_one('.field-item[property="dc:title"] h2')
        assert text(title) == record.title
        author = field(page, "author-submitter")
        assert text(author.select_one("span.username")) == record.author.name
        if record.submitter != record.author:
            assert f"(Submitted by {record.submitter.name})" in author.get_text()
            assert author.select_one("strong a")["href"] == f"/users/{record.submitter.name}"
        assert text(field(page, "post-date")) == record.post_date_text
        licence_names = [
            text(n) for n in page.select(".field-name-field-art-licenses .license-name")
        ]
        assert licence_names == list(record.licences)
        licence_links = page.select(".field-name-field-art-licenses .license-icon a")
        assert [a["href"] for a in licence_links] == list(record.licence_urls)
        tags = [text(a) for a in page.select(".field-name-field-art-tags .field-item a")]
        assert tags == list(record.tags)
        assert text(field(page, "field-art-type").select_one("a")) == "2D Art"
        collaborators = [text(a) for a in page.select(".field-name-field-collaborators a")]
        assert collaborators == [c.name for c in record.collaborators]
        notice = field(page, "field-copyright-notice") or field(page, "field-art-attribution")
        assert (text(notice.select_one(".field-items")) if notice else None) == record.attribution
        favourites = field(page, "favorites")
        if record.favorites is None:
            assert favourites is None
        else:
            assert text(favourites.select_one(".field-item")) == str(record.favorites)
            assert favourites.select_one(f".flag-favorites-{record.node_id}") is not None
        body = page.select_one('.field-name-body [property="content:encoded"]')
        assert text(body) == " ".join(record.description.split())
        _check_files_field(page, record.slug, record.files_unavailable, manifest)


def _check_files_field(
    page: BeautifulSoup, slug: str, unavailable: bool, manifest: Manifest
) -> None:
    files_field = field(page, "field-art-files")
    expected = [f for f in manifest.files_of(slug) if f.kind == "file"]
    if unavailable:
        assert "File(s) currently unavalable due to potential licensing issues" in text(files_field)
        assert not files_field.select("span.file")
        return
    assert files_field is not None and "field-label-above" in files_field["class"]
    assert text(files_field.select_one(".field-label")) == "File(s):"
    anchors = files_field.select("span.file > a")
    assert [a["href"] for a in anchors] == [f.url for f in expected]
    for anchor, record in zip(anchors, expected, strict=True):
        assert anchor.get_text() == record.link_text
        _mime, length = anchor["type"].split("; length=")
        assert int(length) == record.declared_size
        assert int(anchor["data-fid"]) == record.fid
        assert anchor.find_parent("span").select_one(f"#dlcount-{record.fid}.dlcount-number")
    previews = [f for f in manifest.files_of(slug) if f.kind == "preview"]
    lightbox = page.select_one(".field-name-field-art-preview a.preview-lightbox")
    assert (lightbox["href"] if lightbox else None) == (previews[0].url if previews else None)


def test_odd_markup_page(running: RunningSite, client: httpx.Client, manifest: Manifest) -> None:
    html = client.get(running.url("/content/critters-bugs-wip")).text
    assert "class='field field-name-title" in html  # single-quoted attributes
    assert "<strong>new.\n</div>" in html  # unclosed tags
    assert "field-name-field-art-tags" not in html and "field-name-favorites" not in html
    assert manifest.page("critters-bugs-wip").title == "Critters & bugs <WIP>"
    assert "&lt;WIP&gt;" in html  # escaped


def test_node_redirect_and_404(running: RunningSite, client: httpx.Client) -> None:
    response = client.get(running.url("/node/40211"))
    assert response.status_code == 301
    assert response.headers["location"] == running.url("/content/treasure-items")
    assert client.get(running.url("/node/1")).status_code == 404
    assert client.get(running.url("/content/no-such-page")).status_code == 404
    double_encoded = running.url("/sites/default/files/items%2520on%2520wood.jpg")
    assert client.get(double_encoded).status_code == 404


def test_robots_txt(running: RunningSite, client: httpx.Client) -> None:
    body = client.get(running.url("/robots.txt")).text
    robots = Protego.parse(body)
    assert robots.crawl_delay("ogasearch") is None
    assert not robots.can_fetch(running.url("/search/node/tiles"), "ogasearch")
    assert "Disallow: /?q=search/" in body
    assert robots.can_fetch(running.listing_url(), "ogasearch")
    assert robots.can_fetch(running.url("/content/treasure-items"), "ogasearch")
    running.crawl_delay = 10
    try:
        delayed = Protego.parse(client.get(running.url("/robots.txt")).text)
        assert delayed.crawl_delay("ogasearch") == 10
    finally:
        running.crawl_delay = None


# -- files and ground truth ---------------------------------------------------------------------


def test_served_files_match_manifest(
    running: RunningSite, client: httpx.Client, manifest: Manifest
) -> None:
    for record in manifest.files:
        response = client.get(record.url)
        if record.expected_state == "gone":
            assert response.status_code == 404
            continue
        assert response.status_code == 200, record.url
        assert int(response.headers["content-length"]) == record.size == len(response.content)
        assert hashlib.sha256(response.content).hexdigest() == record.sha256
        assert response.headers["content-type"] == record.content_type
        if record.name.endswith(".zip") and record.expected_state == "done":
            _check_zip_members(response.content, record.url, manifest)
        if record.name.endswith(".tar.gz"):
            with tarfile.open(fileobj=io.BytesIO(response.content)) as archive:
                names = {m.name for m in archive.getmembers() if m.isfile()}
            assert names == {m.path for m in manifest.members_of(record.url)}
    for image in manifest.images:
        if image.archive_path:
            continue
        with Image.open(io.BytesIO(client.get(image.file_url).content)) as opened:
            assert opened.size == (image.width, image.height)
            assert getattr(opened, "n_frames", 1) == image.frames


def _check_zip_members(data: bytes, url: str, manifest: Manifest) -> None:
    """Top-level zip members per Python's zipfile equal the manifest's (libarchive's) list."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = {i.filename for i in archive.infolist() if not i.is_dir()}
        for info in archive.infolist():
            assert info.date_time[0] >= 2009  # fixed, realistic timestamps
    top_level = {m.path for m in manifest.members_of(url) if ".zip/" not in m.path}
    top_level = {p for p in top_level if ".7z/" not in p}
    assert names == top_level


def test_images_in_archives_hash_their_bytes(
    running: RunningSite, client: httpx.Client, manifest: Manifest
) -> None:
    record = manifest.file(running.url("/sites/default/files/platformer-singles.zip"))
    with zipfile.ZipFile(io.BytesIO(client.get(record.url).content)) as archive:
        for image in manifest.images_of(record.url):
            data = archive.read(image.archive_path)
            assert hashlib.sha256(data).hexdigest() == image.sha256


# -- HTTP validators ----------------------------------------------------------------------------


def test_conditional_requests_and_head(running: RunningSite, client: httpx.Client) -> None:
    for url in (
        running.url("/content/treasure-items"),
        running.listing_url(),
        running.url("/sites/default/files/alien_blue.7z"),
        running.url("/robots.txt"),
    ):
        full = client.get(url)
        etag = full.headers["etag"]
        assert full.status_code == 200 and etag.startswith('"')
        again = client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
        head = client.head(url)
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == len(full.content)
        if "last-modified" in full.headers:
            since = full.headers["last-modified"]
            assert client.get(url, headers={"If-Modified-Since": since}).status_code == 304
            old = "Mon, 01 Jan 2001 00:00:00 GMT"
            assert client.get(url, headers={"If-Modified-Since": old}).status_code == 200
    assert "last-modified" in client.get(running.url("/content/treasure-items")).headers


# -- run-time changes ---------------------------------------------------------------------------


def test_mutations_show_in_listing_pages_and_manifest() -> None:
    site = build_site()
    with serve_site(site) as served, httpx.Client(timeout=5) as http:
        listing_etag = http.get(served.listing_url()).headers["etag"]
        new = site.add_page(
            "Fresh sprites", {"fresh one.png": _tiny_png((200, 30, 30))}, author="newbie"
        )
        listing = soup(http.get(served.listing_url()).text)
        assert listing.select_one(".art-preview-title a")["href"] == f"/content/{new.slug}"
        assert (
            http.get(served.listing_url(), headers={"If-None-Match": listing_etag}).status_code
            == 200
        )
        assert served.manifest().page(new.slug).author.name == "newbie"
        assert served.manifest().files_of(new.slug)[0].url.endswith("/fresh%20one.png")

        url = served.url("/content/treasure-items")
        before = http.get(url)
        site.change_page("treasure-items", title="Treasure & Items (updated)")
        after = http.get(url)
        assert after.headers["etag"] != before.headers["etag"]
        assert http.get(url, headers={"If-None-Match": before.headers["etag"]}).status_code == 200
        since = before.headers["last-modified"]
        assert http.get(url, headers={"If-Modified-Since": since}).status_code == 200
        assert "(updated)" in after.text

        link = site.add_file_to_page("hero-sprite", "hero_v2.png", _tiny_png((0, 90, 200)))
        assert served.manifest().files_of("hero-sprite")[-1].name == link.name

        site.remove_page("hero-sprite")
        assert http.get(served.url("/content/hero-sprite")).status_code == 404
        assert "hero-sprite" not in http.get(served.listing_url()).text
        site.remove_file("sign_exit.png")
        assert http.get(served.url("/sites/default/files/sign_exit.png")).status_code == 404
        states = {f.name: f.expected_state for f in served.manifest().files}
        assert states["sign_exit.png"] == "gone"


def test_concurrent_reads_while_changing() -> None:
    site = build_site()
    with serve_site(site) as served, httpx.Client(timeout=10) as http:
        urls = [p.url for p in served.manifest().pages] * 3

        def fetch(url: str) -> int:
            return http.get(url).status_code

        with ThreadPoolExecutor(max_workers=6) as pool:
            futures = [pool.submit(fetch, u) for u in urls]
            for n in range(5):
                site.change_page("treasure-items", favorites=100 + n)
            statuses = {f.result() for f in futures}
    assert statuses == {200}


def _tiny_png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
    return buffer.getvalue()


# -- faults and the request log -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_after"), [(500, None), (503, 7), (503, None), (429, "120")]
)
def test_fault_status(
    running: RunningSite, client: httpx.Client, status: int, retry_after: int | str | None
) -> None:
    url = running.url("/content/treasure-items")
    running.faults.add(r"^/content/treasure-items$", Fault.error(status, retry_after), times=1)
    failed = client.get(url)
    assert failed.status_code == status
    assert failed.headers.get("retry-after") == (None if retry_after is None else str(retry_after))
    assert client.get(url).status_code == 200  # the rule was used up


def test_fault_slow(running: RunningSite, client: httpx.Client) -> None:
    running.faults.add(r"/content/hero-sprite", Fault.slow(0.4))
    started = time.monotonic()
    assert client.get(running.url("/content/hero-sprite")).status_code == 200
    assert time.monotonic() - started >= 0.4
    running.faults.add(r"/content/hero-sprite", Fault.slow(2))
    with pytest.raises(httpx.ReadTimeout):
        client.get(running.url("/content/hero-sprite"), timeout=0.3)


@pytest.mark.parametrize("reset", [False, True])
def test_fault_drop(running: RunningSite, client: httpx.Client, reset: bool) -> None:
    running.faults.add(r"\.7z$", Fault.drop(reset=reset), times=2)
    url = running.url("/sites/default/files/alien_blue.7z")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get(url)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get(url)
    assert client.get(url).status_code == 200
    dropped = [r for r in running.requests() if r.path.endswith(".7z") and r.fault == "drop"]
    assert len(dropped) >= 2 and all(r.status is None for r in dropped)


def test_fault_truncate(running: RunningSite, client: httpx.Client, manifest: Manifest) -> None:
    record = manifest.file(running.url("/sites/default/files/platformer_tiles.png"))
    path = urlsplit(record.url).path
    running.faults.add(path, Fault.truncate(0.25))
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(record.url)
    # On the wire: the full Content-Length is promised, a quarter is sent, then EOF.
    running.faults.add(path, Fault.truncate(0.25))
    with socket.create_connection((running.host, running.port), timeout=5) as raw:
        raw.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = b""
        while chunk := raw.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert f"Content-Length: {record.size}".encode() in head
    assert len(body) == int(record.size * 0.25)


def test_fault_redirect_to_other_host(running: RunningSite, client: httpx.Client) -> None:
    elsewhere = f"http://localhost:{running.port}/content/treasure-items"
    running.faults.add(r"^/content/hero-sprite$", Fault.redirect(elsewhere, 302))
    response = client.get(running.url("/content/hero-sprite"))
    assert response.status_code == 302 and response.headers["location"] == elsewhere
    running.faults.add(r"^/content/hero-sprite$", Fault.redirect("/content/treasure-items", 301))
    moved = client.get(running.url("/content/hero-sprite"))
    assert moved.headers["location"] == running.url("/content/treasure-items")


def test_fault_rules_by_method_and_count(running: RunningSite, client: httpx.Client) -> None:
    url = running.url("/content/dungeon-tiles")
    rule = running.faults.add(r"dungeon-tiles", Fault.error(503), times=None, method="HEAD")
    assert client.get(url).status_code == 200
    assert [client.head(url).status_code for _ in range(3)] == [503, 503, 503]
    assert rule.hits == 3
    running.faults.remove(rule)
    assert client.head(url).status_code == 200


def test_request_log_records_conditional_headers(
    running: RunningSite, client: httpx.Client
) -> None:
    running.clear_requests()
    url = running.url("/content/enemy-sprites")
    etag = client.get(url).headers["etag"]
    client.get(url, headers={"If-None-Match": etag, "User-Agent": "ogasearch-test"})
    records = [r for r in running.requests() if r.path == "/content/enemy-sprites"]
    assert [r.status for r in records] == [200, 304]
    assert records[1].header("If-None-Match") == etag
    assert records[1].header("user-agent") == "ogasearch-test"
    assert records[0].method == "GET" and records[0].monotonic <= records[1].monotonic
    assert abs(records[0].at - time.time()) < 60


# -- building blocks and the scale variant -------------------------------------------------------


def test_archives_are_deterministic_and_dated() -> None:
    from datetime import UTC, datetime

    when = datetime(2014, 11, 6, 13, 8, tzinfo=UTC)
    entries = [Entry("b/two.txt", b"2"), Entry("a/one.txt", b"1")]
    first = zip_archive(entries, when)
    assert first == zip_archive(list(reversed(entries)), when)
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.namelist() == ["a/", "a/one.txt", "b/", "b/two.txt"]
        assert archive.getinfo("a/one.txt").date_time == (2014, 11, 6, 13, 8, 0)


def _atlas_folder(tmp_path: Path) -> Path:
    """An atlas of 32x32 cells cut from the sample's tile sheet (so the test needs no extras)."""
    sheet = Image.open(Path(str(SAMPLE_ROOT)) / "kenney" / "spritesheets" / "tiles.png")
    small = sheet.resize((sheet.width // 4, sheet.height // 4), Image.Resampling.NEAREST)
    folder = tmp_path / "atlases"
    folder.mkdir()
    small.save(folder / "main.png")
    return folder


def test_scale_site_from_external_folder(tmp_path: Path) -> None:
    folder = _atlas_folder(tmp_path)
    site = build_site(scale_source=folder, pages=12, images_per_page=4)
    again = build_site(scale_source=folder, pages=12, images_per_page=4)
    assert [f.sha256 for f in site.files()] == [f.sha256 for f in again.files()]
    with serve_site(site) as served, httpx.Client(timeout=5) as http:
        truth = served.manifest()
        assert len(truth.pages) == 12
        assert all(f.expected_state == "done" for f in truth.files)
        # 4 tiles + a preview per page, a sheet on every seventh page
        assert len(truth.images) == 12 * 5 + 2
        zips = [f for f in truth.files if f.name.endswith(".zip")]
        assert len(zips) == 12
        page = soup(http.get(truth.pages[0].url).text)
        assert len(page.select(".field-name-field-art-files span.file a")) == len(
            [f for f in truth.files_of(truth.pages[0].slug) if f.kind == "file"]
        )


@pytest.mark.slow
def test_scale_site_from_dungeon_crawl_tiles(crawl_tiles: Path) -> None:
    started = time.monotonic()
    site = build_site(scale_source=crawl_tiles, pages=800)
    elapsed = time.monotonic() - started
    truth = site.manifest("http://127.0.0.1:9")
    assert len(truth.images) >= 4800
    assert elapsed < 30
