"""The workspace: what every command works on, opened lazily from the settings.

One ``Workspace`` per process. It owns the catalog engine, the blob store, the polite HTTP client,
the feature extractor, the vector index and the patch table, opens each on first use, and closes
them in reverse order. Both paths use it: the write path (``ogasearch.pipeline`` and its stages)
and the read path (``ogasearch.search``, ``ogasearch.web``); it imports no stage module. The read
path opens it with ``create=False``: then a missing data folder or catalog raises
``DataFolderMissing`` / ``CatalogMissing`` instead of being created empty.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine

from ogasearch.catalog import CatalogMissing, masked_url, open_catalog
from ogasearch.crawl.http import PoliteClient
from ogasearch.embed import extractors
from ogasearch.embed.codec import CodedExtractor
from ogasearch.embed.compact import load_codec
from ogasearch.embed.extractors import FeatureExtractor, get_extractor
from ogasearch.index import VectorIndex, open_index
from ogasearch.index.base import is_milvus_uri
from ogasearch.index.patches import PatchTable
from ogasearch.settings import Settings
from ogasearch.store.blobs import BlobStore


class DataFolderMissing(CatalogMissing):
    """The data folder does not exist, and the command may not create it."""


@dataclass
class Workspace:
    """Settings plus the catalog, the blob store, the site client, the model and the index.

    ``create=False``: create nothing; the data folder and the catalog must exist.
    """

    settings: Settings
    create: bool = True
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @cached_property
    def engine(self) -> Engine:
        data = self.settings.data
        if self.create:
            data.mkdir(parents=True, exist_ok=True)
        elif not data.is_dir():
            raise DataFolderMissing(
                f"no data folder {data}: give the folder `ogasearch update` built with --data"
                " (or OGASEARCH_DATA)"
            )
        engine = open_catalog(self.settings.catalog_url, create=self.create)
        self._closers.append(engine.dispose)
        return engine

    @cached_property
    def store(self) -> BlobStore:
        return BlobStore(self.settings.store_dir)

    @cached_property
    def client(self) -> PoliteClient:
        client = PoliteClient(self.settings)
        self._closers.append(client.close)
        return client

    @cached_property
    def model(self) -> FeatureExtractor:
        """The feature extractor itself: full vectors (what a codec is fitted on)."""
        return get_extractor(self.settings.extractor, self.settings.models_dir)

    @cached_property
    def extractor(self) -> FeatureExtractor:
        """The vectors this data folder stores, indexes and searches: the model's, projected
        by the codec fitted on this catalog (``embed.codec``), or full until there is one."""
        codec = load_codec(self.engine, self.settings.extractor)
        return self.model if codec is None else CodedExtractor(self.model, codec)

    def codec_changed(self) -> None:
        """A codec was fitted: forget the extractor and close the index of the previous vector
        space, so that the next use opens the new one; the previous embedded index folder in
        the data folder is removed (its vectors are re-encoded into the new one)."""
        index = self.__dict__.pop("index", None)
        if index is not None:
            index.close()
        old = self.index_folder if "extractor" in self.__dict__ else None
        self.__dict__.pop("extractor", None)
        in_data = old is not None and old.parent == self.settings.data / "vectors"
        if old is not None and in_data and old != self.index_folder:
            shutil.rmtree(old, ignore_errors=True)

    def check_extractor(self) -> None:
        """Pre-flight: raise ``ModelUnavailable`` now if opening ``extractor`` would fail (a
        model that is not exported and cannot be exported here), before any other work."""
        extractors.check_extractor(self.settings.extractor, self.settings.models_dir)

    @property
    def index_folder(self) -> Path:
        """The embedded index's folder: ``--vectors`` when it names a folder, else one folder
        per model in the data folder, so changing the extractor starts a fresh index instead
        of mixing vector spaces (the embed stage re-embeds everything)."""
        vectors = self.settings.vectors
        if vectors and vectors.strip() and not is_milvus_uri(vectors.strip()):
            return Path(vectors.strip())
        extractor = self.extractor
        return self.settings.data / "vectors" / f"{extractor.name}-{extractor.dim}"

    @cached_property
    def index(self) -> VectorIndex:
        extractor = self.extractor
        uri = self.settings.vectors or str(self.index_folder)
        index = open_index(uri, self.settings.data, extractor.dim, extractor.name)
        self._closers.append(index.close)
        return index

    @property
    def backends(self) -> dict[str, str]:
        """Which catalog (password masked) and vector store this workspace uses."""
        vectors = self.settings.vectors or f"embedded HNSW in {self.settings.data / 'vectors'}"
        return {"catalog": masked_url(self.settings.catalog_url), "vectors": vectors}

    @cached_property
    def patches(self) -> PatchTable:
        """The patch table: a local, memory-mapped file in the data folder, one folder per
        model (``DATA/patches/<model>-<dim>``), whichever vector store holds the vectors; apart
        from the embedded index's files, so that moving the vectors to Milvus leaves it be."""
        model = self.model  # patches do not depend on the codec
        return PatchTable(self.settings.data / "patches" / f"{model.name}-{model.dim}")

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
