"""open_image / describe_image on real and hostile images, all generated here or from Debian."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from ogasearch.extract.images import (
    ImageRejected,
    describe_image,
    is_image_name,
    on_background,
    open_image,
    perceptual_hash,
    pixel_sha256,
    sniff_image_format,
    to_rgba,
)
from ogasearch.settings import Limits

LIMITS = Limits()


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of width x height zero pixels, written without Pillow."""
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    idat = bytearray()
    batch = row * 1000
    for _ in range(height // 1000):
        idat += compressor.compress(batch)
    idat += compressor.compress(row * (height % 1000))
    idat += compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", bytes(idat))
        + png_chunk(b"IEND", b"")
    )


def sprite(size: tuple[int, int] = (16, 16), alpha: bool = True) -> Image.Image:
    """A small pixel-art-like picture with few colours (and transparency)."""
    rng = np.random.default_rng(7)
    palette = np.array(
        [[0, 0, 0, 0], [200, 30, 30, 255], [30, 200, 30, 255], [250, 250, 90, 255]], np.uint8
    )
    if not alpha:
        palette[0] = [10, 10, 60, 255]
    pixels = palette[rng.integers(0, 4, size=(size[1], size[0]))]
    return Image.fromarray(pixels)


def noise(size: tuple[int, int] = (300, 300)) -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "JPEG", "BMP", "WEBP"])
def test_supported_formats_open_and_describe(fmt: str) -> None:
    data = encode(noise((64, 48)), fmt)
    facts = describe_image(io.BytesIO(data), LIMITS)
    assert (facts.format, facts.width, facts.height, facts.frames) == (fmt, 64, 48, 1)
    assert len(facts.pixel_sha256) == 64 and len(facts.phash) == 16
    int(facts.phash, 16)


def test_pixel_hash_is_format_independent() -> None:
    art = sprite(alpha=False).convert("RGB")
    hashes = {
        fmt: describe_image(io.BytesIO(encode(art, fmt, **params)), LIMITS).pixel_sha256
        for fmt, params in [("PNG", {}), ("BMP", {}), ("GIF", {}), ("WEBP", {"lossless": True})]
    }
    assert len(set(hashes.values())) == 1, hashes
    bigger = art.resize((32, 32), Image.Resampling.NEAREST)
    assert describe_image(io.BytesIO(encode(bigger, "PNG")), LIMITS).pixel_sha256 not in hashes


def test_sniffing_by_magic_bytes_and_names() -> None:
    assert sniff_image_format(encode(noise((4, 4)), "PNG")) == "PNG"
    assert sniff_image_format(encode(noise((4, 4)), "BMP")) == "BMP"
    assert sniff_image_format(encode(noise((4, 4)), "WEBP")) == "WEBP"
    assert sniff_image_format(encode(noise((4, 4)), "TIFF")) == "TIFF"
    assert sniff_image_format(b"BM is also how a text file may start") is None
    assert sniff_image_format(b"<svg xmlns='http://www.w3.org/2000/svg'/>") is None
    assert is_image_name("Tiles/Hero.PNG") and is_image_name("a.jpeg")
    assert not is_image_name("a.svg") and not is_image_name("png")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (encode(noise((8, 8)), "TIFF"), "unsupported format TIFF"),
        (b"8BPS\x00\x01" + bytes(40), "unsupported format PSD"),
        (b"<svg xmlns='http://www.w3.org/2000/svg' width='8' height='8'/>", "unsupported"),
        (b"<html><body>404 Not Found</body></html>", "unsupported"),
        (b"", "unsupported"),
    ],
)
def test_unsupported_formats_are_rejected(data: bytes, reason: str) -> None:
    with pytest.raises(ImageRejected, match=reason):
        open_image(io.BytesIO(data), LIMITS)


def test_decompression_bomb_png_is_rejected_before_decoding() -> None:
    data = bomb_png(30000, 30000)  # 900 megapixels
    assert len(data) < 200_000
    start = time.monotonic()
    with pytest.raises(ImageRejected, match="decompression bomb"):
        open_image(io.BytesIO(data), LIMITS)
    assert time.monotonic() - start < 2  # refused from the header, nothing decoded


@pytest.mark.parametrize("pixels", [1_500_000, 2_000_001, 5_000_000])
def test_pixel_limit_is_the_configured_one(pixels: int) -> None:
    """Over the limit is refused, whether Pillow would only warn (< 2x) or raise (> 2x)."""
    limits = Limits(max_image_pixels=1_000_000)
    data = bomb_png(pixels // 1000, 1000)
    with pytest.raises(ImageRejected, match="decompression bomb"):
        open_image(io.BytesIO(data), limits)
    assert describe_image(io.BytesIO(data), Limits(max_image_pixels=pixels)).width == pixels // 1000


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "JPEG", "BMP"])
@pytest.mark.parametrize("keep", [0.3, 0.8, 0.99])
def test_truncated_images_are_rejected(fmt: str, keep: float) -> None:
    data = encode(noise(), fmt)
    cut = data[: int(len(data) * keep)]
    with pytest.raises(ImageRejected, match=r"^truncated "):
        open_image(io.BytesIO(cut), LIMITS)


def test_truncated_png_file_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    data = encode(noise(), "PNG")
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(ImageRejected, match=r"^truncated "):
        describe_image(path, LIMITS)


def test_corrupt_png_crc_is_rejected() -> None:
    data = bytearray(encode(noise((32, 32)), "PNG"))
    data[40] ^= 0xFF  # inside the first IDAT
    with pytest.raises(ImageRejected):
        open_image(io.BytesIO(bytes(data)), LIMITS)


@pytest.mark.parametrize("size", [(1, 1), (20000, 1), (1, 20000)])
def test_extreme_shapes(size: tuple[int, int]) -> None:
    im = Image.new("RGBA", size, (10, 20, 30, 255))
    facts = describe_image(io.BytesIO(encode(im, "PNG")), LIMITS)
    assert (facts.width, facts.height) == size
    assert len(facts.phash) == 16


def animated_gif(frames: int) -> bytes:
    images = []
    for i in range(frames):
        im = Image.new("P", (16, 16), 0)
        im.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
        im.putpixel((i % 16, (i // 16) % 16), 1)
        images.append(im)
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=20)


def test_animated_gif_with_1000_frames() -> None:
    data = animated_gif(1000)
    facts = describe_image(io.BytesIO(data), LIMITS)
    assert facts.frames == 1000
    with open_image(io.BytesIO(data), LIMITS) as im:
        assert im.tell() == 0  # the first frame is the one decoded and hashed
    with pytest.raises(ImageRejected, match="too many frames: 1000"):
        open_image(io.BytesIO(data), Limits(max_image_frames=999))


def test_truncated_animation_is_rejected() -> None:
    data = animated_gif(50)
    with pytest.raises(ImageRejected):
        describe_image(io.BytesIO(data[: len(data) // 2]), LIMITS)


def test_cmyk_jpeg() -> None:
    im = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # red in CMYK
    facts = describe_image(io.BytesIO(encode(im, "JPEG", quality=95)), LIMITS)
    assert (facts.format, facts.mode) == ("JPEG", "CMYK")
    with open_image(io.BytesIO(encode(im, "JPEG", quality=95)), LIMITS) as opened:
        r, g, b, a = to_rgba(opened).getpixel((20, 15))
    assert r > 200 and g < 60 and b < 60 and a == 255


def test_16_bit_png_is_scaled_not_clipped() -> None:
    values = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    im = Image.fromarray(values)
    assert im.mode == "I;16"
    data = encode(im, "PNG")
    with open_image(io.BytesIO(data), LIMITS) as opened:
        assert opened.mode.startswith("I")
        rgba = np.asarray(to_rgba(opened))
    assert rgba[0, 0, 0] == 0 and rgba[0, -1, 0] == 255
    assert 100 < rgba[0, 32, 0] < 160  # mid-grey stays mid-grey (Pillow's convert gives 255)
    assert describe_image(io.BytesIO(data), LIMITS).mode.startswith("I")


def palette_sprite(transparent_rgb: tuple[int, int, int]) -> Image.Image:
    """A palette image whose index 0 is transparent and has colour ``transparent_rgb``."""
    im = Image.new("P", (16, 16), 0)
    im.putpalette([*transparent_rgb, 220, 40, 40, 40, 40, 220] + [0] * 759)
    for x in range(4, 12):
        for y in range(2, 14):
            im.putpixel((x, y), 1 if y < 8 else 2)
    im.info["transparency"] = 0
    return im


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_is_composited_on_grey(fmt: str) -> None:
    black = encode(palette_sprite((0, 0, 0)), fmt, transparency=0)
    white = encode(palette_sprite((255, 255, 255)), fmt, transparency=0)
    with open_image(io.BytesIO(black), LIMITS) as im:
        assert im.mode == "P"
        assert on_background(im).getpixel((0, 0)) == (128, 128, 128)  # not black
        assert on_background(im).getpixel((5, 3)) == (220, 40, 40)
        phash_black = perceptual_hash(im)
    with open_image(io.BytesIO(white), LIMITS) as im:
        phash_white = perceptual_hash(im)
    assert phash_black == phash_white  # the colour under full transparency does not matter
    opaque_on_grey = palette_sprite((128, 128, 128)).convert("RGB")
    assert perceptual_hash(opaque_on_grey) == phash_black


def test_rgba_transparency_does_not_turn_black() -> None:
    im = sprite()
    facts = describe_image(io.BytesIO(encode(im, "PNG")), LIMITS)
    flattened = Image.alpha_composite(Image.new("RGBA", im.size, (128, 128, 128, 255)), im)
    assert facts.phash == perceptual_hash(flattened.convert("RGB"))
    assert facts.phash != str(imagehash.phash(im.convert("RGB")))
    assert facts.pixel_sha256 == pixel_sha256(im)


def test_real_pixel_art_from_debian(crawl_tiles: Path) -> None:
    pngs = sorted(crawl_tiles.rglob("*.png"))[:20]
    assert len(pngs) == 20
    for path in pngs:
        facts = describe_image(path, LIMITS)
        assert facts.format == "PNG" and facts.width > 0 and facts.height > 0


def test_open_image_leaves_a_callers_file_open() -> None:
    f = io.BytesIO(encode(noise((8, 8)), "PNG"))
    with open_image(f, LIMITS) as im:
        assert im.size == (8, 8)
    assert not f.closed
    f.seek(0)
    assert describe_image(f, LIMITS).width == 8
    assert not f.closed
