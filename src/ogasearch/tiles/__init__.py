"""Sprite sheets and tile sets cut into tiles: ``grid.find_tiles`` finds the boxes in a
picture, ``stage.cut_tiles`` turns every pending sheet in the catalog into tile rows."""

from ogasearch.tiles.grid import TileBox, find_tiles

__all__ = ["TileBox", "find_tiles"]
