"""The vector index contract, run against the embedded HNSW index.

The ``test_contract_*`` functions take the ``open_store`` fixture, which opens the backend under
test; ``tests/test_index_milvus.py`` imports the same functions and overrides the fixture to run
them against a real Milvus server and a Milvus Lite file. The other tests here are about the
embedded index only (its files, crash safety, several processes).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from ogasearch.index import (
    HnswIndex,
    IndexConflictError,
    IndexMismatchError,
    VectorIndex,
    open_index,
)
from ogasearch.index.milvus import client_args, collection_name

DIM = 32
MODEL = "test-model@v1"

OpenStore = Callable[..., VectorIndex]


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def random_unit(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    return unit(np.random.default_rng(seed).standard_normal((n, dim)))


def embedding_like(n: int, dim: int, seed: int, latent: int = 32) -> np.ndarray:
    """Random unit vectors with the structure of CNN embeddings: a low-dimensional latent space
    (about 32 dimensions) spread over ``dim`` plus noise. Uniform noise in 256-d has no
    neighbourhood structure at all, which no approximate index and no real embedder produces.
    """
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(12345).standard_normal((latent, dim))
    return unit(rng.standard_normal((n, latent)) @ basis + 0.1 * rng.standard_normal((n, dim)))


def exact_top_k(data: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ data.T
    return ids[np.argsort(-scores, axis=1, kind="stable")[:, :k]]


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[OpenStore]:
    """Opens the index under test; each call opens the *same* stored index again."""
    opened: list[VectorIndex] = []

    def _open(dim: int = DIM, model: str = MODEL) -> VectorIndex:
        index = open_index(None, tmp_path, dim, model)
        opened.append(index)
        return index

    yield _open
    for index in opened:
        with contextlib.suppress(Exception):
            index.close()


# -- the contract every backend meets ------------------------------------------------------


def test_contract_add_then_search_finds_each_vector_first(open_store: OpenStore) -> None:
    store = open_store()
    data = random_unit(300, seed=1)
    ids = np.arange(1000, 1300, dtype=np.int64)
    store.add(ids, data, np.zeros(300, dtype=bool))
    assert len(store) == 300
    assert store.ids().tolist() == ids.tolist()

    results = store.search(data[:20], k=5)
    assert len(results) == 20
    for row, hits in enumerate(results):
        assert len(hits) == 5
        assert hits[0][0] == ids[row]
        assert hits[0][1] == pytest.approx(1.0, abs=1e-4)
        scores = [score for _, score in hits]
        assert scores == sorted(scores, reverse=True)
        assert all(isinstance(i, int) and isinstance(s, float) for i, s in hits)


def test_contract_scores_are_cosine_similarities(open_store: OpenStore) -> None:
    store = open_store()
    data = random_unit(200, seed=2)
    store.add(np.arange(200), data, np.zeros(200, dtype=bool))
    query = random_unit(1, seed=3)
    (hits,) = store.search(query, k=10)
    for image_id, score in hits:
        assert score == pytest.approx(float(data[image_id] @ query[0]), abs=1e-4)
    # A query that is not unit length scores the same: the metric is cosine.
    (scaled,) = store.search(query * 7.5, k=10)
    assert [i for i, _ in scaled] == [i for i, _ in hits]
    assert [s for _, s in scaled] == pytest.approx([s for _, s in hits], abs=1e-4)


def test_contract_upsert_replaces_vector_and_flag(open_store: OpenStore) -> None:
    store = open_store()
    data = random_unit(101, seed=4)
    store.add(np.arange(100), data[:100], np.zeros(100, dtype=bool))
    old, new = data[7], data[100]

    store.add([7], new[None, :], [True])
    assert len(store) == 100
    (hits,) = store.search(new[None, :], k=1)
    assert hits[0][0] == 7
    assert hits[0][1] == pytest.approx(1.0, abs=1e-4)
    (hits,) = store.search(old[None, :], k=3)
    assert (7, pytest.approx(1.0, abs=1e-4)) not in hits
    assert [i for i, _ in store.search(new[None, :], k=5, tiles="only")[0]] == [7]
    assert 7 not in [i for i, _ in store.search(new[None, :], k=5, tiles="exclude")[0]]


def test_contract_same_id_twice_in_one_add_keeps_the_last(open_store: OpenStore) -> None:
    store = open_store()
    data = random_unit(3, seed=5)
    store.add([5, 6, 5], data, [False, False, True])
    assert len(store) == 2
    assert store.ids().tolist() == [5, 6]
    (hits,) = store.search(data[2:3], k=1, tiles="only")
    assert hits[0][0] == 5
    assert hits[0][1] == pytest.approx(1.0, abs=1e-4)


def test_contract_remove_then_re_add(open_store: OpenStore) -> None:
    store = open_store()
    data = random_unit(200, seed=6)
    ids = np.arange(200)
    store.add(ids, data, ids % 4 == 0)
    gone = np.arange(0, 200, 2)
    store.remove(gone)
    store.remove([10_000, 2])  # absent or already removed: ignored
    assert len(store) == 100
    assert store.ids().tolist() == list(range(1, 200, 2))
    for hits in store.search(data[:40], k=20):
        assert len(hits) == 20
        assert not {i for i, _ in hits} & set(gone.tolist())

    store.add([2, 300], data[[2, 3]], [False, True])
    assert len(store) == 102
    (hits,) = store.search(data[2:3], k=1)
    assert hits[0][0] == 2
    # 300 shares id 3's vector: both come back, with equal scores.
    (hits,) = store.search(data[3:4], k=2)
    assert {i for i, _ in hits} == {3, 300}


def test_contract_flush_close_reopen_keeps_everything(open_store: OpenStore) -> None:
    store = open_store()
    data = random_unit(500, seed=7)
    ids = np.arange(500) * 3 + 1
    tiles = np.arange(500) % 5 == 0
    store.add(ids, data, tiles)
    store.remove(ids[:50])
    store.flush()
    before = store.search(data[60:70], k=8)
    before_tiles = store.search(data[60:70], k=8, tiles="only")
    store.close()

    again = open_store()
    assert len(again) == 450
    assert again.ids().tolist() == sorted(ids[50:].tolist())
    assert _ids_of(again.search(data[60:70], k=8)) == _ids_of(before)
    assert _ids_of(again.search(data[60:70], k=8, tiles="only")) == _ids_of(before_tiles)
    # Still writable after reopening: removed ids come back, new ones go in.
    again.add(ids[:2], data[:2], [False, False])
    again.add([99_999], random_unit(1, seed=70), [True])
    assert len(again) == 453


def test_contract_tile_filter_returns_k_hits_when_they_exist(open_store: OpenStore) -> None:
    store = open_store()
    n = 2000
    data = random_unit(n, seed=8)
    ids = np.arange(n)
    is_tile = np.zeros(n, dtype=bool)
    is_tile[::40] = True  # 50 tiles among 2000: a rare class for the filter
    store.add(ids, data, is_tile)
    queries = random_unit(10, seed=9)

    for hits, expected in zip(
        store.search(queries, k=10, tiles="only"),
        exact_top_k(data[is_tile], ids[is_tile], queries, 10),
        strict=True,
    ):
        assert len(hits) == 10
        assert all(is_tile[i] for i, _ in hits)
        assert len({i for i, _ in hits} & set(expected.tolist())) >= 9
    for hits in store.search(queries, k=10, tiles="exclude"):
        assert len(hits) == 10
        assert not any(is_tile[i] for i, _ in hits)
    # More asked than exist: every tile, once.
    for hits in store.search(queries[:2], k=80, tiles="only"):
        assert sorted(i for i, _ in hits) == ids[is_tile].tolist()
    # Unfiltered results mix both kinds and are the true neighbours.
    for hits, expected in zip(
        store.search(queries, k=10), exact_top_k(data, ids, queries, 10), strict=True
    ):
        assert len({i for i, _ in hits} & set(expected.tolist())) >= 9


def test_contract_recall_at_10_is_at_least_095(open_store: OpenStore) -> None:
    dim = 256
    store = open_store(dim=dim, model="recall-model")
    data = embedding_like(5000, dim, seed=10)
    ids = np.arange(5000, dtype=np.int64) + 1
    store.add(ids, data, np.zeros(5000, dtype=bool))
    store.flush()
    queries = embedding_like(200, dim, seed=11)
    expected = exact_top_k(data, ids, queries, 10)
    found = store.search(queries, k=10)
    recall = np.mean(
        [
            len({i for i, _ in hits} & set(truth.tolist())) / 10
            for hits, truth in zip(found, expected, strict=True)
        ]
    )
    assert recall >= 0.95, f"recall@10 = {recall:.3f}"


def test_contract_empty_index_and_degenerate_searches(open_store: OpenStore) -> None:
    store = open_store()
    query = random_unit(3, seed=12)
    assert len(store) == 0
    assert store.ids().tolist() == []
    assert store.search(query, k=10) == [[], [], []]
    store.add(np.arange(4), random_unit(4, seed=13), [True, False, False, False])
    assert store.search(query, k=0) == [[], [], []]
    assert [len(h) for h in store.search(query, k=10)] == [4, 4, 4]
    assert [len(h) for h in store.search(query, k=10, tiles="only")] == [1, 1, 1]
    assert store.search(np.empty((0, DIM), dtype=np.float32), k=3) == []
    store.add([], np.empty((0, DIM), dtype=np.float32), [])
    store.remove([])
    assert len(store) == 4


def test_contract_batch_search_equals_single_searches(open_store: OpenStore) -> None:
    store = open_store()
    data = random_unit(400, seed=14)
    store.add(np.arange(400), data, np.arange(400) % 3 == 0)
    queries = random_unit(6, seed=15)
    batch = store.search(queries, k=7, tiles="exclude")
    singles = [store.search(q, k=7, tiles="exclude")[0] for q in queries]
    assert _ids_of(batch) == _ids_of(singles)


def test_contract_bad_input_is_rejected(open_store: OpenStore) -> None:
    store = open_store()
    good = random_unit(2, seed=16)
    with pytest.raises(ValueError, match="shape"):
        store.add([1, 2], random_unit(2, dim=DIM + 1), [False, False])
    with pytest.raises(ValueError, match=">= 0"):
        store.add([-1, 2], good, [False, False])
    with pytest.raises(ValueError, match="length"):
        store.add([1, 2, 3], good, [False, False, False])
    with pytest.raises(ValueError, match="NaN"):
        store.add([1, 2], np.full((2, DIM), np.nan, dtype=np.float32), [False, False])
    with pytest.raises(TypeError, match="integers"):
        store.add([1.5, 2.5], good, [False, False])
    with pytest.raises(ValueError, match="tiles"):
        store.search(good, k=3, tiles="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must"):
        store.search(good, k=-1)
    with pytest.raises(ValueError, match="shape"):
        store.search(random_unit(1, dim=DIM * 2), k=3)
    assert len(store) == 0


def test_contract_other_dim_for_same_model_is_refused(open_store: OpenStore) -> None:
    store = open_store(dim=DIM)
    store.add([1], random_unit(1), [False])
    store.close()
    with pytest.raises(IndexMismatchError) as info:
        open_store(dim=DIM * 2)
    message = str(info.value)
    assert f"{DIM}-d" in message
    assert f"{DIM * 2}-d" in message


def _ids_of(results: list[list[tuple[int, float]]]) -> list[list[int]]:
    return [[i for i, _ in hits] for hits in results]


# -- the embedded index only ---------------------------------------------------------------


def test_open_index_picks_the_backend_from_the_uri(tmp_path: Path) -> None:
    with open_index(None, tmp_path, DIM, MODEL) as default:
        assert isinstance(default, HnswIndex)
        assert default.folder == tmp_path / "vectors"
    with open_index(str(tmp_path / "elsewhere"), tmp_path, DIM, MODEL) as folder:
        assert isinstance(folder, HnswIndex)
        assert folder.folder == tmp_path / "elsewhere"
    with pytest.raises(ValueError, match="unknown vector index URI"):
        open_index("redis://127.0.0.1:6379", tmp_path, DIM, MODEL)


def test_milvus_uri_and_collection_names() -> None:
    assert client_args("milvus://127.0.0.1:19530") == {"uri": "http://127.0.0.1:19530"}
    assert client_args("http://db.example:19530") == {"uri": "http://db.example:19530"}
    assert client_args("https://u:p@db.example") == {
        "uri": "https://db.example:19530",
        "token": "u:p",
    }
    assert client_args("relative/vectors.db")["uri"] == str(Path("relative/vectors.db").resolve())
    assert collection_name("clip_b32") == "ogasearch_clip_b32"
    odd = collection_name("effnet-lite0@128px")
    assert odd.startswith("ogasearch_effnet_lite0_128px_")
    assert odd != collection_name("effnet_lite0_128px")
    assert collection_name("a-b") != collection_name("a.b")


def test_other_model_in_the_folder_is_refused_naming_both(tmp_path: Path) -> None:
    with open_index(None, tmp_path, DIM, "model-a") as index:
        index.add([1], random_unit(1), [False])
    with pytest.raises(IndexMismatchError) as info:
        open_index(None, tmp_path, DIM, "model-b")
    assert "'model-a'" in str(info.value)
    assert "'model-b'" in str(info.value)


def test_files_are_a_sidecar_and_one_generation(tmp_path: Path) -> None:
    folder = tmp_path / "vectors"
    index = HnswIndex(folder, DIM, MODEL)
    index.add(np.arange(10), random_unit(10), np.arange(10) % 2 == 0)
    index.flush()
    index.add([10], random_unit(1, seed=1), [False])
    index.flush()
    index.flush()  # nothing changed: no new generation
    index.close()
    names = sorted(p.name for p in folder.iterdir() if p.name != ".lock")
    assert names == ["index.json", "labels.2.npz", "tile.2.bin", "whole.2.bin"]
    sidecar = json.loads((folder / "index.json").read_text())
    assert sidecar["dim"] == DIM
    assert sidecar["model"] == MODEL
    assert sidecar["count"] == 11
    assert sidecar["generation"] == 2
    assert sidecar["M"] == 16
    assert sidecar["ef"] >= 10


def test_unflushed_changes_stay_private_until_flush(tmp_path: Path) -> None:
    folder = tmp_path / "vectors"
    writer = HnswIndex(folder, DIM, MODEL)
    data = random_unit(20, seed=2)
    writer.add(np.arange(20), data, np.zeros(20, dtype=bool))
    writer.flush()
    reader = HnswIndex(folder, DIM, MODEL)
    assert len(reader) == 20

    writer.add([20], random_unit(1, seed=3), [True])
    writer.remove([0])
    assert reader.refresh() is False  # nothing saved yet
    assert len(reader) == 20
    writer.flush()
    assert reader.refresh() is True
    assert reader.ids().tolist() == list(range(1, 21))
    assert reader.search(data[:1], k=1)[0][0][0] != 0


def test_second_writer_cannot_overwrite_the_first(tmp_path: Path) -> None:
    folder = tmp_path / "vectors"
    first = HnswIndex(folder, DIM, MODEL)
    second = HnswIndex(folder, DIM, MODEL)
    first.add([1], random_unit(1), [False])
    second.add([2], random_unit(1, seed=1), [False])
    first.flush()
    with pytest.raises(IndexConflictError, match="another process"):
        second.flush()
    first.close()
    assert HnswIndex(folder, DIM, MODEL).ids().tolist() == [1]


def test_removed_slots_are_reused(tmp_path: Path) -> None:
    """Churn (remove n, add n new) must not grow the graph: new ids take deleted slots."""
    folder = tmp_path / "vectors"
    index = HnswIndex(folder, DIM, MODEL)
    index.add(np.arange(2000), random_unit(2000, seed=1), np.zeros(2000, dtype=bool))
    index.flush()
    size_before = (folder / "whole.1.bin").stat().st_size
    for round_ in range(3):
        old = np.arange(round_ * 500, round_ * 500 + 500)
        index.remove(old)
        index.add(old + 10_000, random_unit(500, seed=10 + round_), np.zeros(500, dtype=bool))
    index.flush()
    assert len(index) == 2000
    size_after = (folder / "whole.2.bin").stat().st_size
    assert size_after < size_before * 1.1  # without reuse it would be 1.75x
    # Re-adding ids that were removed (and whose slots may have been taken) works too.
    index.add(np.arange(100), random_unit(100, seed=30), np.zeros(100, dtype=bool))
    assert len(index) == 2100
    assert set(range(100)) <= set(index.ids().tolist())


def test_kind_change_moves_an_id_between_whole_and_tiles(tmp_path: Path) -> None:
    index = HnswIndex(tmp_path / "v", DIM, MODEL)
    data = random_unit(50, seed=4)
    index.add(np.arange(50), data, np.zeros(50, dtype=bool))
    for kind in (True, False, True):
        index.add([9], data[9:10], [kind])
        assert len(index) == 50
        only = {i for hits in index.search(data[9:10], k=50, tiles="only") for i, _ in hits}
        assert (9 in only) is kind
        assert [i for i, _ in index.search(data[9:10], k=50)[0]].count(9) == 1


_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from ogasearch.index.hnsw import HnswIndex

    folder, dim = sys.argv[1], int(sys.argv[2])
    index = HnswIndex(folder, dim, "crash-model")
    rng = np.random.default_rng(99)
    new = rng.standard_normal((4000, dim)).astype(np.float32)
    index.add(np.arange(10_000, 14_000), new, np.arange(4000) % 3 == 0)
    index.remove(np.arange(0, 1000))
    print("flushing", flush=True)
    index.flush()
    print("flushed", flush=True)
    """
)


@pytest.mark.slow
def test_kill_during_flush_leaves_the_previous_or_the_new_index(tmp_path: Path) -> None:
    """SIGKILL a writer the moment a given file of its flush appears; reopening then finds
    either the complete old index or the complete new one, never a mix or an error."""
    dim = 128
    old_ids = list(range(6000))
    new_ids = list(range(1000, 6000)) + list(range(10_000, 14_000))
    outcomes: list[str] = []
    stages = ["whole.2.bin.tmp", "tile.2.bin.tmp", "labels.2.npz.tmp", "index.json.tmp", None]
    for trial, stage in enumerate(stages):
        folder = tmp_path / f"trial{trial}"
        seed = HnswIndex(folder, dim, "crash-model", m=8, ef_construction=40)
        seed.add(old_ids, random_unit(6000, dim=dim, seed=1), np.arange(6000) % 3 == 0)
        seed.close()

        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(folder), str(dim)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "flushing"
            if stage is None:
                assert child.stdout.readline().strip() == "flushed"
            else:
                deadline = time.monotonic() + 60
                while not (folder / stage).exists() and child.poll() is None:
                    assert time.monotonic() < deadline, f"{stage} never appeared"
            child.send_signal(signal.SIGKILL)  # a no-op if the flush was quicker than the poll
        finally:
            child.kill()
            child.wait()

        reopened = HnswIndex(folder, dim, "crash-model")
        ids = reopened.ids().tolist()
        assert ids in (old_ids, sorted(new_ids)), f"trial {trial} ({stage}): mixed state"
        outcomes.append("old" if ids == old_ids else "new")
        (hits,) = reopened.search(random_unit(1, dim=dim, seed=1), k=5)
        assert len(hits) == 5
        reopened.add([777_777], random_unit(1, dim=dim, seed=5), [False])
        reopened.close()  # a later flush cleans up what the killed one left
        assert not list(folder.glob("*.tmp"))
        assert HnswIndex(folder, dim, "crash-model").generation == (
            2 if outcomes[-1] == "old" else 3
        )
    # Some kills must have landed before the switch (the first file takes milliseconds to
    # write), and the run left alone must end in the new state.
    assert "old" in outcomes[:-1]
    assert outcomes[-1] == "new"
