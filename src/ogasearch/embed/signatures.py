"""What the index keeps of every image: its vector and the hashes of its canonical pixels.

``image_signature`` / ``signatures`` are the index-time half of the matcher
(``ogasearch.match.matching``): the same ``canonical`` form, the same hashes, the same vector,
so that a query that is an upscale, a flattening or a recolouring of an indexed image meets it.

* ``canonical_sha256`` (``preprocess.pixel_hash``): exact copy after canonicalisation; what
  ``images.canonical_sha256`` holds.
* ``structure_sha256`` (``preprocess.structure_hash``): the colour-index pattern, equal under
  any one-to-one recolouring (hue shifts, palette swaps); None for images of < 3 colours.
* ``patches`` (``patches.fingerprints``): hashes of a sample of its small pixel patches, which a
  crop, a cut tile or a screenshot holding the image still holds.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ogasearch.embed.extractors import FeatureExtractor
from ogasearch.embed.patches import fingerprints
from ogasearch.embed.preprocess import (
    Canonical,
    canonicalise,
    pixel_hash,
    prepare_canonical,
    structure_hash,
)


@dataclass(frozen=True)
class ImageHashes:
    canonical_sha256: str
    structure_sha256: str | None
    patches: tuple[int, ...] = ()  # patch fingerprints (``embed.patches``)


@dataclass(frozen=True)
class Prepared:
    """One image ready for the model: its input array and its hashes."""

    array: np.ndarray  # float32 CHW (``prepare`` output)
    hashes: ImageHashes


def hashes_of(canon: Canonical) -> ImageHashes:
    """The hashes of a canonical form; patches are taken from its opaque pixels as they were
    (``kept``, when a flat background was taken off), which is what a scene shows of it."""
    image = canon.image
    pasted = canon.kept if canon.kept is not None else image
    return ImageHashes(pixel_hash(image), structure_hash(image), tuple(fingerprints(pasted)))


def prepare_image(img: Image.Image, size: int) -> Prepared:
    canon = canonicalise(img)
    return Prepared(prepare_canonical(canon.image, size), hashes_of(canon))


def _prepare_item(args: tuple[object, int]) -> Prepared:
    item, size = args
    if isinstance(item, Image.Image):
        return prepare_image(item, size)
    from ogasearch.extract.images import open_image
    from ogasearch.settings import Limits

    with open_image(Path(str(item)), Limits()) as img:
        return prepare_image(img, size)


def _prepared(items: Sequence[object], size: int, workers: int, chunk: int) -> Iterator[Prepared]:
    if workers <= 1:
        for item in items:
            yield _prepare_item((item, size))
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_prepare_item, ((item, size) for item in items), chunksize=chunk)


def signatures(
    items: Iterable[Image.Image | str | os.PathLike[str]],
    extractor: FeatureExtractor,
    batch: int = 64,
    workers: int = 1,
) -> tuple[np.ndarray, list[ImageHashes]]:
    """Vectors (n, dim) float32 and hashes of images (PIL images, or paths opened with
    ``open_image``): decoding, canonicalisation and hashing run in ``workers`` processes,
    inference in batches of ``batch``."""
    items = list(items)
    vectors = np.zeros((len(items), extractor.dim), dtype=np.float32)
    hashes: list[ImageHashes] = []
    buf: list[np.ndarray] = []
    row = 0
    chunk = max(1, batch // max(workers, 1))
    for prepared in _prepared(items, extractor.input_size, workers, chunk):
        hashes.append(prepared.hashes)
        buf.append(prepared.array)
        if len(buf) == batch:
            vectors[row : row + batch] = extractor.embed(np.stack(buf))
            row += batch
            buf = []
    if buf:
        vectors[row : row + len(buf)] = extractor.embed(np.stack(buf))
    return vectors, hashes


def embed_images(
    items: Iterable[Image.Image | str | os.PathLike[str]],
    extractor: FeatureExtractor,
    batch: int = 64,
    workers: int = 1,
) -> np.ndarray:
    """Only the vectors of ``signatures``: (n, dim) float32, one row per item, in order."""
    return signatures(items, extractor, batch, workers)[0]
