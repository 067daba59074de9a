"""Where the image data sets the tests read are on this machine: the one place that knows.

- ``CRAWL_TILES``: Dungeon Crawl Stone Soup's tiles (CC0), Debian's ``crawl-tiles-data``:
  atlases of 32x32 cells (``main.png``, ``floor.png``, ...) and title screens.
- ``KENNEY``: Kenney's CC0 sprites that the ``arcade`` package ships (the ``test`` extra):
  single sprites in folders, sprite sheets under ``spritesheets/``.
- ``TEEWORLDS``: Teeworlds' art (CC-BY-SA 3.0, Debian's ``teeworlds-data``): skin parts and
  UI icons with soft (partly transparent) edges, an emoticon sheet.
- ``CHROMIUM_BSU``: Chromium B.S.U.'s sprites (Clarified Artistic licence, Debian's
  ``chromium-bsu-data``): ships, shots and glows, most of them with partial alpha.
- ``MINETEST``: Minetest Game's 16x16 textures (CC-BY-SA 3.0, a few MIT or CC-BY-SA 4.0 as the
  package's copyright file lists; Debian's ``minetest-data``), one folder per mod.
- ``SAMPLE``: the Kenney files bundled with ogasearch for its local site (always there).

Tests take them through the session fixtures in ``tests/conftest.py`` (``crawl_tiles``,
``kenney_images``, ``sample_sprites``), or mark a whole module with
``pytest.mark.usefixtures("crawl_tiles")`` when module-level helpers read ``CRAWL_TILES.path``.
A missing data set skips its tests with one line saying what to install; under CI (``CI`` set,
where ``scripts/setup.sh`` installed everything) it fails them instead, so a broken setup
cannot pass as skipped tests.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from ogasearch.localsite.kenney import SAMPLE_ROOT


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    probe: str  # a file that must exist under path
    install: str  # how to get it

    @property
    def available(self) -> bool:
        return (self.path / self.probe).is_file()

    def require(self) -> Path:
        """The folder, or skip (fail under CI) with one line naming what to install."""
        if not self.available:
            message = f"{self.name} is missing ({self.path / self.probe}): {self.install}"
            if os.environ.get("CI"):
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        return self.path


def _arcade_images() -> Path:
    """arcade's bundled images, found without importing arcade (which sets up OpenGL)."""
    spec = importlib.util.find_spec("arcade")
    if spec is None or spec.origin is None:
        return Path("/nonexistent/arcade")
    return Path(spec.origin).parent / "resources" / "assets" / "images"


CRAWL_TILES = Dataset(
    "Debian's crawl-tiles-data",
    Path("/usr/share/crawl/dat/tiles"),
    probe="main.png",
    install="apt-get install crawl-tiles-data (scripts/setup.sh does)",
)
KENNEY = Dataset(
    "the arcade package's Kenney images",
    _arcade_images(),
    probe="spritesheets/tiles.png",
    install='pip install -e ".[test]" (scripts/setup.sh does)',
)
TEEWORLDS = Dataset(
    "Debian's teeworlds-data",
    Path("/usr/share/games/teeworlds/data"),
    probe="emoticons.png",
    install="apt-get install teeworlds-data (scripts/setup.sh does)",
)
CHROMIUM_BSU = Dataset(
    "Debian's chromium-bsu-data",
    Path("/usr/share/games/chromium-bsu/png"),
    probe="hero.png",
    install="apt-get install chromium-bsu-data (scripts/setup.sh does)",
)
MINETEST = Dataset(
    "Debian's minetest-data",
    Path("/usr/share/games/minetest/games/minetest_game/mods"),
    probe="default/textures/default_stone.png",
    install="apt-get install minetest-data (scripts/setup.sh does)",
)
SAMPLE = Dataset(
    "the bundled sample sprites",
    Path(str(SAMPLE_ROOT)) / "kenney",
    probe="License.txt",
    install="reinstall ogasearch with its package data",
)
