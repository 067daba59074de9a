"""Small image compositions the site builders make from source sprites (sheets, previews)."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image


def montage(
    images: Sequence[Image.Image],
    columns: int,
    *,
    cell: tuple[int, int] | None = None,
    spacing: int = 0,
    margin: int = 0,
    background: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> Image.Image:
    """Images on a regular grid (a sprite sheet), each centred in its cell."""
    if not images:
        raise ValueError("montage of no images")
    cell_w = cell[0] if cell else max(i.width for i in images)
    cell_h = cell[1] if cell else max(i.height for i in images)
    rows = -(-len(images) // columns)
    width = 2 * margin + columns * cell_w + (columns - 1) * spacing
    height = 2 * margin + rows * cell_h + (rows - 1) * spacing
    sheet = Image.new("RGBA", (width, height), background)
    for index, image in enumerate(images):
        col, row = index % columns, index // columns
        x = margin + col * (cell_w + spacing) + (cell_w - image.width) // 2
        y = margin + row * (cell_h + spacing) + (cell_h - image.height) // 2
        rgba = image.convert("RGBA")
        sheet.alpha_composite(rgba, (x, y))
    return sheet


def upscale(image: Image.Image, factor: int) -> Image.Image:
    """Nearest-neighbour enlargement, the way pixel art is posted."""
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def rotate_channels(image: Image.Image) -> Image.Image:
    """A recolour: R, G, B become B, R, G (alpha kept)."""
    r, g, b, a = image.convert("RGBA").split()
    return Image.merge("RGBA", (b, r, g, a))


def on_background(image: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    flat = Image.new("RGBA", image.size, (*colour, 255))
    flat.alpha_composite(image.convert("RGBA"))
    return flat.convert("RGB")


def fit_within(image: Image.Image, box: int) -> Image.Image:
    """A copy no larger than ``box`` on either side (Drupal's image style "scale")."""
    if image.width <= box and image.height <= box:
        return image.copy()
    copy = image.copy()
    copy.thumbnail((box, box), Image.Resampling.LANCZOS)
    return copy
