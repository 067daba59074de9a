"""Compact vectors: a projection fitted on the catalog's own vectors, saved beside the model.

The extractor's vector (960-d for the default) would take 1,920 bytes as float16. A
``VectorCodec`` projects it onto the ``dim`` directions that carry most of the catalog's
vectors (the top right-singular vectors of the matrix of stored vectors, not centred, so that
dot products, and so cosines, are kept as well as ``dim`` directions allow) and renormalises:
256 dimensions in float16 are 512 bytes. The projected vector is the copy of record (the
catalog's ``embeddings.vector``); the vector index is built from it and a query vector is
projected the same way (``CodedExtractor``), so every path compares like with like.

A codec belongs to one extractor and one vector *kind* (``"lookup"``: the reverse-search
vector; another kind fits its own), and to one catalog: it is stored in the catalog's
``codecs`` table (``embed.compact``), so that every worker sharing it projects alike. Its
``ident`` (dimension + a hash of the matrix) is part of the name stored with every vector
(``CodedExtractor.name``), so vectors of another codec (or none) are told apart, and the index
of each codec is a folder (or Milvus collection) of its own.

The SVD is numpy's (LAPACK). Measured on the quality benchmark (docs/benchmarks.md, "Compact
vectors"): recall within 0.005 of the full vectors at 256 dimensions.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from ogasearch.embed.extractors import FeatureExtractor, l2_normalise
from ogasearch.embed.onnx_export import ModelUnavailable

FORMAT = 1
LOOKUP = "lookup"  # the reverse-search vector, the extractor's own
DEFAULT_DIM = 256  # x float16 = 512 bytes per image


class CodecError(ModelUnavailable):
    """A codec that cannot be used (one line: which, what is wrong): like a missing
    model, the vectors of this data folder cannot be made without it."""


@dataclass(frozen=True)
class VectorCodec:
    """Projection of one extractor's vectors of one kind onto ``dim`` fitted directions."""

    model: str  # the extractor whose vectors it projects
    kind: str
    components: np.ndarray  # (dim, source_dim) float32, orthonormal rows
    fitted_on: int  # vectors it was fitted on
    fitted_at: str

    @property
    def dim(self) -> int:
        return int(self.components.shape[0])

    @property
    def source_dim(self) -> int:
        return int(self.components.shape[1])

    @property
    def ident(self) -> str:
        """``pca<dim>-<hash>``: changes with every refit."""
        digest = hashlib.sha256(np.ascontiguousarray(self.components).tobytes()).hexdigest()
        return f"pca{self.dim}-{digest[:8]}"

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """(n, source_dim) -> (n, dim) float32 of unit length."""
        x = np.asarray(vectors, dtype=np.float32).reshape(-1, self.source_dim)
        return l2_normalise(x @ self.components.T)

    def to_bytes(self) -> bytes:
        """npz bytes: the components as float16 (half the bytes; the codes are float16
        too) and what they were fitted on."""
        info = {
            "format": FORMAT,
            "model": self.model,
            "kind": self.kind,
            "fitted_on": self.fitted_on,
            "fitted_at": self.fitted_at,
        }
        out = io.BytesIO()
        np.savez_compressed(
            out, components=self.components.astype(np.float16), info=np.array(json.dumps(info))
        )
        return out.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes, where: str) -> VectorCodec:
        """The codec of ``to_bytes``; ``CodecError`` naming ``where`` when it is not one."""
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as data:
                components = np.asarray(data["components"], dtype=np.float32)
                info = json.loads(str(data["info"]))
        except (OSError, KeyError, ValueError) as exc:
            raise CodecError(f"{where}: not a vector codec ({exc}); refit it") from exc
        if int(info.get("format", -1)) != FORMAT:
            raise CodecError(f"{where}: codec format {info.get('format')!r}, this reads {FORMAT}")
        return cls(
            str(info["model"]),
            str(info["kind"]),
            components,
            int(info["fitted_on"]),
            str(info["fitted_at"]),
        )


def fit_codec(
    vectors: np.ndarray, model: str, kind: str = LOOKUP, dim: int = DEFAULT_DIM
) -> VectorCodec:
    """Fit on (n, source_dim) vectors; needs more vectors than ``dim``."""
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] <= dim or x.shape[1] < dim:
        raise CodecError(
            f"fitting {dim} dimensions needs more than {dim} vectors of more than {dim}"
            f" dimensions, got {x.shape}"
        )
    _, _, vt = np.linalg.svd(x.astype(np.float64), full_matrices=False)
    # rounded as stored (``to_bytes``), so the codec in use is the one saved
    components = vt[:dim].astype(np.float16).astype(np.float32)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return VectorCodec(model, kind, components, int(x.shape[0]), now)


class CodedExtractor:
    """An extractor whose vectors come out projected by ``codec`` (a ``FeatureExtractor``):
    what the embed stage stores, the index holds and a query is compared with."""

    def __init__(self, inner: FeatureExtractor, codec: VectorCodec) -> None:
        if (codec.model, codec.source_dim) != (inner.name, inner.dim):
            raise CodecError(
                f"the codec projects {codec.source_dim}-d vectors of {codec.model!r}, not"
                f" {inner.dim}-d vectors of {inner.name!r}; refit it"
            )
        self.inner = inner
        self.codec = codec
        self.name = f"{inner.name}+{codec.ident}"
        self.dim = codec.dim
        self.input_size = inner.input_size
        self.kind_name = inner.kind_name  # kind vectors are stored as they come (384 bytes)
        self.kind_dim = inner.kind_dim

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return self.codec.project(self.inner.embed(batch))

    def embed_with_kind(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vectors, kinds = self.inner.embed_with_kind(batch)
        return self.codec.project(vectors), kinds
