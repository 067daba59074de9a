"""The map read back: where an image lies, the images in a box, the labels of a zoom, and
whether the drawn map is older than this code. The map stage (``artmap.stage``) writes it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, and_, func, select

from ogasearch.artmap.info import MAP_VERSION, Label, MapInfo, read_info, tile_path
from ogasearch.artmap.pyramid import THUMB
from ogasearch.catalog.schema import images, map_points
from ogasearch.workspace import CatalogMissing, Workspace

MAX_POINTS = 2_000  # at most this many points per box
CLICK_PIXELS = 4  # a click this close to an image on screen opens it


@dataclass(frozen=True)
class MapPoint:
    image_id: int
    x: float  # map units, [0, WORLD)
    y: float


class MapReader:
    """Reads of the map for the web: the catalog's ``map_points`` and ``DATA/map``."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def info(self) -> MapInfo | None:
        """The drawn map's description, or None while there is no map."""
        return read_info(self.ws.settings.data)

    def outdated(self) -> str | None:
        """One line when the map was drawn by older code (or not at all while images are
        indexed): what is wrong and the command that fixes it."""
        info = self.info()
        if info is None:
            return None
        if info.version != MAP_VERSION:
            return (
                f"the map was drawn by an older ogasearch (map version {info.version} < "
                f"{MAP_VERSION}): run `ogasearch update` to redraw it"
            )
        return None

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        """A tile's WebP bytes; None when it is empty or outside the map."""
        info = self.info()
        if info is None or not 0 <= z <= info.max_zoom or not (0 <= x < 2**z and 0 <= y < 2**z):
            return None
        path = tile_path(self.ws.settings.data, z, x, y)
        return path.read_bytes() if path.is_file() else None

    def locate(self, image_id: int) -> MapPoint | None:
        """Where an image lies, or None when it is not on the map."""
        found = self.locate_many([image_id])
        return found[0] if found else None

    def locate_many(self, image_ids: list[int]) -> list[MapPoint]:
        """The points of those images that are on the map, in the order given; a tile of a
        sheet lies where its sheet does (the map shows whole images)."""
        engine = self._engine()
        if engine is None or not image_ids:
            return []
        shown = func.coalesce(images.c.parent_id, images.c.id)
        with engine.connect() as conn:
            rows = conn.execute(
                select(images.c.id, map_points.c.x, map_points.c.y)
                .join(map_points, map_points.c.image_id == shown)
                .where(images.c.id.in_(image_ids[:MAX_POINTS]))
            ).all()
        found = {int(r.id): MapPoint(int(r.id), float(r.x), float(r.y)) for r in rows}
        return [found[i] for i in image_ids if i in found]

    def in_box(self, x0: float, y0: float, x1: float, y1: float) -> list[MapPoint]:
        """Points inside the box (map units), at most MAX_POINTS, lowest ids first."""
        engine = self._engine()
        if engine is None:
            return []
        pts = map_points.c
        with engine.connect() as conn:
            rows = conn.execute(
                select(pts.image_id, pts.x, pts.y)
                .where(and_(pts.x >= x0, pts.x <= x1, pts.y >= y0, pts.y <= y1))
                .order_by(pts.image_id)
                .limit(MAX_POINTS)
            ).all()
        return [MapPoint(int(r.image_id), float(r.x), float(r.y)) for r in rows]

    def at(self, x: float, y: float, zoom: int) -> MapPoint | None:
        """The image clicked at (x, y) map units seen at ``zoom``: the nearest point within
        its thumbnail's half width (the same in map units at every zoom: upper tiles are
        their children halved) or, zoomed out, within CLICK_PIXELS on screen."""
        info = self.info()
        deepest = info.max_zoom if info is not None else zoom
        reach = max((THUMB / 2) / 2**deepest, CLICK_PIXELS / 2**zoom)
        engine = self._engine()
        if engine is None:
            return None
        pts = map_points.c
        box = and_(pts.x >= x - reach, pts.x <= x + reach, pts.y >= y - reach, pts.y <= y + reach)
        with engine.connect() as conn:
            row = conn.execute(
                select(pts.image_id, pts.x, pts.y)
                .where(box)
                .order_by(func.abs(pts.x - x) + func.abs(pts.y - y), pts.image_id.desc())
                .limit(1)
            ).first()
        return None if row is None else MapPoint(int(row.image_id), float(row.x), float(row.y))

    def labels(self, zoom: int) -> list[Label]:
        """The region labels shown at ``zoom`` (deeper zooms show the deepest labelled one)."""
        info = self.info()
        if info is None or not info.labels:
            return []
        band = min(zoom, max(label.zoom for label in info.labels))
        return [label for label in info.labels if label.zoom == band]

    def _engine(self) -> Engine | None:
        try:
            return self.ws.engine
        except CatalogMissing:
            return None
