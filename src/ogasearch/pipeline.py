"""The pipeline: every stage in order, each one resumable and idempotent on its own.

``update`` = crawl -> download -> extract -> tiles -> embed -> index. A stage only reads what
the catalog says is pending, so killing ``update`` at any moment and running it again finishes
the work without duplicating or losing a row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy import Engine

from ogasearch.catalog import open_catalog
from ogasearch.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Workspace:
    """What every stage works on: settings, the catalog, the blob store, the site client."""

    settings: Settings
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @cached_property
    def engine(self) -> Engine:
        self.settings.data.mkdir(parents=True, exist_ok=True)
        engine = open_catalog(self.settings.catalog_url)
        self._closers.append(engine.dispose)
        return engine

    @cached_property
    def store(self):  # type: ignore[no-untyped-def]
        from ogasearch.store.blobs import BlobStore

        return BlobStore(self.settings.store_dir)

    @cached_property
    def client(self):  # type: ignore[no-untyped-def]
        from ogasearch.crawl.http import PoliteClient

        client = PoliteClient(self.settings)
        self._closers.append(client.close)
        return client

    @cached_property
    def extractor(self):  # type: ignore[no-untyped-def]
        from ogasearch.embed.stage import open_extractor

        return open_extractor(self.settings)

    @cached_property
    def index(self):  # type: ignore[no-untyped-def]
        from ogasearch.index import open_index

        extractor = self.extractor
        # The embedded index lives in a folder per model, so changing the extractor starts a
        # fresh index instead of mixing vector spaces (the embed stage re-embeds everything).
        uri = self.settings.vectors or str(
            self.settings.data / "vectors" / f"{extractor.name}-{extractor.dim}"
        )
        index = open_index(uri, self.settings.data, extractor.dim, extractor.name)
        self._closers.append(index.close)
        return index

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_crawl(ws: Workspace, full: bool = False) -> Any:
    from ogasearch.crawl.crawler import crawl

    return crawl(ws.engine, ws.settings, ws.client, full=full)


def run_download(ws: Workspace) -> Any:
    from ogasearch.store.download import download

    return download(ws.engine, ws.settings, ws.client, ws.store)


def run_extract(ws: Workspace) -> Any:
    from ogasearch.extract.stage import extract

    return extract(ws.engine, ws.settings, ws.store)


def run_tiles(ws: Workspace) -> Any:
    from ogasearch.tiles.stage import cut_tiles

    return cut_tiles(ws.engine, ws.settings, ws.store)


def run_embed(ws: Workspace) -> Any:
    from ogasearch.embed.stage import embed

    return embed(ws.engine, ws.settings, ws.store, ws.extractor)


def run_index(ws: Workspace) -> Any:
    from ogasearch.index.stage import index_vectors
    from ogasearch.search.keywords import refresh_keywords

    return {"vectors": index_vectors(ws.engine, ws.index), "keywords": refresh_keywords(ws.engine)}


STAGES: dict[str, Callable[[Workspace], Any]] = {
    "crawl": run_crawl,
    "download": run_download,
    "extract": run_extract,
    "tiles": run_tiles,
    "embed": run_embed,
    "index": run_index,
}


def update(ws: Workspace, full: bool = False, stages: list[str] | None = None) -> dict[str, Any]:
    """Run the stages in order (all by default); return each stage's stats."""
    results: dict[str, Any] = {}
    for name, run in STAGES.items():
        if stages is not None and name not in stages:
            continue
        log.info("stage %s", name)
        results[name] = run_crawl(ws, full=full) if name == "crawl" else run(ws)
    return results
