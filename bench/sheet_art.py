"""Pictures for the sheet-detection set whose truth is known because they are made here.

* ``compose``: a sheet of single sprites, each centred in a frame of the largest sprite's size,
  with any margin, spacing and background; the frames are the true cells.
* ``grid_truth``: the true cells of a real sheet whose cell size the source tells (Dungeon
  Crawl's 32-pixel floor and wall atlases, Kenney's 128-pixel tiles.png).
* ``scene``: sprites overlapping each other on a tiled or flat ground, a level or a screenshot.
* ``glow``, ``smoke``, ``sparks``: effects whose alpha fades softly, drawn from a seed.
* ``text``: a logo or a line of text rendered with Pillow's own font.

Truth follows what a tile finder keeps by design: cells that hold nothing and cells whose
pixels repeat an earlier cell (in reading order) are no cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ogasearch.tiles.grid import TileBox

Colour = tuple[int, int, int, int]
CLEAR: Colour = (0, 0, 0, 0)


def compose(
    sprites: Sequence[Image.Image],
    cols: int,
    *,
    margin: int = 0,
    spacing: int = 0,
    background: Colour = CLEAR,
) -> tuple[Image.Image, list[TileBox]]:
    """A sheet of ``sprites`` in rows of ``cols``, each centred in a frame of the largest
    sprite's width and height; returns the sheet and its cells in reading order.

    Frames that tile the sheet (no margin, no spacing) are the cells. With gutters, where a
    transparent frame ends is not in the pixels: the cells are the frames cut down to the
    smallest box (the same in every frame) that holds the art of all of them.
    """
    sprites = [s.convert("RGBA") for s in sprites]
    fw = max(s.width for s in sprites)
    fh = max(s.height for s in sprites)
    x0, y0, x1, y1 = 0, 0, fw, fh
    if margin or spacing:
        art = [s.getchannel("A").getbbox() or (0, 0, 1, 1) for s in sprites]
        shift = [((fw - s.width) // 2, (fh - s.height) // 2) for s in sprites]
        x0 = min(b[0] + dx for b, (dx, _) in zip(art, shift, strict=True))
        y0 = min(b[1] + dy for b, (_, dy) in zip(art, shift, strict=True))
        x1 = max(b[2] + dx for b, (dx, _) in zip(art, shift, strict=True))
        y1 = max(b[3] + dy for b, (_, dy) in zip(art, shift, strict=True))
    rows = -(-len(sprites) // cols)
    width = 2 * margin + cols * fw + (cols - 1) * spacing
    height = 2 * margin + rows * fh + (rows - 1) * spacing
    sheet = Image.new("RGBA", (width, height), background)
    boxes = []
    for i, sprite in enumerate(sprites):
        x = margin + (i % cols) * (fw + spacing)
        y = margin + (i // cols) * (fh + spacing)
        sheet.alpha_composite(sprite, (x + (fw - sprite.width) // 2, y + (fh - sprite.height) // 2))
        boxes.append(TileBox(x + x0, y + y0, x1 - x0, y1 - y0))
    return sheet, boxes


def grid_truth(img: Image.Image, pitch: int) -> list[TileBox]:
    """The cells of ``pitch`` that hold art (any alpha), without repeats, in reading order."""
    rgba = np.array(img.convert("RGBA"))
    rgba[rgba[..., 3] == 0] = 0
    seen: set[bytes] = set()
    boxes = []
    for y in range(0, rgba.shape[0] - pitch + 1, pitch):
        for x in range(0, rgba.shape[1] - pitch + 1, pitch):
            cell = rgba[y : y + pitch, x : x + pitch]
            key = cell.tobytes()
            if not cell[..., 3].any() or key in seen:
                continue
            seen.add(key)
            boxes.append(TileBox(x, y, pitch, pitch))
    return boxes


def grid_cells(img: Image.Image, pitch: int, count: int, seed: int) -> list[Image.Image]:
    """``count`` distinct cells of a real ``pitch`` grid, picked at random by ``seed``."""
    boxes = grid_truth(img, pitch)
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(boxes), size=min(count, len(boxes)), replace=False)
    return [img.crop(boxes[int(i)].pil_box) for i in sorted(picked)]


def scene(
    ground: Image.Image | Colour,
    size: tuple[int, int],
    sprites: Sequence[Image.Image],
    seed: int,
) -> Image.Image:
    """``sprites`` at random places, overlapping, on ``ground``: a tile repeated over the
    picture (a level, a map) or a flat colour (a sky)."""
    rng = np.random.default_rng(seed)
    if isinstance(ground, Image.Image):
        out = Image.new("RGBA", size)
        for y in range(0, size[1], ground.height):
            for x in range(0, size[0], ground.width):
                out.alpha_composite(ground.convert("RGBA"), (x, y))
    else:
        out = Image.new("RGBA", size, ground)
    for sprite in sprites:
        x = int(rng.integers(-sprite.width // 4, max(1, size[0] - sprite.width * 3 // 4)))
        y = int(rng.integers(-sprite.height // 4, max(1, size[1] - sprite.height * 3 // 4)))
        layer = Image.new("RGBA", size)
        layer.paste(sprite.convert("RGBA"), (x, y))
        out.alpha_composite(layer)
    return out


def _soft_dot(radius: float, colour: tuple[int, int, int], peak: float) -> np.ndarray:
    """An RGBA dot whose alpha falls off like a Gaussian (premultiplied later by compositing)."""
    side = max(3, int(radius * 6))
    yy, xx = np.mgrid[:side, :side] - (side - 1) / 2
    alpha = peak * np.exp(-(xx**2 + yy**2) / (2 * radius**2))
    dot = np.zeros((side, side, 4), dtype=np.float64)
    dot[..., :3] = colour
    dot[..., 3] = alpha
    return dot


def _splat(canvas: np.ndarray, dot: np.ndarray, cx: float, cy: float) -> None:
    """Composite ``dot`` (float RGBA, alpha 0..1) over ``canvas`` centred at (cx, cy)."""
    side = dot.shape[0]
    x0, y0 = int(cx - side / 2), int(cy - side / 2)
    h, w = canvas.shape[:2]
    xs, ys = slice(max(0, x0), min(w, x0 + side)), slice(max(0, y0), min(h, y0 + side))
    if xs.stop <= xs.start or ys.stop <= ys.start:
        return
    part = dot[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    under = canvas[ys, xs]
    a = part[..., 3:4]
    out_a = a + under[..., 3:4] * (1 - a)
    rgb = (part[..., :3] * a + under[..., :3] * under[..., 3:4] * (1 - a)) / np.maximum(out_a, 1e-9)
    canvas[ys, xs, :3] = rgb
    canvas[ys, xs, 3:4] = out_a


def _image(canvas: np.ndarray) -> Image.Image:
    out = canvas.copy()
    out[..., 3] *= 255
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def glow(size: int, seed: int) -> Image.Image:
    """A radial glow or light flare: one soft disc, a few rays."""
    rng = np.random.default_rng(seed)
    canvas = np.zeros((size, size, 4))
    colour = tuple(int(c) for c in rng.integers(80, 256, 3))
    _splat(canvas, _soft_dot(size / 6, colour, 0.95), size / 2, size / 2)
    for _ in range(int(rng.integers(3, 7))):
        angle = rng.uniform(0, 2 * np.pi)
        for step in np.linspace(0.1, 0.45, 12):
            cx, cy = size / 2 + np.cos(angle) * step * size, size / 2 + np.sin(angle) * step * size
            _splat(canvas, _soft_dot(size / 40, colour, 0.5), cx, cy)
    return _image(canvas)


def smoke(size: int, seed: int) -> Image.Image:
    """A cloud of smoke or dust: soft puffs overlapping around the centre."""
    rng = np.random.default_rng(seed)
    canvas = np.zeros((size, size, 4))
    grey = int(rng.integers(90, 220))
    for _ in range(int(rng.integers(8, 20))):
        cx, cy = rng.normal(size / 2, size / 7, 2)
        _splat(canvas, _soft_dot(rng.uniform(size / 16, size / 8), (grey, grey, grey), 0.6), cx, cy)
    return _image(canvas)


def sparks(size: int, seed: int) -> Image.Image:
    """A burst of particles: many small soft dots thrown out from a point."""
    rng = np.random.default_rng(seed)
    canvas = np.zeros((size, size, 4))
    colour = tuple(int(c) for c in rng.integers(120, 256, 3))
    for _ in range(int(rng.integers(30, 80))):
        angle, dist = rng.uniform(0, 2 * np.pi), abs(rng.normal(0, size / 5))
        cx, cy = size / 2 + np.cos(angle) * dist, size / 2 + np.sin(angle) * dist
        _splat(canvas, _soft_dot(rng.uniform(1.5, size / 30 + 2), colour, 0.9), cx, cy)
    return _image(canvas)


def text(words: str, size: int, colour: Colour, background: Colour = CLEAR) -> Image.Image:
    """``words`` in Pillow's own font at ``size`` pixels, on ``background``, with a margin."""
    font = ImageFont.load_default(size)
    left, top, right, bottom = font.getbbox(words)
    pad = size // 2
    out = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), background)
    ImageDraw.Draw(out).text((pad - left, pad - top), words, font=font, fill=colour)
    return out
