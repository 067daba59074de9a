"""The embedded vector index: hnswlib HNSW graphs in a folder of the data directory.

Why two graphs: whole images and tiles live in separate HNSW graphs ("parts"). The search's one
vector-level filter is "tiles only" / "whole images only", and hnswlib can only filter through a
Python callback run on every visited node: measured at 30k x 256-d, a filter that passes 5% of
the vectors made a search 16 times slower (4.3 ms instead of 0.26 ms) and even a 95% filter
nearly doubled it. With two graphs a filtered search touches one graph with no callback, and an
unfiltered one searches both and merges the two exact top-k lists.

Files in the folder (all written atomically: temp file, fsync, rename):

    index.json              sidecar: dim, model, params, count, and the generation in use
    whole.<gen>.bin         hnswlib graph of whole images      } the files of generation <gen>;
    tile.<gen>.bin          hnswlib graph of tiles             } a flush writes generation
    labels.<gen>.npz        live ids of each graph             } <gen>+1 beside them

A flush writes the new generation's files first and switches ``index.json`` to them last, so a
kill at any moment leaves ``index.json`` naming a complete generation: the previous one until
the rename, the new one after it. Old generations and stray temp files are removed once the
switch is durable. An advisory lock (``flock`` on ``.lock``) keeps a reader from loading while
a writer switches generations, and the generation number stops two writers from silently
overwriting each other's work.

Removal marks a node deleted (it stays in the graph, so the graph stays connected); adding a new
id reuses a deleted node's slot (``replace_deleted``), so an index with churn does not grow
without bound. Re-adding a deleted id un-deletes and updates its own node instead, because
hnswlib's slot reuse must never give one id two nodes.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np
import numpy.typing as npt

from ogasearch.index.base import (
    Hit,
    IndexConflictError,
    IndexMismatchError,
    TileFilter,
    VectorIndex,
    VectorIndexError,
)
from ogasearch.index.files import atomic_write, folder_lock

FORMAT = 1
SIDECAR = "index.json"
LOCK = ".lock"
PARTS = ("whole", "tile")

# Graph degree and build beam: hnswlib's usual defaults, good for embedding-like data.
DEFAULT_M = 16
DEFAULT_EF_CONSTRUCTION = 200
# Search beam: recall@10 >= 0.95 on embedding-like 256-d data up to 100k vectors with M=16
# (see bench/bench_vector_stores.py and docs/benchmarks.md); raised to k when k is larger.
DEFAULT_EF = 128
INITIAL_CAPACITY = 1024

_GENERATION_FILE = re.compile(r"^(whole|tile|labels)\.(\d+)\.(bin|npz)$")


@dataclass
class _Part:
    """One hnswlib graph and the ids live in it (``deleted``: ids still in the graph, marked)."""

    graph: hnswlib.Index
    live: set[int] = field(default_factory=set)
    deleted: set[int] = field(default_factory=set)

    @classmethod
    def empty(cls, dim: int, m: int, ef_construction: int) -> _Part:
        graph = hnswlib.Index(space="cosine", dim=dim)
        graph.init_index(
            max_elements=INITIAL_CAPACITY,
            M=m,
            ef_construction=ef_construction,
            allow_replace_deleted=True,
        )
        return cls(graph)

    @classmethod
    def load(cls, dim: int, path: Path, live: np.ndarray) -> _Part:
        graph = hnswlib.Index(space="cosine", dim=dim)
        graph.load_index(str(path), allow_replace_deleted=True)
        live_set = set(live.tolist())
        present = set(graph.get_ids_list())
        if not live_set <= present:
            raise VectorIndexError(f"{path}: the label list names ids the graph does not hold")
        return cls(graph, live_set, present - live_set)

    def upsert(self, ids: np.ndarray, vectors: np.ndarray, num_threads: int) -> None:
        update: list[int] = []
        fresh: list[int] = []
        for row, label in enumerate(ids.tolist()):
            if label in self.live:
                update.append(row)
            elif label in self.deleted:
                self.deleted.discard(label)
                try:
                    self.graph.unmark_deleted(label)
                except RuntimeError:  # its slot was reused by another id meanwhile
                    fresh.append(row)
                else:
                    update.append(row)
            else:
                fresh.append(row)
        if update:
            rows = np.asarray(update)
            self.graph.add_items(vectors[rows], ids[rows], num_threads=num_threads)
        if fresh:
            rows = np.asarray(fresh)
            needed = self.graph.get_current_count() + len(rows)
            capacity = self.graph.get_max_elements()
            if needed > capacity:
                self.graph.resize_index(max(needed, 2 * capacity))
            self.graph.add_items(
                vectors[rows], ids[rows], num_threads=num_threads, replace_deleted=True
            )
        self.live.update(ids.tolist())

    def remove(self, label: int) -> None:
        self.graph.mark_deleted(label)
        self.live.discard(label)
        self.deleted.add(label)

    def search(
        self, queries: np.ndarray, k: int, ef: int, num_threads: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Labels and cosine similarities, (n, k) each; ``k`` must be <= ``len(self.live)``."""
        self.graph.set_ef(max(ef, k))
        try:
            labels, distances = self.graph.knn_query(queries, k=k, num_threads=num_threads)
        except RuntimeError:
            # hnswlib found fewer than k live nodes (possible after heavy deletion in a tiny
            # graph); fall back to an exact scan rather than return fewer hits than exist.
            return self._exact(queries, k)
        return labels.astype(np.int64), np.clip(1.0 - distances, -1.0, 1.0)

    def _exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.fromiter(self.live, dtype=np.int64, count=len(self.live))
        stored = np.asarray(self.graph.get_items(ids), dtype=np.float32)  # unit length
        norms = np.linalg.norm(queries, axis=1, keepdims=True)
        scores = np.clip((queries / np.where(norms == 0, 1, norms)) @ stored.T, -1.0, 1.0)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return ids[order], np.take_along_axis(scores, order, axis=1)


class HnswIndex(VectorIndex):
    """The embedded index in ``folder``; created empty when the folder holds none yet."""

    def __init__(
        self,
        folder: Path,
        dim: int,
        model: str,
        *,
        m: int = DEFAULT_M,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        ef: int | None = None,
        num_threads: int = -1,
    ) -> None:
        self.folder = Path(folder)
        self.dim = dim
        self.model = model
        self.num_threads = num_threads
        self._mutex = threading.RLock()
        self._closed = False
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._file_lock(exclusive=False):
            sidecar = self._read_sidecar()
            if sidecar is None:
                self.m, self.ef_construction = m, ef_construction
                self.ef = ef or DEFAULT_EF
                self._generation = 0
                self._parts = {name: _Part.empty(dim, m, ef_construction) for name in PARTS}
                self._dirty = False
            else:
                self._check_sidecar(sidecar)
                self.ef = ef or int(sidecar.get("ef", DEFAULT_EF))
                self._load(sidecar)

    # -- the interface --------------------------------------------------------------------

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike, is_tile: npt.ArrayLike) -> None:
        id_arr, vec, tile = self._check_add(ids, vectors, is_tile)
        if not len(id_arr):
            return
        with self._mutex:
            self._check_open()
            for name, mask in (("whole", ~tile), ("tile", tile)):
                other = self._parts["tile" if name == "whole" else "whole"]
                part_ids = id_arr[mask]
                if not len(part_ids):
                    continue
                # An id that changes kind leaves the other graph first.
                for label in part_ids.tolist():
                    if label in other.live:
                        other.remove(label)
                self._parts[name].upsert(part_ids, vec[mask], self.num_threads)
            self._dirty = True

    def remove(self, ids: npt.ArrayLike) -> None:
        id_arr = self._check_ids(ids)
        with self._mutex:
            self._check_open()
            for label in id_arr.tolist():
                for part in self._parts.values():
                    if label in part.live:
                        part.remove(label)
                        self._dirty = True

    def search(self, queries: npt.ArrayLike, k: int, tiles: TileFilter = None) -> list[list[Hit]]:
        self._check_search(k, tiles)
        q = self._check_vectors(queries, "queries")
        names = {None: PARTS, "only": ("tile",), "exclude": ("whole",)}[tiles]
        threads = 1 if len(q) == 1 else self.num_threads
        with self._mutex:
            self._check_open()
            found = []
            for name in names:
                part = self._parts[name]
                kk = min(k, len(part.live))
                if kk and len(q):
                    found.append(part.search(q, kk, self.ef, threads))
        results: list[list[Hit]] = []
        for row in range(len(q)):
            hits: list[Hit] = []
            for labels, scores in found:
                hits.extend(zip(labels[row].tolist(), scores[row].tolist(), strict=True))
            if len(found) > 1:
                hits.sort(key=lambda hit: -hit[1])
                del hits[k:]
            results.append(hits)
        return results

    def ids(self) -> np.ndarray:
        with self._mutex:
            live = [*self._parts["whole"].live, *self._parts["tile"].live]
        return np.sort(np.asarray(live, dtype=np.int64))

    def __len__(self) -> int:
        with self._mutex:
            return sum(len(part.live) for part in self._parts.values())

    def flush(self) -> None:
        with self._mutex:
            self._check_open()
            if not self._dirty:
                return
            with self._file_lock(exclusive=True):
                on_disk = self._read_sidecar()
                disk_generation = int(on_disk["generation"]) if on_disk else 0
                if disk_generation != self._generation:
                    raise IndexConflictError(
                        f"the vector index in {self.folder} was saved by another process "
                        f"(generation {disk_generation}, this one loaded {self._generation}); "
                        "only one process may write it at a time: reopen and redo the changes"
                    )
                self._save(self._generation + 1)
            self._dirty = False

    def close(self) -> None:
        with self._mutex:
            if self._closed:
                return
            self.flush()
            self._closed = True
            self._parts = {}

    def refresh(self) -> bool:
        with self._mutex:
            self._check_open()
            with self._file_lock(exclusive=False):
                sidecar = self._read_sidecar()
                if sidecar is None or int(sidecar["generation"]) == self._generation:
                    return False
                if self._dirty:
                    raise IndexConflictError(
                        f"the vector index in {self.folder} changed on disk while this process "
                        "holds unsaved changes"
                    )
                self._check_sidecar(sidecar)
                self._load(sidecar)
                return True

    @property
    def generation(self) -> int:
        """The saved generation this index was loaded from or last flushed as (0: never)."""
        return self._generation

    def __repr__(self) -> str:
        return f"HnswIndex({str(self.folder)!r}, dim={self.dim}, model={self.model!r})"

    # -- persistence ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise VectorIndexError(f"{self!r} is closed")

    def _check_sidecar(self, sidecar: dict[str, Any]) -> None:
        if int(sidecar.get("format", -1)) != FORMAT:
            raise VectorIndexError(
                f"{self.folder / SIDECAR}: unknown format {sidecar.get('format')!r} "
                f"(this version reads format {FORMAT})"
            )
        stored_dim, stored_model = int(sidecar["dim"]), str(sidecar["model"])
        if stored_dim != self.dim or stored_model != self.model:
            raise IndexMismatchError(
                f"the vector index in {self.folder} holds {stored_dim}-d vectors of model "
                f"{stored_model!r}, but {self.dim}-d vectors of model {self.model!r} were asked "
                f"for; use another folder (or delete this one to rebuild it)"
            )

    def _read_sidecar(self) -> dict[str, Any] | None:
        try:
            text = (self.folder / SIDECAR).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise VectorIndexError(f"{self.folder / SIDECAR} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise VectorIndexError(f"{self.folder / SIDECAR} is not a JSON object")
        return data

    def _load(self, sidecar: dict[str, Any]) -> None:
        files = sidecar["files"]
        with np.load(self.folder / files["labels"]) as labels:
            parts = {
                name: _Part.load(self.dim, self.folder / files[name], labels[name])
                for name in PARTS
            }
        count = sum(len(p.live) for p in parts.values())
        if count != int(sidecar["count"]):
            raise VectorIndexError(
                f"{self.folder}: {SIDECAR} says {sidecar['count']} vectors, files hold {count}"
            )
        self.m = int(sidecar["M"])
        self.ef_construction = int(sidecar["ef_construction"])
        self._parts = parts
        self._generation = int(sidecar["generation"])
        self._dirty = False

    def _save(self, generation: int) -> None:
        files = {name: f"{name}.{generation}.bin" for name in PARTS}
        files["labels"] = f"labels.{generation}.npz"
        for name in PARTS:
            atomic_write(self.folder / files[name], partial(_save_graph, self._parts[name].graph))

        def write_labels(tmp: Path) -> None:
            with tmp.open("wb") as fh:
                np.savez(
                    fh,
                    allow_pickle=False,
                    **{
                        name: np.sort(np.fromiter(part.live, dtype=np.int64))
                        for name, part in self._parts.items()
                    },
                )

        atomic_write(self.folder / files["labels"], write_labels)
        sidecar = {
            "format": FORMAT,
            "dim": self.dim,
            "model": self.model,
            "space": "cosine",
            "count": sum(len(p.live) for p in self._parts.values()),
            "M": self.m,
            "ef_construction": self.ef_construction,
            "ef": self.ef,
            "generation": generation,
            "files": files,
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "hnswlib": getattr(hnswlib, "__version__", "0.8"),
        }
        payload = (json.dumps(sidecar, indent=2) + "\n").encode("utf-8")
        atomic_write(self.folder / SIDECAR, lambda tmp: tmp.write_bytes(payload))
        self._generation = generation
        self._remove_stale(keep=set(files.values()))

    def _remove_stale(self, keep: set[str]) -> None:
        """Delete other generations' files and temp files left by an interrupted flush."""
        for entry in self.folder.iterdir():
            stale_generation = _GENERATION_FILE.match(entry.name) and entry.name not in keep
            if stale_generation or entry.name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()

    def _file_lock(self, exclusive: bool) -> contextlib.AbstractContextManager[None]:
        return folder_lock(self.folder / LOCK, exclusive)


def _save_graph(graph: hnswlib.Index, path: Path) -> None:
    graph.save_index(str(path))
