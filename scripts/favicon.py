"""Draw the site's icon, src/ogasearch/web/static/favicon.ico: a 16x16 pixel-art magnifying
glass over a green slime, saved at 16x16 and (each pixel doubled) 32x32.

Run it again after changing the drawing: ``python scripts/favicon.py``; tests check the
committed file is what it draws.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image

TARGET = Path(__file__).resolve().parent.parent / "src/ogasearch/web/static/favicon.ico"
PALETTE = {
    ".": (0, 0, 0, 0),  # transparent
    "k": (34, 32, 52, 255),  # outline
    "w": (203, 219, 252, 255),  # glass highlight
    "g": (106, 190, 48, 255),  # slime
    "d": (55, 148, 110, 255),  # slime shadow
    "e": (255, 255, 255, 255),  # eye
    "b": (143, 86, 59, 255),  # handle
    "h": (217, 160, 102, 255),  # handle highlight
}
PIXELS = """
....kkkkkk......
...kwwwwwwk.....
..kww....wwk....
.kw........wk...
.kw..kkkk..wk...
.kw.kggggk.wk...
.kw.kgegek.wk...
.kw.kggggk.wk...
.kw.kddddk.wk...
..kw.kkkk.wk....
...kw....wkk....
....kkkkkkbhk...
..........kbhk..
...........kbhk.
............kbk.
.............k..
"""


def draw() -> Image.Image:
    """The 16x16 RGBA icon."""
    rows = PIXELS.strip().splitlines()
    icon = Image.new("RGBA", (len(rows[0]), len(rows)))
    icon.putdata([PALETTE[c] for row in rows for c in row])
    return icon


def ico_bytes() -> bytes:
    """The icon as an ICO holding 16x16 and 32x32 (nearest-neighbour, crisp pixels)."""
    icon = draw()
    big = icon.resize((32, 32), Image.Resampling.NEAREST)
    out = io.BytesIO()
    big.save(out, format="ICO", sizes=[(16, 16), (32, 32)], append_images=[icon])
    return out.getvalue()


def main() -> int:
    TARGET.write_bytes(ico_bytes())
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
