"""The patch table (``index.patches``), its catalog copy (``catalog.fingerprints``), the index
stage keeping the two in step, ``check``, the upgrade of a version-1 catalog, and the hash
indexes of version 3."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, event, insert, select, text, update

from ogasearch.catalog.db import open_catalog
from ogasearch.catalog.fingerprints import decode_fingerprints, encode_fingerprints, patch_changes
from ogasearch.catalog.migrate import has_legacy_patches
from ogasearch.catalog.schema import SCHEMA_VERSION, embeddings, files, images, meta, pages
from ogasearch.catalog.vectors import encode_vector
from ogasearch.embed.patches import COMMON
from ogasearch.index import HnswIndex
from ogasearch.index.patches import PatchArrays, PatchTable
from ogasearch.index.stage import check, index_vectors
from ogasearch.match.lookups import ids_by_hash

DIM = 4
BIG = 0xF000_0000_0000_0001  # a fingerprint above 2**63: negative as int64


def test_lookup_returns_owners_and_leaves_common_hashes_out() -> None:
    owned = {1: [10, 20, BIG], 2: [20, 30], 3: [30]}
    owned |= {100 + n: [77] for n in range(COMMON + 1)}  # held by too many images
    owned |= {300 + n: [88] for n in range(COMMON)}  # held by just few enough
    table = PatchArrays.of(owned)
    pairs = sorted(table.owners_of([20, 30, 40, 77]))
    assert pairs == [(20, 1), (20, 2), (30, 2), (30, 3)]
    assert len(table.owners_of([88])) == COMMON
    # the query's own value comes back, signed as ``embed.patches`` gives it
    signed = int(np.array([BIG], np.uint64).view(np.int64)[0])
    assert table.owners_of([signed]) == [(signed, 1)]
    assert table.owners_of([]) == [] and PatchArrays.of({}).owners_of([10]) == []


def test_two_fingerprints_with_one_key_vote_once() -> None:
    """Keys are the low 32 bits: an image holding two fingerprints that share them is one
    pair, and so is a query holding both."""
    high = 10 + (5 << 32)
    table = PatchArrays.of({1: [10, high]})
    assert len(table) == 1
    assert table.owners_of([10, high]) == [(10, 1)]


def test_fingerprints_blob_is_their_sorted_distinct_32_bit_keys() -> None:
    blob = encode_fingerprints([BIG, 3, -1, 3, 3 + (7 << 32)])
    assert len(blob) == 3 * 4
    assert decode_fingerprints(blob).tolist() == [1, 3, 2**32 - 1]
    assert decode_fingerprints(None).size == 0


def test_rebuild_switches_generations_and_readers_refresh(tmp_path: Path) -> None:
    writer, reader = PatchTable(tmp_path / "p"), PatchTable(tmp_path / "p")
    assert reader.problem is not None and reader.lookup([10]) == []
    assert writer.rebuild(1, lambda: (PatchArrays.of({1: [10]}), 1))
    assert not writer.rebuild(1, lambda: pytest.fail("built from the same count again"))
    assert reader.refresh() and reader.problem is None and reader.lookup([10]) == [(10, 1)]
    assert writer.rebuild(2, lambda: (PatchArrays.of({2: [10]}), 2))
    assert reader.lookup([10]) == [(10, 1)]  # the generation it loaded, until refresh
    assert reader.refresh() and reader.lookup([10]) == [(10, 2)]
    names = sorted(p.name for p in (tmp_path / "p").iterdir() if not p.name.startswith("."))
    assert names == ["keys.2.npy", "owners.2.npy", "patches.json"]


# -- the catalog side -------------------------------------------------------------------------


def _catalog(tmp_path: Path, fingerprints: dict[int, list[int]]) -> Engine:
    """A catalog with one embedded image per entry (id -> its fingerprints), not indexed."""
    engine = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    rng = np.random.default_rng(0)
    with engine.begin() as conn:
        conn.execute(insert(pages).values(id=1, slug="p", url="http://x/p", state="fetched"))
        conn.execute(insert(files).values(id=1, page_id=1, url="http://x/a.zip", name="a.zip"))
        for ident, values in fingerprints.items():
            conn.execute(
                insert(images).values(
                    id=ident,
                    file_id=1,
                    archive_path=f"{ident}.png",
                    sha256="0" * 64,
                    width=8,
                    height=8,
                    embed_state="done",
                )
            )
            conn.execute(
                insert(embeddings).values(
                    image_id=ident,
                    model="m",
                    dim=DIM,
                    vector=encode_vector(rng.standard_normal(DIM)),
                    patches=encode_fingerprints(values),
                )
            )
    return engine


def test_index_stage_builds_the_table_and_check_repairs_it(tmp_path: Path) -> None:
    engine = _catalog(tmp_path, {1: [10, 20], 2: [20, 30], 3: []})
    table = PatchTable(tmp_path / "vectors" / "patches")
    with HnswIndex(tmp_path / "vectors", dim=DIM, model="m") as index:
        assert check(engine, index, table).clean  # nothing indexed yet: no table needed
        stats = index_vectors(engine, index, table)
        assert stats.indexed == 3 and stats.patch_table == 1
        assert sorted(table.lookup([20, 30])) == [(20, 1), (20, 2), (30, 2)]
        assert index_vectors(engine, index, table).patch_table is None  # nothing changed
        assert check(engine, index, table).clean
        # the catalog changed behind the table's back: check sees it and rebuilds
        with engine.begin() as conn:
            conn.execute(
                update(embeddings)
                .where(embeddings.c.image_id == 3)
                .values(patches=encode_fingerprints([40]))
            )
        report = check(engine, index, table, repair=True)
        assert report.patch_table_stale and report.repaired
        assert table.lookup([40]) == [(40, 3)] and check(engine, index, table).clean
        # the table's files gone: stale until rebuilt
        for entry in table.folder.glob("*.npy"):
            entry.unlink()
        fresh = PatchTable(table.folder)
        assert check(engine, index, fresh).patch_table_stale
        assert check(engine, index, fresh, repair=True).repaired
        assert check(engine, index, fresh).clean and fresh.lookup([10]) == [(10, 1)]


def test_a_version_1_catalog_is_upgraded_and_its_rows_moved(tmp_path: Path) -> None:
    owned = {1: [10, 20, BIG], 2: [20], 3: []}
    _catalog(tmp_path, owned).dispose()
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    engine = open_catalog(url)
    with engine.begin() as conn:  # what version 1 looked like: rows, no blob column
        conn.execute(text("ALTER TABLE embeddings DROP COLUMN patches"))
        conn.execute(
            text(
                "CREATE TABLE patches (hash BIGINT, image_id INTEGER, PRIMARY KEY (hash, image_id))"
            )
        )
        for ident, values in owned.items():
            for value in values:
                signed = int(np.array([value], np.uint64).view(np.int64)[0])
                conn.execute(text("INSERT INTO patches VALUES (:h, :i)"), {"h": signed, "i": ident})
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="1"))
    engine.dispose()
    engine = open_catalog(url)  # adds the column; the rows wait for the index stage
    assert has_legacy_patches(engine)
    before = _changes(engine)
    table = PatchTable(tmp_path / "vectors" / "patches")
    with HnswIndex(tmp_path / "vectors", dim=DIM, model="m") as index:
        stats = index_vectors(engine, index, table)
    assert stats.fingerprints_moved == 2 and not has_legacy_patches(engine)
    assert _changes(engine) > before
    with engine.connect() as conn:
        blobs = dict(conn.execute(select(embeddings.c.image_id, embeddings.c.patches)).all())
        version = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version"))
        assert version.scalar_one() == str(SCHEMA_VERSION)
    assert {i: decode_fingerprints(b).tolist() for i, b in blobs.items()} == {
        1: [1, 10, 20],  # keys: BIG's low 32 bits are 1
        2: [20],
        3: [],
    }
    assert sorted(table.lookup([20])) == [(20, 1), (20, 2)]


def test_a_version_2_catalog_gets_prefix_hash_indexes_that_lookups_use(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    engine = open_catalog(url)
    with engine.begin() as conn:  # as version 2 left it
        for name in ("ix_images_canonical_key", "ix_images_structure_key"):
            conn.execute(text(f"DROP INDEX {name}"))
        for column in ("canonical_sha256", "structure_sha256", "pixel_sha256"):
            conn.execute(text(f"CREATE INDEX ix_images_{column} ON images ({column})"))
        conn.execute(text("CREATE INDEX ix_files_sha256 ON files (sha256)"))
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="2"))
    engine.dispose()
    engine = open_catalog(url)
    issued: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        issued.append((args[2], args[3]))  # statement, parameters

    with engine.connect() as conn:
        indexes = text("SELECT name FROM sqlite_master WHERE type = 'index'")
        names = set(conn.execute(indexes).scalars())
        assert {"ix_images_canonical_key", "ix_images_structure_key"} <= names
        assert not {n for n in names if n.startswith("ix_") and n.endswith("sha256")} - {
            "ix_images_sha256"
        }
        for kind in ("canonical", "structure"):
            issued.clear()
            event.listen(engine, "before_cursor_execute", record)
            try:
                assert ids_by_hash(conn, kind, "0123456789ab" + "0" * 52) == []
            finally:
                event.remove(engine, "before_cursor_execute", record)
            assert len(issued) == 1
            statement, params = issued[0]
            plan = str(conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all())
            assert f"ix_images_{kind}_key" in plan
    engine.dispose()


def _changes(engine: Engine) -> int:
    with engine.connect() as conn:
        return patch_changes(conn)


def test_serve_names_an_index_older_than_the_code(tmp_path: Path, caplog: Any) -> None:
    """A version-1 data folder: one line in the log and in ``/api/stats`` until converted."""
    from ogasearch.search.service import SearchService
    from ogasearch.settings import load_settings

    _catalog(tmp_path, {1: [10]}).dispose()
    engine = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE patches (hash BIGINT, image_id INTEGER)"))
    engine.dispose()
    with caplog.at_level(logging.WARNING):
        service = SearchService(load_settings(data=tmp_path))
    try:
        line = service.index_outdated()
        assert line is not None and "ogasearch update" in line and "\n" not in line
        assert [r.getMessage() for r in caplog.records if "predates" in r.getMessage()] == [line]
    finally:
        service.close()
