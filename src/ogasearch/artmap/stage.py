"""The map stage (run by ``update`` after ``index``): lay the map out, place new images,
draw the tiles they touch, name the regions.

One worker at a time does it (a PostgreSQL advisory lock, and a lock file in the data folder).

1. No map yet (or ``rebuild``, or a map drawn by an older ``MAP_VERSION``): fit the layout on
   every indexed whole image (tiles of sheets are left out), store the points, start a new
   pyramid. Fewer than ``layout.MIN_POINTS`` images: no map yet.
2. Indexed images without a point: placed by the fitted model (``Layout.place``), in batches,
   each committed (a kill resumes with the rest).
3. Points not yet drawn, and points of images gone (or no longer indexed): the deepest tiles
   under them are redrawn from thumbnails, then their parents up to zoom 0; only then are the
   new points marked drawn and the gone ones deleted (a kill redraws them).
4. The region labels and ``map.json``.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import Engine, delete, insert, select, update

from ogasearch.artmap.info import MAP_VERSION, MapInfo, map_folder, read_info, write_info
from ogasearch.artmap.labels import page_words, region_labels
from ogasearch.artmap.layout import MIN_POINTS, Layout, fit_layout, load_layout
from ogasearch.artmap.pyramid import draw_tiles, max_zoom, thumbnail
from ogasearch.artmap.vectors import layout_vectors
from ogasearch.catalog.locks import one_at_a_time
from ogasearch.catalog.schema import embeddings, images, map_points
from ogasearch.extract.pixels import PixelCache, pixel_rows, tile_box
from ogasearch.index.files import folder_lock
from ogasearch.progress import progress
from ogasearch.settings import Settings
from ogasearch.store.blobs import BlobStore

log = logging.getLogger(__name__)

PLACE_BATCH = 2_000  # images placed per transaction


def mappable() -> Any:
    """Ids of the images the map shows: indexed whole images with a vector."""
    return (
        select(images.c.id)
        .join(embeddings, embeddings.c.image_id == images.c.id)
        .where(images.c.indexed.is_(True), images.c.parent_id.is_(None))
        .order_by(images.c.id)
    )


def build_map(
    engine: Engine, settings: Settings, store: BlobStore, rebuild: bool = False
) -> dict[str, Any]:
    """Bring the map up to date with the catalog; return what was done.

    One worker at a time (workers sharing a catalog, or two updates of one data folder): the
    next one finds the map up to date."""
    data = settings.data
    data.mkdir(parents=True, exist_ok=True)
    with one_at_a_time(engine, "artmap.stage"), folder_lock(data / "map.lock", exclusive=True):
        return _build(engine, settings, store, rebuild)


def _build(engine: Engine, settings: Settings, store: BlobStore, rebuild: bool) -> dict[str, Any]:
    data = settings.data
    started = time.perf_counter()
    stats: dict[str, Any] = {"fitted": 0, "placed": 0, "tiles": 0}
    info = read_info(data)
    layout = load_layout(data) if info is not None else None
    if rebuild or info is None or layout is None or info.version != MAP_VERSION:
        fitted = _fit(engine, data)
        if fitted is None:
            stats["skipped"] = f"fewer than {MIN_POINTS} indexed images"
            return stats
        layout, info = fitted
        stats["fitted"] = info.points
    stats["placed"] = _place_new(engine, layout)
    stats["tiles"] = _draw(engine, settings, store, info.max_zoom)
    if stats["fitted"] or stats["placed"] or stats["tiles"]:
        ids, xy = _all_points(engine)
        info.points = len(ids)
        info.labels = region_labels(xy, ids, page_words(engine, ids), info.max_zoom)
        write_info(data, info)
    stats["points"] = info.points
    stats["seconds"] = round(time.perf_counter() - started, 1)
    return stats


def _fit(engine: Engine, data: Path) -> tuple[Layout, MapInfo] | None:
    with engine.connect() as conn:
        ids = [int(i) for i in conn.execute(mappable()).scalars()]
    if len(ids) < MIN_POINTS:
        return None
    log.info("laying out the map of %d images", len(ids))
    layout, xy = fit_layout(layout_vectors(engine, ids))
    shutil.rmtree(map_folder(data), ignore_errors=True)
    layout.save(data)
    with engine.begin() as conn:
        conn.execute(delete(map_points))
        conn.execute(
            insert(map_points),
            [
                {"image_id": i, "x": float(x), "y": float(y), "placed": "fit", "drawn": False}
                for i, (x, y) in zip(ids, xy, strict=True)
            ],
        )
    info = MapInfo(max_zoom=max_zoom(len(ids)), points=len(ids))
    write_info(data, info)
    return layout, info


def _place_new(engine: Engine, layout: Layout) -> int:
    """Place the mappable images that have no point yet; return how many."""
    new = mappable().where(~images.c.id.in_(select(map_points.c.image_id)))
    with engine.connect() as conn:
        ids = [int(i) for i in conn.execute(new).scalars()]
    with progress(len(ids), "map: place", "img") as bar:
        for start in range(0, len(ids), PLACE_BATCH):
            chunk = ids[start : start + PLACE_BATCH]
            xy = layout.place(layout_vectors(engine, chunk))
            with engine.begin() as conn:
                conn.execute(
                    insert(map_points),
                    [
                        {"image_id": i, "x": float(x), "y": float(y), "placed": "transform"}
                        for i, (x, y) in zip(chunk, xy, strict=True)
                    ],
                )
            bar.update(len(chunk))
    return len(ids)


def _draw(engine: Engine, settings: Settings, store: BlobStore, zoom: int) -> int:
    """Redraw the tiles under the points not drawn yet and under the points of images no
    longer on the map; then mark the first drawn and delete the others. Return how many
    tiles were written."""
    pts = map_points.c
    with engine.connect() as conn:
        shown = {int(i) for i in conn.execute(mappable()).scalars()}
        rows = conn.execute(select(pts.image_id, pts.x, pts.y, pts.drawn)).all()
    kept = sorted((r for r in rows if int(r.image_id) in shown), key=lambda r: r.image_id)
    undrawn = [int(r.image_id) for r in kept if not r.drawn]
    gone = [r for r in rows if int(r.image_id) not in shown]
    if not undrawn and not gone:
        return 0
    ids = [int(r.image_id) for r in kept]
    xy = np.array([(r.x, r.y) for r in kept], dtype=np.float64).reshape(-1, 2)
    changed = np.array(
        [(r.x, r.y) for r in kept if not r.drawn] + [(r.x, r.y) for r in gone], dtype=np.float64
    ).reshape(-1, 2)
    pixels = PixelCache(store, settings.limits)
    written = draw_tiles(
        settings.data, ids, xy, changed, zoom, lambda wanted: _thumbnails(engine, pixels, wanted)
    )
    with engine.begin() as conn:
        for start in range(0, len(undrawn), PLACE_BATCH):
            chunk = undrawn[start : start + PLACE_BATCH]
            conn.execute(update(map_points).where(pts.image_id.in_(chunk)).values(drawn=True))
        gone_ids = [int(r.image_id) for r in gone]
        for start in range(0, len(gone_ids), PLACE_BATCH):
            chunk = gone_ids[start : start + PLACE_BATCH]
            conn.execute(delete(map_points).where(pts.image_id.in_(chunk)))
    if gone:
        log.info("map: %d images gone from the map", len(gone))
    return written


def _thumbnails(engine: Engine, pixels: PixelCache, ids: list[int]) -> dict[int, Image.Image]:
    """Each image's thumbnail; an image that cannot be read is left out (logged)."""
    with engine.connect() as conn:
        rows = conn.execute(pixel_rows().where(images.c.id.in_(ids))).all()
    out: dict[int, Image.Image] = {}
    for row in rows:
        try:
            out[int(row.id)] = thumbnail(pixels.load(row.blob, tile_box(row)))
        except Exception as exc:
            log.warning("map: image %s not drawn: %s", row.id, exc)
    return out


def _all_points(engine: Engine) -> tuple[list[int], np.ndarray]:
    """Every point: image ids in id order and their (n, 2) map units."""
    pts = map_points.c
    with engine.connect() as conn:
        rows = conn.execute(select(pts.image_id, pts.x, pts.y).order_by(pts.image_id)).all()
    xy = np.array([(r.x, r.y) for r in rows], dtype=np.float64).reshape(-1, 2)
    return [int(r.image_id) for r in rows], xy
