"""The shapes the tile finders share: a grid axis as cell intervals, and cells as tuples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Cell = tuple[int, int, int, int]  # (x, y, w, h) in art pixels


@dataclass(frozen=True, slots=True)
class Segments:
    """One axis of a grid: cell intervals ``[start, end)`` along it, in art pixels, and where
    each cell's period starts (``bases``, before clipping to the picture)."""

    starts: np.ndarray
    ends: np.ndarray
    bases: np.ndarray

    @classmethod
    def regular(cls, size: int, pitch: int) -> Segments:
        """Whole cells of ``pitch`` from 0; a partial last cell is left out."""
        starts = np.arange(0, size - pitch + 1, pitch)
        return cls(starts, starts + pitch, starts)

    @classmethod
    def whole(cls, size: int) -> Segments:
        """One cell over the whole side."""
        return cls(np.array([0]), np.array([size]), np.array([0]))


def cells(xs: Segments, ys: Segments) -> list[Cell]:
    """The grid's non-empty-sized cells, row by row."""
    return [
        (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
        for y0, y1 in zip(ys.starts, ys.ends, strict=True)
        for x0, x1 in zip(xs.starts, xs.ends, strict=True)
        if x1 > x0 and y1 > y0
    ]
