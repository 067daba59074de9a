"""The 2D layout: t-SNE (openTSNE, FFT-accelerated) fitted once on every vector, then used to
place new ones.

openTSNE was chosen over umap-learn by measurement (docs/benchmarks.md, "The map of all the
art"): on the same clustered vectors its layout kept about twice as many of each point's 10
nearest neighbours, for about 1.5x the fitting time, and its fitted embedding places new points
(``transform``, optimised against the fixed map) without moving the old ones. The embedding is
pickled in the data folder; ``Layout`` also keeps the affine map from t-SNE's coordinates to
map units, so placed points land on the same map.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ogasearch.artmap.info import WORLD, map_folder
from ogasearch.progress import progress

MIN_POINTS = 8  # fewer images than this: no map yet
PERPLEXITY = 30.0  # t-SNE's effective number of neighbours (lowered for tiny maps)
EXAGGERATION_ITERS, ITERS = 250, 500  # openTSNE's defaults, named for the progress bar
TICK = 10  # iterations per progress update
FFT_FROM = 10_000  # points from which the FFT gradient beats Barnes-Hut (openTSNE docs)
MARGIN = 0.04  # share of the map left empty on each side


@dataclass
class Layout:
    """A fitted openTSNE embedding and its affine map to map units
    (``units = (raw - low) * scale``)."""

    model: Any
    low: np.ndarray
    scale: float

    def to_units(self, raw: np.ndarray) -> np.ndarray:
        return np.clip((raw - self.low) * self.scale, 0.0, np.nextafter(WORLD, 0))

    def place(self, vectors: np.ndarray) -> np.ndarray:
        """Map units (n, 2) of new vectors in the fitted map; the old points do not move."""
        if len(vectors) == 0:
            return np.zeros((0, 2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = self.model.transform(vectors, perplexity=min(5.0, (len(self.model) - 1) / 3))
        return self.to_units(np.asarray(raw, dtype=np.float64))

    def save(self, data: Path) -> None:
        path = map_folder(data) / "layout.pkl"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as out:
            pickle.dump(self, out, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)


def load_layout(data: Path) -> Layout | None:
    path = map_folder(data) / "layout.pkl"
    if not path.is_file():
        return None
    with path.open("rb") as src:
        layout = pickle.load(src)  # our own file in the data folder
    return layout if isinstance(layout, Layout) else None


def fit_layout(vectors: np.ndarray, seed: int | None = None) -> tuple[Layout, np.ndarray]:
    """Fit the layout on ``vectors`` (n >= MIN_POINTS); return it and their map units."""
    from openTSNE import TSNE

    n = len(vectors)
    if n < MIN_POINTS:
        raise ValueError(f"a map needs at least {MIN_POINTS} images, not {n}")
    with progress(EXAGGERATION_ITERS + ITERS, "map: layout", "iter") as bar:

        def tick(_iteration: int, _error: float, _embedding: object) -> bool:
            bar.update(TICK)
            return False  # go on

        tsne = TSNE(
            perplexity=min(PERPLEXITY, (n - 1) / 3),
            metric="cosine",
            n_jobs=1 if n < FFT_FROM else -1,  # threads only pay on big maps
            random_state=seed,
            negative_gradient_method="bh" if n < FFT_FROM else "fft",
            early_exaggeration_iter=EXAGGERATION_ITERS,
            n_iter=ITERS,
            callbacks=tick,
            callbacks_every_iters=TICK,
            verbose=False,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = tsne.fit(vectors)
    # the progress callback is not part of the model (and a local function does not pickle)
    model.gradient_descent_params.update(callbacks=None, use_callbacks=False)
    raw = np.asarray(model, dtype=np.float64)
    low, high = raw.min(axis=0), raw.max(axis=0)
    span = float(max(high - low)) or 1.0
    inner = WORLD * (1 - 2 * MARGIN)
    scale = inner / span
    # centre the layout: the longer side spans ``inner``, the shorter one is centred
    offset = (WORLD - (high - low) * scale) / 2
    layout = Layout(model=model, low=low - offset / scale, scale=scale)
    return layout, layout.to_units(raw)
