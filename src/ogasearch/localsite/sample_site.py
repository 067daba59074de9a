"""The bundled sample site: 17 submissions built from Kenney's CC0 sprites in ``sample/``.

Each page exists to exercise something the crawler and extractor meet on the real site:
archives of every kind (zip with a top folder and ``__MACOSX`` junk, 7z, tar.gz, zip in zip,
7z in zip), hostile and corrupt archives, undecodable images, a 404 file link, awkward file
names, a link text that differs from the URL, an exact re-upload on a later page, odd markup,
and a page whose files were withdrawn for licensing reasons. Everything is derived
deterministically from the sample files, so two builds are byte-identical.
"""

from __future__ import annotations

from datetime import timedelta

from ogasearch.localsite import imaging, packing
from ogasearch.localsite.builder import SiteBuilder, at
from ogasearch.localsite.kenney import (
    ADVENTURER,
    ADVENTURER_ALL,
    ALIEN,
    ITEMS,
    PLATFORMER_SINGLES,
    WALK,
    entries,
    kenney_licence,
    preview,
    sprite,
    sprite_bytes,
)
from ogasearch.localsite.model import Comment, Person, Site, SitePage
from ogasearch.localsite.packing import Entry
from ogasearch.localsite.sample_faults import (
    corrupt_files_page,
    hostile_archive_page,
    missing_file_page,
    odd_markup_page,
    withdrawn_files_page,
)


def build_sample_site() -> Site:
    """The bundled site; see the module docstring."""
    b = SiteBuilder()
    oga = Person.user

    # 1. An old page: BMP files, plain-text author, older attribution field, two GPL licences.
    when = at(2009, 3, 14, 18, 22)
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
            preview=b.file("bitmap_keys_preview.png", preview(ITEMS[7:], 2, factor=1), when),
            files=(
                b.file("key_blue.bmp", packing.bmp(sprite("items/keyBlue.png")), when),
                b.file("star.bmp", packing.bmp(sprite("items/star.png")), when),
            ),
        )
    )

    # 2. Kenney's own tile sheet plus a zip of singles (top folder, __MACOSX junk, licence).
    when = at(2010, 7, 2, 9, 41)
    singles = [
        *entries("Platformer Singles", PLATFORMER_SINGLES),
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
                b.file("platformer_tiles.png", sprite_bytes("spritesheets/tiles.png"), when),
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
    when = at(2011, 11, 6, 13, 8)
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
                b.file("alienBlue_front.png", sprite_bytes("alien/alienBlue_front.png"), when),
                b.file("alienBlue_jump.png", sprite_bytes("alien/alienBlue_jump.png"), when),
                b.file(
                    "alien_blue.7z",
                    packing.sevenzip_archive(
                        [
                            *entries("alien_blue", ALIEN),
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
    when = at(2012, 5, 19, 21, 15)
    walk_frames = [sprite(p) for p in WALK]
    frames_tar = packing.tar_gz_archive(
        [
            *entries("female_adventurer", ADVENTURER_ALL),
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
                b.file("adventurer_idle.png", sprite_bytes(f"{ADVENTURER}idle.png"), when),
                b.file("adventurer-frames.tar.gz", frames_tar, when),
            ),
        )
    )

    # 5. Link text differs from the URL name; zip with credits, __MACOSX and a zip inside.
    when = at(2013, 2, 11, 16, 30)
    enemy_paths = [
        f"enemies/{n}.png" for n in ("bee", "fly", "frog", "frog_move", "ladybug", "mouse")
    ]
    slimes = packing.zip_archive(
        entries("slimes", [f"enemies/slime{c}.png" for c in ("Blue", "Green", "Purple")]), when
    )
    gfx = packing.zip_archive(
        [
            *entries("enemies", enemy_paths),
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
            preview=b.file("enemy_sprites_preview.png", preview(enemy_paths, 3), when),
            files=(b.file("gfx_3.zip", gfx, when, link_text="gfx.zip"),),
        )
    )

    # 6. Same title (slug gets "-0"): recoloured variants of two sprites from page 5.
    when = at(2013, 9, 3, 10, 2)
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
    when = at(2014, 11, 6, 13, 8)
    tank_paths = [f"topdown_tanks/tank_{c}.png" for c in ("blue", "red", "green", "dark", "sand")]
    terrain = packing.sevenzip_archive(
        entries(
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
            preview=b.file("tanks_preview.png", preview(tank_paths, 5, factor=2), when),
            files=(
                b.file(
                    "tanks.zip",
                    packing.zip_archive(
                        [*entries("tanks", tank_paths), Entry("tanks/terrain.7z", terrain)], when
                    ),
                    when,
                ),
            ),
        )
    )

    # 8. Awkward file names, a JPEG, a padded sprite sheet, three licences.
    when = at(2015, 6, 21, 19, 45)
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
                b.file("Coin gold (100% shiny)!.png", sprite_bytes("items/coinGold.png"), when),
                b.file("gem's #2.png", sprite_bytes("items/gemRed.png"), when),
                b.file("Schätze_宝石.png", sprite_bytes("items/gemBlue.png"), when),
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
    when = at(2016, 1, 30, 8, 12)
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
            preview=b.file("space_preview.png", preview([*ships, *space[2:]], 3), when),
            files=(
                *(b.file(p.rsplit("/", 1)[1], sprite_bytes(p), when) for p in ships),
                b.file(
                    "lasers-and-meteors.zip",
                    packing.zip_archive(
                        [
                            *entries("space", space),
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
    when = at(2016, 8, 14, 22, 5)
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
                b.file("codepage_437.png", sprite_bytes("spritesheets/codepage_437.png"), when),
                b.file("number_sheet.png", sprite_bytes("spritesheets/number_sheet.png"), when),
            ),
        )
    )

    b.pages.append(corrupt_files_page(b))  # 11.

    b.pages.append(missing_file_page(b))  # 12.

    b.pages.append(hostile_archive_page(b))  # 13.

    # 14. An exact re-upload of page 4's idle frame under another name, licence and author.
    when = at(2020, 5, 5, 5, 5)
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
            files=(b.file("hero.png", sprite_bytes(f"{ADVENTURER}idle.png"), when),),
        )
    )

    b.pages.append(odd_markup_page(b))  # 15.

    # 16. An archive name with spaces; submitted on someone's behalf with a collaborator.
    when = at(2022, 12, 1, 9, 30)
    pack = packing.zip_archive(
        [
            *entries("Items Pack v2", [ITEMS[i] for i in (1, 2, 4, 6, 8)]),
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
                "items_pack_preview.png", preview([ITEMS[i] for i in (1, 2, 4, 6, 8)], 5), when
            ),
            files=(b.file("Items Pack v2.zip", pack, when),),
        )
    )

    b.pages.append(withdrawn_files_page(b))  # 17.

    return b.build("sample")
