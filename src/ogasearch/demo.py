"""``ogasearch demo``: the whole product on one machine, offline, in one command.

It starts the local copy of OpenGameArt (``ogasearch.localsite``, the bundled CC0 sample) on a
free loopback port, runs the full pipeline against it into a fresh data folder (no crawl
delay, every page checked), then serves the search UI and API over that folder. The local
site keeps running meanwhile, so the "OpenGameArt page" links of the results open.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ogasearch.settings import Settings


class DemoError(RuntimeError):
    """The demo cannot start (e.g. its data folder is not fresh)."""


def demo_settings(data: Path, site_url: str) -> Settings:
    """Settings for the demo: explicit, so that no OGASEARCH_* variable points it elsewhere."""
    return Settings(
        data=data,
        site=site_url,
        catalog=None,
        vectors=None,
        delay=0.0,
        recheck_days=0.0,
        allow_private_urls=False,
    )


def _fresh_folder(data_dir: Path | None) -> Path:
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix="ogasearch-demo-"))
    if data_dir.exists() and any(data_dir.iterdir()):
        raise DemoError(
            f"{data_dir} is not empty: the demo builds a fresh data folder (its pages point at a"
            " local site on a new port each run); give an empty or new folder"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir


def run_demo(
    data_dir: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    echo: Callable[[str], None] = print,
) -> None:
    """Local site -> ``update`` -> ``serve``, until interrupted. ``data_dir`` must be empty or
    absent (None: a new temporary folder, kept afterwards so it can be inspected)."""
    from ogasearch.localsite.build import build_site
    from ogasearch.localsite.server import serve_site
    from ogasearch.pipeline import update
    from ogasearch.web.server import serve
    from ogasearch.workspace import Workspace

    data = _fresh_folder(data_dir)
    site = build_site()
    with serve_site(site) as running:
        echo(f"Local OpenGameArt copy ({len(site.pages())} pages) at {running.base_url}/")
        settings = demo_settings(data, running.base_url)
        echo(f"Building the search index in {data} ...")
        started = time.monotonic()
        with Workspace(settings) as ws:
            for stage, stats in update(ws).items():
                echo(f"  {stage}: {stats}")
        echo(f"Index built in {time.monotonic() - started:.1f} s.")
        echo(f"ogasearch demo: open http://{host}:{port}/  (API docs: /docs; Ctrl-C stops)")
        serve(settings, host=host, port=port)
