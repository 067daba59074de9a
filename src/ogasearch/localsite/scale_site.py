"""A large generated site for benchmarks, cut from an external folder of images.

Atlases (e.g. Dungeon Crawl's ``/usr/share/crawl/dat/tiles/*.png``) are cut into square tiles;
empty and repeated tiles are skipped. Each page gets a few tiles as PNG files and the rest in a
zip (with a top folder and a credits file), a 2x preview, and every seventh page a sprite sheet
cropped from the atlas. Metadata comes from a seeded random generator, so a given source folder,
page count and seed always give the same bytes. Nothing of this is committed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

from PIL import Image

from ogasearch.localsite import imaging, packing
from ogasearch.localsite.builder import SiteBuilder
from ogasearch.localsite.model import Comment, Person, Site, SitePage, slugify
from ogasearch.localsite.packing import Entry

SOURCE_SUFFIXES = (".png", ".gif", ".bmp", ".jpg", ".jpeg")
SHEET_EVERY = 7
SHEET_CELLS = (8, 4)

_ADJECTIVES = (
    "Ancient", "Dark", "Mossy", "Frozen", "Golden", "Haunted", "Tiny", "Crystal", "Rusty",
    "Sunken", "Royal", "Wild", "Infernal", "Pale", "Stormy", "Forgotten",
)  # fmt: skip
_NOUNS = {
    "main": "monster sprites",
    "floor": "floor tiles",
    "wall": "wall tiles",
    "feat": "dungeon features",
    "player": "character parts",
    "gui": "spell icons",
    "icons": "UI icons",
}
_TAGS = (
    "dungeon", "roguelike", "tiles", "32x32", "pixel art", "monsters", "items", "walls",
    "floors", "rpg", "fantasy", "top-down", "icons", "characters", "magic",
)  # fmt: skip
# Rough shares on OGA: CC0 and CC-BY lead, GPL/LGPL are rare.
_LICENCE_WEIGHTS = {
    "CC0": 30, "CC-BY 3.0": 20, "CC-BY-SA 3.0": 15, "CC-BY 4.0": 10, "OGA-BY 3.0": 8,
    "CC-BY-SA 4.0": 6, "GPL 3.0": 4, "GPL 2.0": 3, "OGA-BY 4.0": 2, "LGPL 2.1": 1, "LGPL 3.0": 1,
}  # fmt: skip
_SYLLABLES = ("ka", "ro", "mi", "zen", "ta", "lu", "vor", "pi", "xa", "del", "mo", "qui", "sha")


@dataclass(frozen=True)
class Tile:
    image: Image.Image
    atlas: str  # source file stem
    atlas_image: Image.Image
    x: int
    y: int


def source_tiles(source: Path, tile: int) -> Iterator[Tile]:
    """Non-empty, distinct tiles of every image under ``source`` (sorted, so deterministic)."""
    seen: set[bytes] = set()
    paths = sorted(
        p for p in source.rglob("*") if p.suffix.lower() in SOURCE_SUFFIXES and p.is_file()
    )
    for path in paths:
        with Image.open(path) as opened:
            atlas = opened.convert("RGBA")
        if atlas.width < 2 * tile or atlas.height < 2 * tile:
            cells = [(0, 0, atlas)]
        else:
            cells = [
                (x, y, atlas.crop((x, y, x + tile, y + tile)))
                for y in range(0, atlas.height - tile + 1, tile)
                for x in range(0, atlas.width - tile + 1, tile)
            ]
        for x, y, image in cells:
            alpha = image.getchannel("A")
            if alpha.getbbox() is None:
                continue  # fully transparent
            extrema = image.getextrema()
            if all(low == high for low, high in extrema):
                continue  # one flat colour
            digest = hashlib.sha256(image.tobytes()).digest()
            if digest in seen:
                continue
            seen.add(digest)
            yield Tile(image, path.stem, atlas, x, y)


def _licences(rng: random.Random) -> tuple[str, ...]:
    """One to three distinct licences, the first drawn by weight ("any of these")."""
    names = list(_LICENCE_WEIGHTS)
    chosen = [rng.choices(names, weights=list(_LICENCE_WEIGHTS.values()))[0]]
    for _ in range(rng.choice((0, 0, 0, 1, 2))):
        extra = rng.choice(names)
        if extra not in chosen:
            chosen.append(extra)
    return tuple(chosen)


def _people(rng: random.Random, count: int) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
        name = name.capitalize() if rng.random() < 0.4 else name
        if rng.random() < 0.3:
            name += str(rng.randint(1, 99))
        if name not in names:
            names.append(name)
    return names


def build_scale_site(
    source: Path,
    pages: int = 800,
    *,
    images_per_page: int = 5,
    tile_size: int = 32,
    seed: int = 0,
) -> Site:
    """``pages`` submissions of ``images_per_page`` tiles each (plus previews and sheets)."""
    if pages < 1 or images_per_page < 1:
        raise ValueError("pages and images_per_page must be positive")
    tiles = list(islice(source_tiles(Path(source), tile_size), pages * images_per_page))
    if not tiles:
        raise ValueError(f"no usable images under {source}")
    rng = random.Random(seed)
    people = _people(rng, 60)
    builder = SiteBuilder(first_fid=200_001)
    start = datetime(2009, 1, 1, tzinfo=UTC)
    span = datetime(2025, 1, 1, tzinfo=UTC) - start
    slugs: set[str] = set()
    for index in range(pages):
        chunk = [tiles[(index * images_per_page + n) % len(tiles)] for n in range(images_per_page)]
        noun = _NOUNS.get(chunk[0].atlas, f"{chunk[0].atlas} sprites")
        title = f"{rng.choice(_ADJECTIVES)} {noun} {index + 1}"
        slug = slugify(title)
        while slug in slugs:
            slug += "-0"
        slugs.add(slug)
        when = start + span * (index + rng.random() * 0.9) / pages
        when = when.replace(second=0, microsecond=0)
        author = Person.user(rng.choice(people))
        if rng.random() < 0.05:
            author = Person(f"{rng.choice(people).capitalize()} Studio")
        submitter = Person.user(rng.choice(people)) if rng.random() < 0.2 else None
        if submitter is None and author.url is None:
            submitter = Person.user(rng.choice(people))
        collaborators = (
            tuple(Person.user(n) for n in rng.sample(people, 2)) if rng.random() < 0.1 else ()
        )
        stem = f"{chunk[0].atlas}_{index:05d}"
        direct = max(1, images_per_page - 2)
        links = [
            builder.file(f"{stem}_{n}.png", packing.png(t.image), when)
            for n, t in enumerate(chunk[:direct])
        ]
        packed = chunk[direct:]
        if packed:
            entries = [
                Entry(f"{slug}/{stem}_{direct + n}.png", packing.png(t.image))
                for n, t in enumerate(packed)
            ]
            entries.append(Entry(f"{slug}/credits.txt", f"{title} by {author.name}\n".encode()))
            links.append(builder.file(f"{stem}.zip", packing.zip_archive(entries, when), when))
        if index % SHEET_EVERY == 0:
            first = chunk[0]
            width, height = SHEET_CELLS[0] * tile_size, SHEET_CELLS[1] * tile_size
            x = min(first.x, max(0, first.atlas_image.width - width))
            y = min(first.y, max(0, first.atlas_image.height - height))
            sheet = first.atlas_image.crop((x, y, x + width, y + height))
            links.append(builder.file(f"{stem}_sheet.png", packing.png(sheet), when))
        preview = builder.file(
            f"{stem}_preview.png", packing.png(imaging.upscale(chunk[0].image, 2)), when
        )
        attribution_roll = rng.random()
        builder.pages.append(
            SitePage(
                slug=slug,
                node_id=20_000 + index * 7 + rng.randint(0, 6),
                title=title,
                author=author,
                submitter=submitter,
                collaborators=collaborators,
                post_date=when,
                licences=_licences(rng),
                tags=tuple(rng.sample(_TAGS, rng.randint(2, 5))),
                description=(
                    f"{title}: {len(chunk)} tiles of {tile_size}x{tile_size} pixels.\n\n"
                    f"Cut from {chunk[0].atlas}."
                ),
                attribution=(
                    f"{author.name}" if attribution_roll < 0.7 else None  # 30%: no notice
                ),
                attribution_field="copyright-notice"
                if attribution_roll < 0.5
                else "art-attribution",
                favorites=int(rng.expovariate(0.1)),
                preview=preview,
                files=tuple(links),
                comments=(
                    (
                        Comment(
                            Person.user(rng.choice(people)),
                            when + timedelta(days=3),
                            "<p>Nice!</p>",
                        ),
                    )
                    if rng.random() < 0.1
                    else ()
                ),
            )
        )
    return builder.build(f"scale:{Path(source).name}:{pages}")
