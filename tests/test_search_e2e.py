"""Search core end to end: the real pipeline on the local site, then queries.

The same tests run on the embedded HNSW index and on a real Milvus server (the ``milvus``
package), through ``--vectors``.
"""

from __future__ import annotations

import io
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import create_engine, text

from ogasearch.localsite import RunningSite, build_site, serve_site
from ogasearch.search.results import Filters, ImageNotFound
from ogasearch.search.service import SearchService
from ogasearch.settings import load_settings
from support.runs import cli_args, cli_env, run_cli, sqlite_url, update_args

# The CLI pipeline end to end, then searches (the fast tier searches through test_api.py).
pytestmark = pytest.mark.slow

ALL_STAGES = ("crawl", "download", "extract", "tiles", "embed", "index")


@dataclass
class Indexed:
    data: Path
    site: RunningSite
    service: SearchService
    vectors: str | None

    def rows(self, query: str) -> list[tuple]:
        engine = create_engine(sqlite_url(self.data))
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(query))]
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def site() -> Iterator[RunningSite]:
    with serve_site(build_site()) as running:
        yield running


@pytest.fixture(scope="module", params=["hnsw", pytest.param("milvus", marks=pytest.mark.milvus)])
def indexed(
    request: pytest.FixtureRequest, site: RunningSite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Indexed]:
    vectors = None
    if request.param == "milvus":
        vectors = request.getfixturevalue("milvus_server_uri")
    data = tmp_path_factory.mktemp(f"indexed-{request.param}")
    extra = ["--vectors", vectors] if vectors else []
    run_cli(data, site.base_url, *update_args(ALL_STAGES), *extra, timeout=900)
    service = SearchService(load_settings(data=data, vectors=vectors))
    yield Indexed(data, site, service, vectors)
    service.close()


def _png(service: SearchService, image_id: int) -> Image.Image:
    return Image.open(io.BytesIO(service.image_png(image_id)))


def test_every_image_and_tile_is_indexed(indexed: Indexed) -> None:
    counts = indexed.rows(
        "SELECT embed_state, indexed, parent_id IS NOT NULL, COUNT(*) FROM images "
        "GROUP BY embed_state, indexed, parent_id IS NOT NULL"
    )
    assert {(state, bool(ix)) for state, ix, _, _ in counts} == {("done", True)}
    assert sum(n for *_, tile, n in counts if tile) > 0, "no tiles were cut from the sheets"
    stats = indexed.service.stats()
    assert stats["vectors"] == stats["indexed"] == stats["images"] + stats["tiles"]


def test_searching_with_any_indexed_image_returns_it_first(indexed: Indexed) -> None:
    rows = indexed.rows("SELECT id FROM images ORDER BY id")
    step = 1 if indexed.vectors is None else 7  # Milvus: a sample, same code path
    misses = []
    for (image_id,) in rows[::step]:
        first = indexed.service.by_image(_png(indexed.service, image_id), k=5).results[0]
        if image_id not in first.group_ids:  # itself, or grouped with its copies
            misses.append(image_id)
    assert misses == []


def test_sprites_in_a_screenshot_and_crops_are_found_through_their_patches(
    indexed: Indexed,
) -> None:
    """The patch path end to end: fingerprints written by the embed stage, the patch table
    built by the index stage and looked up by ``CatalogHashes``, candidates' pixels read back
    from the store. (Sprites with enough opaque pixels: a mostly half-transparent one shows
    its backdrop through, see docs/benchmarks.md.)"""
    rows = indexed.rows(
        "SELECT i.id FROM images i JOIN embeddings e ON e.image_id = i.id "
        "WHERE i.parent_id IS NULL AND i.width <= 128 AND i.height <= 128 "
        "AND length(e.patches) >= 24 * 4 ORDER BY i.id"  # 24 fingerprints or more
    )
    assert len(rows) >= 5
    rng = np.random.default_rng(1)
    misses = []
    for n, (image_id,) in enumerate(rows[:: max(1, len(rows) // 6)][:6]):
        sprite = _png(indexed.service, image_id).convert("RGBA")
        # a pixel-art backdrop at 3x, the sprite pasted on it at 2x
        noise = rng.integers(0, 256, (110, 110, 3), dtype=np.uint8).repeat(3, 0).repeat(3, 1)
        scene = Image.fromarray(noise).convert("RGBA").crop((1, 2, 321, 322))
        big = sprite.resize((sprite.width * 2, sprite.height * 2), Image.Resampling.NEAREST)
        scene.alpha_composite(big, (20 + 7 * n, 30 + 5 * n))
        w, h = sprite.size
        crop = sprite.crop((w // 10, h // 10, w, h))
        crop = crop.resize((crop.width * 2, crop.height * 2), Image.Resampling.NEAREST)
        for query in (scene.convert("RGB"), crop):
            first = indexed.service.by_image(query, k=5).results[0]
            if image_id not in first.group_ids:
                misses.append(image_id)
    assert misses == []


def test_tile_query_returns_its_sheet_page_with_the_box(indexed: Indexed) -> None:
    # Tiles whose pixels exist nowhere else (not also a loose file): the sheet is the answer.
    rows = indexed.rows(
        "SELECT t.id, t.parent_id, t.tile_x, t.tile_y, t.tile_w, t.tile_h FROM images t "
        "WHERE t.parent_id IS NOT NULL AND (SELECT COUNT(*) FROM images o "
        "WHERE o.canonical_sha256 = t.canonical_sha256) = 1 ORDER BY t.id"
    )
    assert len(rows) >= 10
    for tile_id, parent_id, x, y, w, h in rows[:: max(1, len(rows) // 15)]:
        with Image.open(io.BytesIO(indexed.service.image_png(parent_id))) as sheet:
            tile = sheet.crop((x, y, x + w, y + h))
        query = tile.resize((w * 3, h * 3), Image.Resampling.NEAREST)
        first = indexed.service.by_image(query, k=5).results[0]
        sheet_page = indexed.rows(
            "SELECT f.page_id FROM images i JOIN files f ON f.id = i.file_id "
            f"WHERE i.id = {parent_id}"
        )[0][0]
        assert first.source.page_id == sheet_page
        assert first.image_id == tile_id
        assert first.tile == (x, y, w, h) and first.parent_image_id == parent_id


def test_copies_are_grouped_earliest_page_first(indexed: Indexed) -> None:
    # The sample re-uploads adventurer_idle.png as hero.png on a later page.
    rows = indexed.rows(
        "SELECT i.id FROM images i JOIN files f ON f.id = i.file_id WHERE f.name = 'hero.png'"
    )
    assert rows
    result = indexed.service.by_image(_png(indexed.service, rows[0][0]), k=5).results[0]
    pages = [result.source, *result.copies]
    assert len(pages) >= 2
    assert len({p.page_id for p in pages}) == len(pages)
    dates = [p.post_date for p in pages]
    assert dates == sorted(dates)
    assert "hero.png" not in result.source.file_name  # the original comes first


def test_keyword_search_over_titles_tags_authors_and_file_names(indexed: Indexed) -> None:
    title, slug = indexed.rows(
        "SELECT p.title, p.slug FROM pages p WHERE EXISTS (SELECT 1 FROM images i "
        "JOIN files f ON f.id = i.file_id WHERE f.page_id = p.id) ORDER BY p.id LIMIT 1"
    )[0]
    word = max(title.split(), key=len)
    hits = indexed.service.by_text(word, k=20).results
    assert any(slug in r.source.page_url for r in hits)
    tag, tag_slug = indexed.rows(
        "SELECT t.name, p.slug FROM tags t JOIN page_tags pt ON pt.tag_id = t.id "
        "JOIN pages p ON p.id = pt.page_id LIMIT 1"
    )[0]
    assert any(tag_slug in r.source.page_url for r in indexed.service.by_text(tag, 50).results)
    author, author_slug = indexed.rows(
        "SELECT a.name, p.slug FROM authors a JOIN page_authors pa ON pa.author_id = a.id "
        "JOIN pages p ON p.id = pa.page_id WHERE pa.role = 'author' LIMIT 1"
    )[0]
    results = indexed.service.by_text(author, 50).results
    assert any(author_slug in r.source.page_url for r in results)
    assert indexed.service.by_text("zzqxv-nothing-like-this", 10).results == []


def test_filters_by_licence_and_tiles(indexed: Indexed) -> None:
    image_id = indexed.rows("SELECT id FROM images WHERE parent_id IS NULL ORDER BY id LIMIT 1")[0][
        0
    ]
    query = _png(indexed.service, image_id)
    for licence in indexed.service.licenses():
        for r in indexed.service.by_image(query, 20, Filters(license=licence)).results:
            assert licence in r.source.licenses
    only = indexed.service.by_image(query, 20, Filters(tiles="only")).results
    assert only and all(r.tile is not None for r in only)
    whole = indexed.service.by_image(query, 20, Filters(tiles="exclude")).results
    assert whole and all(r.tile is None for r in whole)


def test_similar_returns_the_image_first(indexed: Indexed) -> None:
    image_id = indexed.rows("SELECT id FROM images WHERE parent_id IS NULL ORDER BY id LIMIT 1")[0][
        0
    ]
    results = indexed.service.similar(image_id, k=10).results
    assert results[0].image_id == image_id or image_id in {c.image_id for c in results[0].copies}
    assert len(results) == 10
    with pytest.raises(ImageNotFound):
        indexed.service.similar(10**9)


def test_filters_widen_the_pool_within_the_index_limit_and_size(
    indexed: Indexed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter no result passes widens the neighbour pool x4 at a time, but never past the
    index's limit (``MAX_K``) nor its size. (It used to ask a large catalog's index for 25,600
    neighbours: ``ValueError: k must be at most 16384``, a 500 on ``/api/similar/ID?license=``.)
    Here a limit below this small catalog's size stands in for ``MAX_K``. "More like this"
    asks the kind scan, searches by image the vector index: both are recorded."""
    import ogasearch.index.base
    import ogasearch.search.service

    service = indexed.service
    index = service.vectors.index()
    size = len(index)
    image_id = indexed.rows("SELECT id FROM images WHERE parent_id IS NULL ORDER BY id LIMIT 1")[0][
        0
    ]
    query = _png(service, image_id)
    asked: list[int] = []
    search = index.search

    def recording_search(queries: Any, k: int, tiles: Any = None) -> Any:
        asked.append(k)
        return search(queries, k, tiles)

    def recording_kinds(model: str, vector: Any, k: int, tiles: Any = None) -> Any:
        asked.append(k)
        return kinds(model, vector, k, tiles)

    kinds = service.kinds.search
    monkeypatch.setattr(index, "search", recording_search)
    monkeypatch.setattr(service.kinds, "search", recording_kinds)
    # A licence no page has stands for a filter that no result passes; the service would
    # refuse it as unknown (UnknownFilter, tested in test_api), so its check is skipped here.
    monkeypatch.setattr(service, "check_filters", lambda filters: None)
    nothing = Filters(license="no such licence")
    assert size > 100
    assert service.similar(image_id, k=20, filters=nothing).results == []
    assert asked == [100, size]  # 4k + 20, then everything the index holds, once
    limit = (100 + size) // 2
    monkeypatch.setattr(ogasearch.index.base, "MAX_K", limit)
    monkeypatch.setattr(ogasearch.search.service, "MAX_K", limit)
    # a search by image starts from a pool four times wider (results of one page fold into
    # one card, and the matcher is not run again for them)
    for run, first in (
        (lambda: service.similar(image_id, k=20, filters=nothing), 100),
        (lambda: service.by_image(query, k=20, filters=nothing), min(400, limit)),
    ):
        asked.clear()
        assert run().results == []
        assert asked == ([first, limit] if limit > first else [first])


def test_check_finds_and_repairs_a_mismatch(indexed: Indexed) -> None:
    import numpy as np

    from ogasearch.workspace import Workspace

    settings = load_settings(data=indexed.data, vectors=indexed.vectors)
    victim = indexed.rows("SELECT id FROM images ORDER BY id LIMIT 1")[0][0]
    with Workspace(settings) as ws:
        ws.index.remove(np.array([victim], dtype=np.int64))
        ws.index.flush()
    args = ["check", "--no-repair"] + (["--vectors", indexed.vectors] if indexed.vectors else [])
    proc = subprocess.run(
        cli_args(indexed.data, indexed.site.base_url, *args),
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and '"missing_from_index": 1' in proc.stdout
    run_cli(indexed.data, indexed.site.base_url, *args[:1], *args[2:])
    run_cli(indexed.data, indexed.site.base_url, *args)  # clean now: exit 0


def test_killing_indexing_midway_leaves_catalog_and_index_consistent(
    tmp_path: Path, site: RunningSite
) -> None:
    run_cli(tmp_path, site.base_url, *update_args(("crawl", "download", "extract", "tiles")))
    url = sqlite_url(tmp_path)
    engine = create_engine(url)

    def count(query: str) -> int:
        with engine.connect() as conn:
            return int(conn.execute(text(query)).scalar_one())

    kills = 0
    for threshold in (20, 90, 160):
        proc = subprocess.Popen(
            cli_args(tmp_path, site.base_url, *update_args(("embed", "index"))),
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if count("SELECT COUNT(*) FROM embeddings") >= threshold:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.01)
        proc.wait(60)
    engine.dispose()
    assert kills >= 2
    run_cli(tmp_path, site.base_url, *update_args(("embed", "index")))
    run_cli(tmp_path, site.base_url, "check", "--no-repair")
    stats = SearchService(load_settings(data=tmp_path)).stats()
    assert stats["vectors"] == stats["indexed"] == stats["images"] + stats["tiles"]


def test_worker_processes_embed_exactly_like_one_process(indexed: Indexed, tmp_path: Path) -> None:
    if indexed.vectors is not None:
        pytest.skip("embedding does not depend on the vector backend")
    import shutil

    data = tmp_path / "again"
    shutil.copytree(indexed.data, data)
    engine = create_engine(sqlite_url(data))
    with engine.begin() as conn:
        conn.execute(text("UPDATE images SET embed_state = 'pending', indexed = 0"))
        conn.execute(text("DELETE FROM embeddings"))
    engine.dispose()
    run_cli(data, indexed.site.base_url, "embed", "--workers", "2")
    query = (
        "SELECT i.id, i.embed_state, i.canonical_sha256, i.structure_sha256, e.vector "
        "FROM images i JOIN embeddings e ON e.image_id = i.id ORDER BY i.id"
    )
    again = Indexed(data, indexed.site, indexed.service, None).rows(query)
    assert again == indexed.rows(query)
