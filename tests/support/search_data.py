"""A searchable data folder, built once per test session by the real pipeline.

The local OpenGameArt copy (the bundled CC0 sample, plus one page whose title is an XSS
attempt) is served on 127.0.0.1, and ``ogasearch.pipeline.update`` crawls, downloads,
extracts, cuts tiles, embeds and indexes it into a temporary data folder. The web tests
(``test_api.py``, ``test_web_ui.py``) share the result; the site keeps running for the whole
session so that image-URL queries can fetch its files.
"""

from __future__ import annotations

import atexit
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

from ogasearch.localsite.build import build_site
from ogasearch.localsite.server import RunningSite, start_site
from ogasearch.settings import Settings
from ogasearch.web.app import create_app
from ogasearch.web.server import running_server

XSS_TITLE = '<script>window.__xss = "title"</script><img src=x onerror="window.__xss=\'img\'">'
XSS_FILE = "xss_probe.png"


@dataclass(frozen=True)
class SearchData:
    settings: Settings  # allow_private_urls on: the local site is on loopback
    site: RunningSite

    def file_url(self, name: str) -> str:
        return self.site.url(f"/sites/default/files/{name}")

    def page_url(self, slug: str) -> str:
        return self.site.url(f"/content/{slug}")


def probe_sprite() -> bytes:
    """A 24x24 sprite unlike the Kenney art, for the page with the hostile title."""
    image = Image.new("RGBA", (24, 24), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rectangle((2, 2, 21, 21), fill=(250, 40, 200, 255))
    draw.rectangle((6, 6, 9, 9), fill=(20, 20, 20, 255))
    draw.rectangle((14, 6, 17, 9), fill=(20, 20, 20, 255))
    draw.rectangle((6, 15, 17, 17), fill=(255, 255, 60, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


_lock = threading.Lock()
_built: list[SearchData] = []


def app_client(settings: Settings, timeout: float) -> Iterator[httpx.Client]:
    """The web app on ``settings``, served on a loopback port, and a client for it."""
    with (
        running_server(create_app(settings)) as url,
        httpx.Client(base_url=url, timeout=timeout) as client,
    ):
        yield client


def search_data(tmp_path_factory: pytest.TempPathFactory) -> SearchData:
    """The session's data folder (built on first use)."""
    with _lock:
        if not _built:
            _built.append(_build(tmp_path_factory.mktemp("search-data")))
        return _built[0]


def _build(data: Path) -> SearchData:
    from ogasearch.pipeline import STAGES, update
    from ogasearch.workspace import Workspace

    site = build_site()
    site.add_page(
        XSS_TITLE,
        {XSS_FILE: probe_sprite()},
        author="prober",
        licences=("CC0",),
        tags=("probe",),
        slug="xss-probe",
    )
    running = start_site(site)
    atexit.register(running.stop)
    settings = Settings(
        data=data,
        site=running.base_url,
        catalog=None,
        vectors=None,
        delay=0.0,
        recheck_days=0.0,
        allow_private_urls=True,
    )
    # Every stage but provenance (the slowest, and tested on a site of planted copies of its
    # own in test_provenance.py): the searches, the API and the UI read what the others write.
    with Workspace(settings) as ws:
        update(ws, stages=[name for name in STAGES if name != "provenance"])
    return SearchData(settings=settings, site=running)
