"""The bundled sample site: 17 submissions built from Kenney's CC0 sprites in ``sample/``.

Each page exists to exercise something the crawler and extractor meet on the real site:
archives of every kind (zip with a top folder and ``__MACOSX`` junk, 7z, tar.gz, zip in zip,
7z in zip), hostile and corrupt archives, undecodable images, a 404 file link, awkward file
names, a link text that differs from the URL, an exact re-upload on a later page, odd markup,
and a page whose files were withdrawn for licensing reasons. Everything is derived
deterministically from the sample files, so two builds are byte-identical.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from io import BytesIO

from PIL import Image

from ogasearch.localsite import imaging, packing
from ogasearch.localsite.model import (
    Comment,
    FileLink,
    Person,
    Site,
    SitePage,
    StoredFile,
    content_type_for,
)
from ogasearch.localsite.packing import Entry

SAMPLE_ROOT = resources.files("ogasearch.localsite") / "sample"


@cache
def sprite_bytes(path: str) -> bytes:
    """A committed Kenney file, by its path under ``sample/kenney/``."""
    return (SAMPLE_ROOT / "kenney" / path).read_bytes()


def sprite(path: str) -> Image.Image:
    image = Image.open(BytesIO(sprite_bytes(path)))
    image.load()
    return image


def kenney_licence() -> bytes:
    return sprite_bytes("License.txt")


class SiteBuilder:
    """Collects stored files and pages; hands out file ids in order."""

    def __init__(self, first_fid: int = 5001) -> None:
        self.files: dict[str, StoredFile] = {}
        self.pages: list[SitePage] = []
        self._fid = first_fid

    def file(
        self,
        name: str,
        data: bytes,
        when: datetime,
        *,
        link_text: str | None = None,
    ) -> FileLink:
        if name in self.files:
            raise ValueError(f"file {name!r} stored twice")
        self.files[name] = StoredFile(name, data, content_type_for(name), when)
        return self._link(name, link_text, declared_size=None, seed=data)

    def missing(self, name: str, declared_size: int) -> FileLink:
        """A link to a file the site no longer has (answers 404)."""
        return self._link(name, None, declared_size=declared_size, seed=name.encode())

    def _link(
        self, name: str, link_text: str | None, declared_size: int | None, seed: bytes
    ) -> FileLink:
        fid = self._fid
        self._fid += 1
        downloads = int(hashlib.sha256(seed).hexdigest()[:6], 16) % 900 + 3
        return FileLink(name, fid, link_text, downloads, declared_size)

    def build(self, name: str) -> Site:
        return Site(self.pages, self.files.values(), name=name)


def _at(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _png(path: str) -> bytes:
    return sprite_bytes(path)


def _entries(folder: str, paths: Sequence[str]) -> list[Entry]:
    """Sprites as archive entries under ``folder/``, keeping their file names."""
    return [Entry(f"{folder}/{path.rsplit('/', 1)[-1]}", _png(path)) for path in paths]


def _preview(paths: Sequence[str], columns: int, factor: int = 1) -> bytes:
    images = [imaging.upscale(sprite(p), factor) if factor > 1 else sprite(p) for p in paths]
    return packing.png(
        imaging.montage(images, columns, spacing=4, margin=4, background=(40, 44, 52, 255))
    )


def _broken_png(path: str) -> bytes:
    data = _png(path)
    return packing.truncated(data, len(data) * 3 // 5)


ADVENTURER = "animated_characters/female_adventurer/femaleAdventurer_"
WALK = [f"{ADVENTURER}walk{i}.png" for i in range(8)]
ADVENTURER_ALL = [
    f"{ADVENTURER}{pose}.png"
    for pose in ("climb0", "climb1", "fall", "idle", "jump", *(f"walk{i}" for i in range(8)))
]
ALIEN = [
    f"alien/alienBlue_{pose}.png"
    for pose in ("climb1", "climb2", "fall", "front", "jump", "walk1", "walk2")
]
PLATFORMER_SINGLES = [
    f"tiles/{t}.png"
    for t in ("grass", "grassMid", "grassLeft", "grassRight", "dirt", "boxCrate", "water", "bush")
]
ITEMS = [
    f"items/{i}.png"
    for i in (
        "coinGold",
        "coinSilver",
        "coinBronze",
        "gemBlue",
        "gemGreen",
        "gemRed",
        "gemYellow",
        "keyBlue",
        "keyRed",
        "star",
    )
]


def build_sample_site() -> Site:
    """The bundled site; see the module docstring."""
    b = SiteBuilder()
    oga = Person.user

    # 1. An old page: BMP files, plain-text author, older attribution field, two GPL licences.
    when = _at(2009, 3, 14, 18, 22)
    b.pages.append(
        SitePage(
            slug="bitmap-keys-and-star",
            node_id=1204,
            title="Bitmap keys and star (BMP)",
            author=Person("Old Bitmap Guy"),
            submitter=oga("archivist"),
            post_date=when,
            licences=("GPL 2.0", "GPL 3.0"),
            tags=("bmp", "keys", "items", "retro"),
            description=(
                "Converted from an old collection of Windows bitmaps.\n\n"
                "Magenta (#FF00FF) is the transparent colour."
            ),
            attribution='Please credit "Old Bitmap Guy" and link back to this page.',
            attribution_field="art-attribution",
            favorites=3,
            preview=b.file("bitmap_keys_preview.png", _preview(ITEMS[7:], 2, factor=1), when),
            files=(
                b.file("key_blue.bmp", packing.bmp(sprite("items/keyBlue.png")), when),
                b.file("star.bmp", packing.bmp(sprite("items/star.png")), when),
            ),
        )
    )

    # 2. Kenney's own tile sheet plus a zip of singles (top folder, __MACOSX junk, licence).
    when = _at(2010, 7, 2, 9, 41)
    singles = [
        *_entries("Platformer Singles", PLATFORMER_SINGLES),
        Entry("Platformer Singles/License.txt", kenney_licence()),
        Entry("__MACOSX/Platformer Singles/._grass.png", packing.apple_double()),
        Entry("__MACOSX/Platformer Singles/._water.png", packing.apple_double()),
    ]
    sheet_preview = imaging.fit_within(sprite("spritesheets/tiles.png"), 480)
    b.pages.append(
        SitePage(
            slug="platformer-tiles",
            node_id=3451,
            title="Platformer Tiles",
            author=oga("Kenney"),
            post_date=when,
            changed=when + timedelta(days=400, hours=3),
            licences=("CC0",),
            tags=("platformer", "tiles", "tileset", "grass", "dirt", "kenney"),
            description=(
                "A complete set of platformer tiles: grass, dirt, sand, snow, stone and more, "
                "128x128 each.\n\nThe sheet holds every tile; the zip has the singles."
            ),
            attribution="Kenney.nl - credit is not required but appreciated.",
            favorites=212,
            collections=(("kenneys-assets", "Kenney's Assets"), ("platformer", "Platformer")),
            preview=b.file("platformer_tiles_preview.png", packing.png(sheet_preview), when),
            files=(
                b.file("platformer_tiles.png", _png("spritesheets/tiles.png"), when),
                b.file("platformer-singles.zip", packing.zip_archive(singles, when), when),
            ),
            comments=(
                Comment(
                    oga("mossfang"),
                    when + timedelta(days=2, hours=5),
                    "<p>Great set! I used it with the alien from "
                    '<a href="{base}/sites/default/files/alienBlue_front.png">this sprite</a>.</p>',
                    picture="picture-77-1300000000.png",
                ),
                Comment(oga("Kenney"), when + timedelta(days=3), "<p>Thanks, enjoy!</p>"),
            ),
        )
    )

    # 3. External author (link to their site) submitted by another user; a 7z of all poses.
    when = _at(2011, 11, 6, 13, 8)
    b.pages.append(
        SitePage(
            slug="alien-blue-player-character",
            node_id=6702,
            title="Alien Blue - player character",
            author=Person("Kenney.nl", "https://www.kenney.nl"),
            submitter=oga("gameartbot"),
            post_date=when,
            licences=("CC0",),
            tags=("alien", "character", "platformer"),
            description="Blue alien with climb, fall, jump and walk poses.",
            attribution="Kenney.nl",
            favorites=48,
            collections=(("kenneys-assets", "Kenney's Assets"),),
            preview=b.file(
                "alien_blue_preview.png",
                packing.png(imaging.upscale(sprite("alien/alienBlue_front.png"), 2)),
                when,
            ),
            files=(
                b.file("alienBlue_front.png", _png("alien/alienBlue_front.png"), when),
                b.file("alienBlue_jump.png", _png("alien/alienBlue_jump.png"), when),
                b.file(
                    "alien_blue.7z",
                    packing.sevenzip_archive(
                        [
                            *_entries("alien_blue", ALIEN),
                            Entry("alien_blue/readme.txt", b"Alien Blue by Kenney.nl (CC0)\n"),
                        ],
                        when,
                    ),
                    when,
                ),
            ),
        )
    )

    # 4. Animation: animated GIF (and GIF preview), a strip sheet, a tar.gz; collaborators.
    when = _at(2012, 5, 19, 21, 15)
    walk_frames = [sprite(p) for p in WALK]
    frames_tar = packing.tar_gz_archive(
        [
            *_entries("female_adventurer", ADVENTURER_ALL),
            Entry("female_adventurer/CREDITS.txt", b"Art: pixelwren\nAnimation: mossfang\n"),
        ],
        when,
    )
    b.pages.append(
        SitePage(
            slug="female-adventurer-walk-cycle",
            node_id=9833,
            title="Female adventurer - walk cycle",
            author=oga("pixelwren"),
            collaborators=(oga("mossfang"), oga("tileknight")),
            post_date=when,
            licences=("CC-BY 3.0", "CC-BY-SA 3.0"),
            tags=("character", "animation", "walk cycle", "adventurer"),
            description=(
                "An 8-frame walk cycle plus idle, jump, fall and climb poses.\n\n"
                "Frames are 96x128. The strip has the walk frames left to right."
            ),
            attribution="Art by pixelwren, animation help by mossfang and tileknight.",
            attribution_field="art-attribution",
            favorites=97,
            preview=b.file(
                "adventurer_walk_preview.gif",
                packing.animated_gif([imaging.upscale(f, 2) for f in walk_frames], 100),
                when,
            ),
            files=(
                b.file("adventurer_walk.gif", packing.animated_gif(walk_frames, 100), when),
                b.file(
                    "adventurer_walk_strip.png",
                    packing.png(imaging.montage(walk_frames, 8)),
                    when,
                ),
                b.file("adventurer_idle.png", _png(f"{ADVENTURER}idle.png"), when),
                b.file("adventurer-frames.tar.gz", frames_tar, when),
            ),
        )
    )

    # 5. Link text differs from the URL name; zip with credits, __MACOSX and a zip inside.
    when = _at(2013, 2, 11, 16, 30)
    enemy_paths = [
        f"enemies/{n}.png" for n in ("bee", "fly", "frog", "frog_move", "ladybug", "mouse")
    ]
    slimes = packing.zip_archive(
        _entries("slimes", [f"enemies/slime{c}.png" for c in ("Blue", "Green", "Purple")]), when
    )
    gfx = packing.zip_archive(
        [
            *_entries("enemies", enemy_paths),
            Entry("enemies/credits.txt", b"Enemy sprites by RetroBard. OGA-BY 3.0.\n"),
            Entry("enemies/extra/slimes.zip", slimes),
            Entry("__MACOSX/enemies/._bee.png", packing.apple_double()),
        ],
        when,
    )
    b.pages.append(
        SitePage(
            slug="enemy-sprites",
            node_id=14520,
            title="Enemy sprites",
            author=oga("RetroBard"),
            post_date=when,
            licences=("OGA-BY 3.0",),
            tags=("enemies", "platformer", "monsters"),
            description="Bees, flies, frogs, ladybugs, mice and slimes for your platformer.",
            attribution="RetroBard (https://opengameart.org/users/retrobard)",
            favorites=31,
            preview=b.file("enemy_sprites_preview.png", _preview(enemy_paths, 3), when),
            files=(b.file("gfx_3.zip", gfx, when, link_text="gfx.zip"),),
        )
    )

    # 6. Same title (slug gets "-0"): recoloured variants of two sprites from page 5.
    when = _at(2013, 9, 3, 10, 2)
    red_bee = imaging.rotate_channels(sprite("enemies/bee.png"))
    red_fly = imaging.rotate_channels(sprite("enemies/fly.png"))
    b.pages.append(
        SitePage(
            slug="enemy-sprites-0",
            node_id=16003,
            title="Enemy sprites",
            author=oga("mossfang"),
            post_date=when,
            licences=("CC-BY 4.0",),
            tags=("enemies", "flying", "recolor"),
            description="Recoloured flying enemies.",
            attribution="mossfang, based on RetroBard's enemy sprites.",
            favorites=4,
            preview=b.file(
                "red_flyers_preview.png",
                packing.png(imaging.upscale(imaging.montage([red_bee, red_fly], 2), 2)),
                when,
            ),
            files=(
                b.file("bee_red.png", packing.png(red_bee), when),
                b.file("fly_red.png", packing.png(red_fly), when),
            ),
        )
    )

    # 7. Zip with a 7z inside.
    when = _at(2014, 11, 6, 13, 8)
    tank_paths = [f"topdown_tanks/tank_{c}.png" for c in ("blue", "red", "green", "dark", "sand")]
    terrain = packing.sevenzip_archive(
        _entries(
            "terrain",
            [f"topdown_tanks/{t}.png" for t in ("tileGrass1", "tileSand1", "treeGreen_large")],
        ),
        when,
    )
    b.pages.append(
        SitePage(
            slug="top-down-tanks",
            node_id=28764,
            title="Top-down tanks",
            author=oga("steelpaw"),
            post_date=when,
            licences=("CC0",),
            tags=("tanks", "top-down", "military", "vehicles"),
            description="Five tanks seen from above, with terrain tiles.",
            favorites=56,
            preview=b.file("tanks_preview.png", _preview(tank_paths, 5, factor=2), when),
            files=(
                b.file(
                    "tanks.zip",
                    packing.zip_archive(
                        [*_entries("tanks", tank_paths), Entry("tanks/terrain.7z", terrain)], when
                    ),
                    when,
                ),
            ),
        )
    )

    # 8. Awkward file names, a JPEG, a padded sprite sheet, three licences.
    when = _at(2015, 6, 21, 19, 45)
    gems_on_wood = imaging.on_background(
        imaging.montage([sprite(p) for p in ITEMS[:7]], 4, spacing=8, margin=8), (133, 94, 66)
    )
    b.pages.append(
        SitePage(
            slug="treasure-items",
            node_id=40211,
            title="Treasure & Items",
            author=oga("goldleaf"),
            post_date=when,
            licences=("CC-BY 4.0", "GPL 3.0", "CC-BY-SA 4.0"),
            tags=("items", "coins", "gems", "treasure"),
            description="Coins, gems, keys and a star. The sheet has 2px spacing and 1px margin.",
            attribution="CC-BY: credit goldleaf.",
            favorites=18,
            preview=b.file("treasure_preview.jpg", packing.jpeg(gems_on_wood, 85), when),
            files=(
                b.file("Coin gold (100% shiny)!.png", _png("items/coinGold.png"), when),
                b.file("gem's #2.png", _png("items/gemRed.png"), when),
                b.file("Schätze_宝石.png", _png("items/gemBlue.png"), when),
                b.file("items on wood.jpg", packing.jpeg(gems_on_wood, 92), when),
                b.file(
                    "items_sheet.png",
                    packing.png(
                        imaging.montage([sprite(p) for p in ITEMS], 5, spacing=2, margin=1)
                    ),
                    when,
                ),
            ),
        )
    )

    # 9. Author is an OGA user, submitted by someone else; zip with Thumbs.db and __MACOSX.
    when = _at(2016, 1, 30, 8, 12)
    ships = [f"space_shooter/playerShip1_{c}.png" for c in ("blue", "green", "orange")]
    space = [
        f"space_shooter/{n}.png"
        for n in ("laserBlue01", "laserRed01", "meteorGrey_big1", "meteorGrey_med1")
    ] + ["space_shooter/meteorGrey_small1.png"]
    b.pages.append(
        SitePage(
            slug="space-shooter-ships",
            node_id=51870,
            title="Space shooter ships",
            author=oga("Kenney"),
            submitter=oga("starfarer"),
            post_date=when,
            licences=("CC0",),
            tags=("space", "shmup", "ships", "meteors"),
            description="Player ships in three colours, lasers and meteors.",
            attribution="Kenney (www.kenney.nl)",
            favorites=75,
            preview=b.file("space_preview.png", _preview([*ships, *space[2:]], 3), when),
            files=(
                *(b.file(p.rsplit("/", 1)[1], _png(p), when) for p in ships),
                b.file(
                    "lasers-and-meteors.zip",
                    packing.zip_archive(
                        [
                            *_entries("space", space),
                            Entry(
                                "space/Thumbs.db", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(56)
                            ),
                            Entry("__MACOSX/space/._laserBlue01.png", packing.apple_double()),
                        ],
                        when,
                    ),
                    when,
                ),
            ),
        )
    )

    # 10. Bitmap font sheets.
    when = _at(2016, 8, 14, 22, 5)
    font = sprite("spritesheets/codepage_437.png")
    b.pages.append(
        SitePage(
            slug="cp437-bitmap-font",
            node_id=60233,
            title="CP437 bitmap font",
            author=oga("glyphsmith"),
            post_date=when,
            licences=("CC0",),
            tags=("font", "bitmap font", "text", "cp437"),
            description="Code page 437 glyphs, 9x16 each, and a tiny digit sheet.",
            favorites=22,
            preview=b.file(
                "cp437_preview.png",
                packing.png(imaging.on_background(imaging.upscale(font, 2), (20, 20, 20))),
                when,
            ),
            files=(
                b.file("codepage_437.png", _png("spritesheets/codepage_437.png"), when),
                b.file("number_sheet.png", _png("spritesheets/number_sheet.png"), when),
            ),
        )
    )

    # 11. A corrupt archive and an undecodable image next to a good file.
    when = _at(2017, 4, 2, 14, 50)
    good_zip = packing.zip_archive(
        _entries("dungeon", [f"tiles/{t}.png" for t in ("brickBrown", "lava")]), when
    )
    b.pages.append(
        SitePage(
            slug="dungeon-tiles",
            node_id=71020,
            title="Dungeon tiles",
            author=oga("cavernous"),
            post_date=when,
            licences=("CC-BY-SA 3.0",),
            tags=("dungeon", "tiles"),
            description="My upload seems to have failed half-way, will fix later.",
            favorites=1,
            preview=b.file(
                "dungeon_preview.png",
                packing.png(imaging.upscale(sprite("tiles/torch1.png"), 2)),
                when,
            ),
            files=(
                b.file("dungeon_tiles.zip", packing.truncated(good_zip, 40), when),
                b.file("floor_broken.png", _broken_png("tiles/brickBrown.png"), when),
                b.file("dungeon_torch.png", _png("tiles/torch1.png"), when),
            ),
        )
    )

    # 12. A file link that answers 404.
    when = _at(2018, 10, 10, 11, 11)
    b.pages.append(
        SitePage(
            slug="old-sprites-archive",
            node_id=83311,
            title="Old sprites archive",
            author=oga("archivist"),
            post_date=when,
            licences=("OGA-BY 3.0", "CC-BY 3.0"),
            tags=("archive", "signs"),
            description="Mirror of an old sprite archive; the big zip went missing in a move.",
            attribution="Various, see the zip.",
            favorites=0,
            preview=b.file("old_sprites_preview.png", _preview(["tiles/signExit.png"], 1), when),
            files=(
                b.missing("old_sprites.zip", 1_734_112),
                b.file("sign_exit.png", _png("tiles/signExit.png"), when),
            ),
        )
    )

    # 13. A hostile archive: path traversal, a symlink, a broken image among good ones.
    when = _at(2019, 3, 3, 17, 30)
    cave = packing.zip_archive(
        [
            Entry("cave/brick.png", _png("tiles/brickBrown.png")),
            Entry("cave/lava.png", _png("tiles/lava.png")),
            Entry("cave/broken.png", _broken_png("tiles/lava.png")),
            Entry("cave/notes.txt", b"Tiles for the cave level.\n"),
            Entry("cave/latest", symlink_to="/etc/passwd"),
            Entry("../../escape.png", _png("tiles/brickBrown.png")),
        ],
        when,
    )
    b.pages.append(
        SitePage(
            slug="cave-tileset-needs-review",
            node_id=90120,
            title="Cave tileset (needs review)",
            author=oga("unknown_uploader"),
            post_date=when,
            licences=("CC0",),
            tags=("cave", "tiles"),
            description="Cave tiles.",
            favorites=0,
            files=(b.file("cave_tiles.zip", cave, when),),
        )
    )

    # 14. An exact re-upload of page 4's idle frame under another name, licence and author.
    when = _at(2020, 5, 5, 5, 5)
    b.pages.append(
        SitePage(
            slug="hero-sprite",
            node_id=98877,
            title="Hero sprite",
            author=oga("copycat_carl"),
            post_date=when,
            licences=("CC-BY-SA 4.0",),
            tags=("hero", "character"),
            description="My hero sprite, free to use!",
            attribution="copycat_carl",
            favorites=2,
            files=(b.file("hero.png", _png(f"{ADVENTURER}idle.png"), when),),
        )
    )

    # 15. Odd markup: single quotes, extra whitespace, unclosed tags, missing optional fields.
    when = _at(2021, 9, 17, 12, 0)
    critters = imaging.upscale(
        imaging.montage([sprite("enemies/frog.png"), sprite("enemies/ladybug.png")], 2), 2
    )
    b.pages.append(
        SitePage(
            slug="critters-bugs-wip",
            node_id=105432,
            title="\n   Critters   & bugs <WIP>  \n",
            author=oga("mossfang"),
            post_date=when,
            licences=("CC0",),
            description=(
                "Work in progress.\n\nThe big image is the frog and the ladybug at 2x, "
                "the worm is new."
            ),
            favorites=None,
            markup="odd",
            files=(
                b.file("wormGreen.png", _png("enemies/wormGreen.png"), when),
                b.file("critters_2x.png", packing.png(critters), when),
            ),
        )
    )

    # 16. An archive name with spaces; submitted on someone's behalf with a collaborator.
    when = _at(2022, 12, 1, 9, 30)
    pack = packing.zip_archive(
        [
            *_entries("Items Pack v2", [ITEMS[i] for i in (1, 2, 4, 6, 8)]),
            Entry("Items Pack v2/readme.txt", "Items Pack v2 — by tileknight\n".encode()),
        ],
        when,
    )
    b.pages.append(
        SitePage(
            slug="platformer-items-pack",
            node_id=112001,
            title="Platformer items pack",
            author=oga("tileknight"),
            submitter=oga("RetroBard"),
            collaborators=(oga("goldleaf"),),
            post_date=when,
            licences=("CC-BY 3.0",),
            tags=("items", "platformer", "pickups"),
            description="Silver and bronze coins, gems and a red key.",
            attribution="tileknight and goldleaf",
            favorites=9,
            preview=b.file(
                "items_pack_preview.png", _preview([ITEMS[i] for i in (1, 2, 4, 6, 8)], 5), when
            ),
            files=(b.file("Items Pack v2.zip", pack, when),),
        )
    )

    # 17. Files withdrawn for licensing reasons: only the preview remains.
    when = _at(2023, 6, 6, 6, 6)
    b.pages.append(
        SitePage(
            slug="mega-character-pack",
            node_id=118765,
            title="Mega character pack",
            author=oga("bulkuploader"),
            post_date=when,
            licences=("CC-BY-SA 3.0",),
            tags=("characters", "pack"),
            description="Hundreds of characters collected from around the web.",
            favorites=14,
            preview=b.file(
                "mega_pack_preview.png",
                packing.png(imaging.upscale(sprite("alien/alienBlue_walk1.png"), 2)),
                when,
            ),
            files_unavailable=True,
        )
    )
    return b.build("sample")
