"""The pipeline: every stage in order, each one resumable and idempotent on its own.

``update`` = crawl -> download -> extract -> tiles -> embed -> index -> map -> provenance. A
stage only reads what the catalog says is pending, so killing ``update`` at any moment and
running it again finishes the work without duplicating or losing a row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ogasearch.workspace import Workspace

log = logging.getLogger(__name__)


def run_crawl(ws: Workspace, full: bool = False) -> Any:
    from ogasearch.crawl.stage import crawl

    return crawl(ws.engine, ws.settings, ws.client, full=full)


def run_download(ws: Workspace) -> Any:
    from ogasearch.store.stage import download

    return download(ws.engine, ws.settings, ws.client, ws.store)


def run_extract(ws: Workspace) -> Any:
    from ogasearch.extract.stage import extract

    return extract(ws.engine, ws.settings, ws.store)


def run_tiles(ws: Workspace) -> Any:
    from ogasearch.tiles.stage import cut_tiles

    def unindex(ids: list[int]) -> None:  # tiles no longer cut leave the vector index
        ws.index.remove(ids)
        ws.index.flush()

    return cut_tiles(ws.engine, ws.settings, ws.store, unindex=unindex)


def run_embed(ws: Workspace) -> Any:
    from ogasearch.embed.compact import fit_from_catalog
    from ogasearch.embed.stage import embed

    stats = embed(ws.engine, ws.settings, ws.store, ws.extractor)
    # enough full vectors now: the codec is fitted, they are re-encoded
    if ws.extractor is ws.model and fit_from_catalog(ws.engine, ws.model, ws.settings):
        ws.codec_changed()
        embed(ws.engine, ws.settings, ws.store, ws.extractor)
    return stats


def run_index(ws: Workspace) -> Any:
    from ogasearch.index.keywords import refresh_keywords
    from ogasearch.index.stage import index_vectors

    vectors = index_vectors(ws.engine, ws.index, ws.patches)
    return {"vectors": vectors, "keywords": refresh_keywords(ws.engine)}


def run_map(ws: Workspace, rebuild: bool = False) -> Any:
    from ogasearch.artmap.stage import build_map

    return build_map(ws.engine, ws.settings, ws.store, rebuild=rebuild)


def run_provenance(ws: Workspace) -> Any:
    from ogasearch.provenance.stage import build_copy_groups

    return build_copy_groups(ws)


STAGES: dict[str, Callable[[Workspace], Any]] = {
    "crawl": run_crawl,
    "download": run_download,
    "extract": run_extract,
    "tiles": run_tiles,
    "embed": run_embed,
    "index": run_index,
    "map": run_map,
    "provenance": run_provenance,
}


def update(ws: Workspace, full: bool = False, stages: list[str] | None = None) -> dict[str, Any]:
    """Run the stages in order (every one unless named); return each stage's stats.

    When a stage needs the model, it is checked first (``ModelUnavailable``: nothing ran)."""
    chosen = list(STAGES) if stages is None else stages
    if {"embed", "index", "provenance"} & set(chosen):
        ws.check_extractor()
    results: dict[str, Any] = {}
    for name, run in STAGES.items():
        if name not in chosen:
            continue
        log.info("stage %s", name)
        results[name] = run_crawl(ws, full=full) if name == "crawl" else run(ws)
    return results
