"""The vector index in Milvus (a server, a cluster, or a Milvus Lite file), through pymilvus.

One collection per model, named after it, so that switching models never mixes two vector
spaces; its schema is the whole contract:

    id       INT64 primary key   the catalog's image id
    vector   FLOAT_VECTOR(dim)   HNSW index, COSINE metric
    is_tile  BOOL                filtered with a boolean expression

Reads see this client's own writes, as with the embedded index: a read within a few seconds of
this client's last upsert or delete (or of its opening) uses Strong consistency, any other read
Bounded staleness (other processes' writes show up within Milvus' graceful time, 5 s by
default). Measured on a 2-core machine against Milvus 2.3.5: Strong 220 ms per search, Bounded
2 ms. Session consistency, meant for exactly this, missed this client's deletes there (pymilvus
3.0.2 does not track their timestamps), so it is not used.

Milvus makes inserts durable in its own log when the call returns; ``flush`` additionally seals
the growing segments so they get indexed, and is skipped when this client wrote nothing since
its last flush.
"""

from __future__ import annotations

import hashlib
import re
import time
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

from ogasearch.index.base import (
    Hit,
    IndexMismatchError,
    TileFilter,
    VectorIndex,
    VectorIndexError,
)

# Same graph and beam as the embedded index, so the two differ only by where they run.
HNSW_PARAMS = {"M": 16, "efConstruction": 200}
DEFAULT_EF = 128
# Rows per upsert request: 256-d float vectors stay far below gRPC's 64 MiB message limit.
UPSERT_BATCH = 2_000
# Ids per delete request (the expression ``id in [...]`` grows with it) and per query page
# (Milvus answers at most 16384 rows per query).
DELETE_BATCH = 10_000
ID_PAGE = 10_000
# Query vectors per search request (Milvus' limit on nq is 16384).
SEARCH_BATCH = 1_000

# Milvus' default common.gracefulTime is 5 s: older writes are visible to Bounded reads.
STRONG_READS_AFTER_WRITE_S = 6.0

_TILE_EXPR = {None: "", "only": "is_tile == true", "exclude": "is_tile == false"}


def collection_name(model: str) -> str:
    """A valid Milvus collection name for ``model``: ``ogasearch_`` + the name, sanitised.

    Milvus allows letters, digits and ``_``. When sanitising changes the name, a short hash of
    the exact model name is appended so that two models can never share a collection.
    """
    clean = re.sub(r"[^A-Za-z0-9_]", "_", model)
    name = f"ogasearch_{clean}"[:200]
    if clean != model:
        name += "_" + hashlib.sha256(model.encode("utf-8")).hexdigest()[:8]
    return name


def client_args(uri: str) -> dict[str, str]:
    """``MilvusClient`` arguments for an ogasearch vectors URI.

    ``milvus://host:port`` means ``http://host:port``; ``user:password@`` in a URL becomes the
    token; a path ending in ``.db`` is a Milvus Lite file (made absolute).
    """
    if uri.lower().endswith(".db") and "://" not in uri:
        from pathlib import Path

        return {"uri": str(Path(uri).expanduser().resolve())}
    parts = urlsplit(uri)
    scheme = "http" if parts.scheme.lower() == "milvus" else parts.scheme.lower()
    args: dict[str, str] = {}
    netloc = parts.netloc
    if "@" in netloc:
        credentials, netloc = netloc.rsplit("@", 1)
        args["token"] = credentials
    if parts.port is None and scheme in ("http", "https") and netloc:
        netloc += ":19530"
    args["uri"] = urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))
    return args


class MilvusIndex(VectorIndex):
    """Vectors of one model in one Milvus collection (created on first open)."""

    def __init__(self, uri: str, dim: int, model: str, *, ef: int = DEFAULT_EF) -> None:
        try:
            from pymilvus import MilvusClient
        except ImportError as exc:  # pragma: no cover - pymilvus is an optional extra
            raise VectorIndexError(
                "a Milvus vector index needs pymilvus: pip install 'ogasearch[milvus]'"
            ) from exc
        self.uri = uri
        self.dim = dim
        self.model = model
        self.ef = ef
        self.collection = collection_name(model)
        self.id_page = ID_PAGE
        try:
            self._client = MilvusClient(**client_args(uri))
        except Exception as exc:
            raise VectorIndexError(f"cannot connect to Milvus at {uri!r}: {exc}") from exc
        try:
            if self._client.has_collection(self.collection):
                self._check_schema()
                self._client.load_collection(self.collection)
            else:
                self._create()
        except BaseException:
            self._client.close()
            raise
        self._closed = False
        self._dirty = False
        # Reads in the first seconds are Strong too, so that whatever was written before this
        # client opened (by a process that just finished, say) is seen, as with a reopened file.
        self._last_write = time.monotonic()

    def _create(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(
            auto_id=False,
            enable_dynamic_field=False,
            description=f"ogasearch image vectors of model {self.model}"[:250],
        )
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("is_tile", DataType.BOOL)
        index_params = self._client.prepare_index_params()
        index_params.add_index(
            field_name="vector", index_type="HNSW", metric_type="COSINE", params=HNSW_PARAMS
        )
        self._client.create_collection(
            self.collection,
            schema=schema,
            index_params=index_params,
            consistency_level="Bounded",
        )

    def _check_schema(self) -> None:
        info = self._client.describe_collection(self.collection)
        fields = {f["name"]: f for f in info.get("fields", [])}
        if not {"id", "vector", "is_tile"} <= fields.keys():
            raise VectorIndexError(
                f"Milvus collection {self.collection!r} at {self.uri} was not made by ogasearch "
                f"(fields: {sorted(fields)})"
            )
        stored_dim = int(fields["vector"].get("params", {}).get("dim", -1))
        if stored_dim != self.dim:
            raise IndexMismatchError(
                f"Milvus collection {self.collection!r} at {self.uri} holds {stored_dim}-d "
                f"vectors of model {self.model!r}, but {self.dim}-d vectors of model "
                f"{self.model!r} were asked for; drop the collection to rebuild it"
            )

    # -- the interface --------------------------------------------------------------------

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike, is_tile: npt.ArrayLike) -> None:
        id_arr, vec, tile = self._check_add(ids, vectors, is_tile)
        self._check_open()
        for start in range(0, len(id_arr), UPSERT_BATCH):
            stop = start + UPSERT_BATCH
            rows = [
                {"id": i, "vector": v, "is_tile": t}
                for i, v, t in zip(
                    id_arr[start:stop].tolist(),
                    vec[start:stop].tolist(),
                    tile[start:stop].tolist(),
                    strict=True,
                )
            ]
            self._client.upsert(self.collection, rows)
            self._wrote()

    def remove(self, ids: npt.ArrayLike) -> None:
        id_arr = self._check_ids(ids)
        self._check_open()
        for start in range(0, len(id_arr), DELETE_BATCH):
            batch = id_arr[start : start + DELETE_BATCH].tolist()
            if batch:
                self._client.delete(self.collection, ids=batch)
                self._wrote()

    def search(self, queries: npt.ArrayLike, k: int, tiles: TileFilter = None) -> list[list[Hit]]:
        self._check_search(k, tiles)
        q = self._check_vectors(queries, "queries")
        self._check_open()
        if k == 0 or not len(q):
            return [[] for _ in range(len(q))]
        results: list[list[Hit]] = []
        params = {"metric_type": "COSINE", "params": {"ef": max(self.ef, k)}}
        for start in range(0, len(q), SEARCH_BATCH):
            found = self._client.search(
                self.collection,
                data=q[start : start + SEARCH_BATCH].tolist(),
                filter=_TILE_EXPR[tiles],
                limit=k,
                output_fields=["id"],
                search_params=params,
                consistency_level=self._consistency(),
            )
            for hits in found:
                row = [(int(h["id"]), min(1.0, max(-1.0, float(h["distance"])))) for h in hits]
                row.sort(key=lambda hit: -hit[1])
                results.append(row)
        return results

    def ids(self) -> np.ndarray:
        """All ids, a page at a time by primary-key cursor (``id > last``).

        This is what pymilvus' own query iterator does, with the same request flags that make
        Milvus answer in key order; the iterator itself read a stale snapshot against Milvus
        2.3.5, so it is not used. Should the pages not add up to ``count(*)`` (a Milvus that
        ignores the flags), the ids are fetched again range by range, which relies on nothing
        but the filter, only slower.
        """
        self._check_open()
        total = len(self)
        found: list[int] = []
        last = -1
        while True:
            page = self._query_ids(f"id > {last}", in_key_order=True)
            if not page:
                break
            found.extend(page)
            last = max(page)
        if len(found) != total or len(set(found)) != total:
            found = self._ids_by_ranges()
        return np.sort(np.asarray(found, dtype=np.int64))

    def _ids_by_ranges(self) -> list[int]:
        found: list[int] = []
        ranges = [(0, (1 << 63) - 1)]  # inclusive bounds: every id >= 0 an INT64 can hold
        while ranges:
            low, high = ranges.pop()
            expr = f"id >= {low} and id <= {high}"
            count = self._count(expr)
            if count == 0:
                continue
            if count <= self.id_page or high - low < self.id_page:
                found.extend(self._query_ids(expr))
            else:
                middle = low + (high - low) // 2
                ranges += [(middle + 1, high), (low, middle)]
        return found

    def _query_ids(self, expr: str, in_key_order: bool = False) -> list[int]:
        flags = {"iterator": "True", "reduce_stop_for_best": "True"} if in_key_order else {}
        rows = self._client.query(
            self.collection,
            filter=expr,
            output_fields=["id"],
            limit=self.id_page,
            consistency_level=self._consistency(),
            **flags,
        )
        return [int(row["id"]) for row in rows]

    def _count(self, expr: str) -> int:
        rows = self._client.query(
            self.collection,
            filter=expr,
            output_fields=["count(*)"],
            consistency_level=self._consistency(),
        )
        return int(rows[0]["count(*)"])

    def __len__(self) -> int:
        self._check_open()
        return self._count("")

    def flush(self) -> None:
        self._check_open()
        if self._dirty:
            self._client.flush(self.collection)
            self._dirty = False

    def wait_indexed(self, timeout: float = 600.0) -> None:
        """Block until Milvus has built its index over every row (after ``flush``).

        After a bulk load Milvus builds the HNSW index in the background, and searches scan
        the rows it has not indexed yet: measured on Milvus Lite at 100k rows, 0.5 s a search
        until the build finished. Call this after a bulk load, before serving.
        """
        self._check_open()
        deadline = time.monotonic() + timeout
        while True:
            names = self._client.list_indexes(self.collection)
            info = self._client.describe_index(self.collection, index_name=names[0])
            if int(info.get("pending_index_rows", 0)) == 0 and int(
                info.get("indexed_rows", 0)
            ) >= int(info.get("total_rows", 0)):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Milvus has not indexed {self.collection!r} in {timeout:.0f} s: {info}"
                )
            time.sleep(0.5)

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._client.close()

    def _wrote(self) -> None:
        self._dirty = True
        self._last_write = time.monotonic()

    def _consistency(self) -> str:
        recent = time.monotonic() - self._last_write < STRONG_READS_AFTER_WRITE_S
        return "Strong" if recent else "Bounded"

    def __repr__(self) -> str:
        return f"MilvusIndex({self.uri!r}, collection={self.collection!r}, dim={self.dim})"

    def _check_open(self) -> None:
        if self._closed:
            raise VectorIndexError(f"{self!r} is closed")
