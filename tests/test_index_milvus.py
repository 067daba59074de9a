"""The vector index contract (``tests/test_index.py``) against real Milvus.

The same ``test_contract_*`` functions run twice more, through an ``open_store`` fixture that
opens a ``MilvusIndex``: on a Milvus standalone server (the ``milvus`` PyPI package, started
once per session on a free loopback port by ``milvus_server_uri`` in ``conftest.py``) and on a
Milvus Lite file (``milvus-lite``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ogasearch.index import VectorIndex, open_index
from ogasearch.index.milvus import MilvusIndex, collection_name
from test_index import (  # the shared contract: collected here again, against Milvus
    DIM,
    MODEL,
    OpenStore,
    random_unit,
    test_contract_add_then_search_finds_each_vector_first,
    test_contract_bad_input_is_rejected,
    test_contract_batch_search_equals_single_searches,
    test_contract_empty_index_and_degenerate_searches,
    test_contract_flush_close_reopen_keeps_everything,
    test_contract_other_dim_for_same_model_is_refused,
    test_contract_recall_at_10_is_at_least_095,
    test_contract_remove_then_re_add,
    test_contract_same_id_twice_in_one_add_keeps_the_last,
    test_contract_scores_are_cosine_similarities,
    test_contract_tile_filter_returns_k_hits_when_they_exist,
    test_contract_upsert_replaces_vector_and_flag,
)

# Slow as well: each test creates a collection (3-5 s on a Milvus server on 2 cores).
pytestmark = [pytest.mark.milvus, pytest.mark.slow]

__all__ = [
    "test_contract_add_then_search_finds_each_vector_first",
    "test_contract_bad_input_is_rejected",
    "test_contract_batch_search_equals_single_searches",
    "test_contract_empty_index_and_degenerate_searches",
    "test_contract_flush_close_reopen_keeps_everything",
    "test_contract_other_dim_for_same_model_is_refused",
    "test_contract_recall_at_10_is_at_least_095",
    "test_contract_remove_then_re_add",
    "test_contract_same_id_twice_in_one_add_keeps_the_last",
    "test_contract_scores_are_cosine_similarities",
    "test_contract_tile_filter_returns_k_hits_when_they_exist",
    "test_contract_upsert_replaces_vector_and_flag",
]


def _drop_ogasearch_collections(uri: str) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    try:
        for name in client.list_collections():
            if name.startswith("ogasearch_"):
                client.drop_collection(name)
    finally:
        client.close()


@pytest.fixture(params=["server", "lite"])
def milvus_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A Milvus to test against, with no ogasearch collection in it yet."""
    if request.param == "server":
        uri = request.getfixturevalue("milvus_server_uri")
    else:
        try:
            import milvus_lite  # noqa: F401
        except ImportError as exc:
            pytest.skip(f"Milvus Lite is not installed ({exc})")
        uri = str(tmp_path / "vectors.db")
    _drop_ogasearch_collections(uri)
    yield uri
    _drop_ogasearch_collections(uri)


@pytest.fixture
def open_store(milvus_uri: str, tmp_path: Path) -> Iterator[OpenStore]:
    """Overrides test_index's fixture: the shared contract tests open Milvus instead."""
    opened: list[VectorIndex] = []

    def _open(dim: int = DIM, model: str = MODEL) -> VectorIndex:
        index = open_index(milvus_uri, tmp_path, dim, model)
        assert isinstance(index, MilvusIndex)
        opened.append(index)
        return index

    yield _open
    for index in opened:
        with contextlib.suppress(Exception):
            index.close()


# -- Milvus only ---------------------------------------------------------------------------


def test_collection_has_the_documented_schema(milvus_uri: str, tmp_path: Path) -> None:
    from pymilvus import DataType, MilvusClient

    with open_index(milvus_uri, tmp_path, DIM, "schema-check/v2") as index:
        index.add([1], random_unit(1), [True])
    client = MilvusClient(uri=milvus_uri)
    try:
        name = collection_name("schema-check/v2")
        assert name in client.list_collections()
        fields = {f["name"]: f for f in client.describe_collection(name)["fields"]}
        assert fields["id"]["type"] == DataType.INT64
        assert fields["id"]["is_primary"]
        assert fields["vector"]["type"] == DataType.FLOAT_VECTOR
        assert int(fields["vector"]["params"]["dim"]) == DIM
        assert fields["is_tile"]["type"] == DataType.BOOL
        rows = client.query(name, filter="id == 1", output_fields=["id", "is_tile"])
        assert [(r["id"], r["is_tile"]) for r in rows] == [(1, True)]
    finally:
        client.close()


def test_models_get_separate_collections(open_store: OpenStore) -> None:
    first = open_store(model="model-a")
    second = open_store(model="model-b")
    first.add(np.arange(5), random_unit(5, seed=1), np.zeros(5, dtype=bool))
    second.add(np.arange(100, 103), random_unit(3, seed=2), np.zeros(3, dtype=bool))
    assert first.ids().tolist() == [0, 1, 2, 3, 4]
    assert second.ids().tolist() == [100, 101, 102]


def test_ids_pages_through_more_than_one_query_page(open_store: OpenStore) -> None:
    store = open_store()
    n = 25_000  # more than two ID_PAGE pages, spread over sealed and growing segments
    ids = np.random.default_rng(3).permutation(np.arange(n, dtype=np.int64) * 7 + 3)
    data = random_unit(n, seed=3)
    store.add(ids[: n // 2], data[: n // 2], np.zeros(n // 2, dtype=bool))
    store.flush()
    store.add(ids[n // 2 :], data[n // 2 :], np.ones(n - n // 2, dtype=bool))
    store.remove(ids[:100])
    assert len(store) == n - 100
    assert store.ids().tolist() == sorted(ids[100:].tolist())


def test_ids_fallback_by_ranges_finds_every_id(open_store: OpenStore) -> None:
    """The slow path ``ids`` takes if Milvus ignores the key-order flags: bisecting id ranges."""
    store = open_store()
    assert isinstance(store, MilvusIndex)
    store.id_page = 500
    ids = np.random.default_rng(4).choice(1 << 40, size=1800, replace=False)
    store.add(ids, random_unit(1800, seed=4), np.zeros(1800, dtype=bool))
    assert sorted(store._ids_by_ranges()) == sorted(ids.tolist())
    assert store.ids().tolist() == sorted(ids.tolist())


def test_wait_indexed_returns_once_milvus_has_indexed_every_row(open_store: OpenStore) -> None:
    store = open_store()
    assert isinstance(store, MilvusIndex)
    for start, n in ((0, 100), (100, 3000)):  # a segment too small to index, then a big one
        store.add(np.arange(start, start + n), random_unit(n, seed=n), np.zeros(n, dtype=bool))
        store.flush()
        store.wait_indexed(timeout=300)
    assert len(store) == 3100
