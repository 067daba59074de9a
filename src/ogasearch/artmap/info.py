"""The map's files in the data folder and the description both sides read.

``DATA/map/`` holds ``map.json`` (``MapInfo``: zoom range, point count, region labels, the
code version that drew it), the fitted layout model (``layout.pkl``) and the tile pyramid
``tiles/{z}/{x}/{y}.webp``. Map units: the square [0, WORLD) that is one 256-pixel tile at
zoom 0; at zoom ``z`` a unit is ``2**z`` pixels (Leaflet's ``CRS.Simple``, y downwards).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ogasearch.index.files import atomic_write

WORLD = 256.0  # map units across the whole map (one tile at zoom 0)
TILE = 256  # pixels per tile side
# Bump whenever the layout, the drawing or the labels change: the next update redraws the map.
MAP_VERSION = 1


@dataclass(frozen=True)
class Label:
    """A region's name, shown from ``zoom`` on (to the next band) at (x, y) map units."""

    zoom: int
    x: float
    y: float
    text: str
    count: int  # images in the region


@dataclass
class MapInfo:
    max_zoom: int
    points: int
    version: int = MAP_VERSION
    labels: list[Label] = field(default_factory=list)


def map_folder(data: Path) -> Path:
    return data / "map"


def tile_path(data: Path, z: int, x: int, y: int) -> Path:
    return map_folder(data) / "tiles" / str(z) / str(x) / f"{y}.webp"


def read_info(data: Path) -> MapInfo | None:
    """The map's description, or None when no map was drawn yet."""
    path = map_folder(data) / "map.json"
    if not path.is_file():
        return None
    raw = json.loads(path.read_text())
    labels = [Label(**label) for label in raw.pop("labels", [])]
    return MapInfo(**raw, labels=labels)


def write_info(data: Path, info: MapInfo) -> None:
    folder = map_folder(data)
    folder.mkdir(parents=True, exist_ok=True)
    body = json.dumps(asdict(info)).encode()
    atomic_write(folder / "map.json", lambda tmp: tmp.write_bytes(body))
