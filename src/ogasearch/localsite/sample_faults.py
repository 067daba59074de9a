"""The sample site's pages that a crawl must survive: a corrupt archive and an undecodable
image, a file link that answers 404, a hostile archive (path traversal, a symlink), odd markup,
and files withdrawn for licensing reasons. ``build_sample_site`` adds them in page order.
"""

from __future__ import annotations

from ogasearch.localsite import imaging, packing
from ogasearch.localsite.builder import SiteBuilder, at
from ogasearch.localsite.kenney import broken_png, entries, preview, sprite, sprite_bytes
from ogasearch.localsite.model import Person, SitePage
from ogasearch.localsite.packing import Entry


def corrupt_files_page(b: SiteBuilder) -> SitePage:
    """Page 11: a corrupt archive and an undecodable image next to a good file."""
    oga = Person.user
    when = at(2017, 4, 2, 14, 50)
    good_zip = packing.zip_archive(
        entries("dungeon", [f"tiles/{t}.png" for t in ("brickBrown", "lava")]), when
    )
    return SitePage(
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
            b.file("floor_broken.png", broken_png("tiles/brickBrown.png"), when),
            b.file("dungeon_torch.png", sprite_bytes("tiles/torch1.png"), when),
        ),
    )


def missing_file_page(b: SiteBuilder) -> SitePage:
    """Page 12: a file link that answers 404."""
    oga = Person.user
    when = at(2018, 10, 10, 11, 11)
    return SitePage(
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
        preview=b.file("old_sprites_preview.png", preview(["tiles/signExit.png"], 1), when),
        files=(
            b.missing("old_sprites.zip", 1_734_112),
            b.file("sign_exit.png", sprite_bytes("tiles/signExit.png"), when),
        ),
    )


def hostile_archive_page(b: SiteBuilder) -> SitePage:
    """Page 13: a hostile archive: path traversal, a symlink, a broken image among good ones."""
    oga = Person.user
    when = at(2019, 3, 3, 17, 30)
    cave = packing.zip_archive(
        [
            Entry("cave/brick.png", sprite_bytes("tiles/brickBrown.png")),
            Entry("cave/lava.png", sprite_bytes("tiles/lava.png")),
            Entry("cave/broken.png", broken_png("tiles/lava.png")),
            Entry("cave/notes.txt", b"Tiles for the cave level.\n"),
            Entry("cave/latest", symlink_to="/etc/passwd"),
            Entry("../../escape.png", sprite_bytes("tiles/brickBrown.png")),
        ],
        when,
    )
    return SitePage(
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


def odd_markup_page(b: SiteBuilder) -> SitePage:
    """Page 15: single quotes, extra whitespace, unclosed tags, missing optional fields."""
    oga = Person.user
    when = at(2021, 9, 17, 12, 0)
    critters = imaging.upscale(
        imaging.montage([sprite("enemies/frog.png"), sprite("enemies/ladybug.png")], 2), 2
    )
    return SitePage(
        slug="critters-bugs-wip",
        node_id=105432,
        title="\n   Critters   & bugs <WIP>  \n",
        author=oga("mossfang"),
        post_date=when,
        licences=("CC0",),
        description=(
            "Work in progress.\n\nThe big image is the frog and the ladybug at 2x, the worm is new."
        ),
        favorites=None,
        markup="odd",
        files=(
            b.file("wormGreen.png", sprite_bytes("enemies/wormGreen.png"), when),
            b.file("critters_2x.png", packing.png(critters), when),
        ),
    )


def withdrawn_files_page(b: SiteBuilder) -> SitePage:
    """Page 17: files withdrawn for licensing reasons: only the preview remains."""
    oga = Person.user
    when = at(2023, 6, 6, 6, 6)
    return SitePage(
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
