"""Conflicts report quality: planted re-uploads on a local OGA copy, found by the real pipeline.

A local site is generated from Dungeon Crawl's CC0 tiles (Debian's crawl-tiles-data):

* **originals**: pages of distinct 32x32 tiles, every seventh page also a sprite sheet of eight
  more tiles, by different authors under CC-BY-SA 3.0, GPL 3.0, CC-BY 3.0 or CC0;
* **planted copies**: one page per copy of one original tile, cycling through the edits
  (exact, upscaled x3, recoloured, flipped, cropped, JPEG of a x4 upscale on white, and one
  tile cut from a sheet), alternately a loose PNG and an archive member; every fourth copy is by the
  original's own author, the others by someone else under CC0 (the trap on SA/GPL/BY art);
* **distractors** (never a conflict): animations (four frames of one tile moving a pixel at a
  time on one page) and tile set variants (one tile in four colours on one page), plus pages
  of unrelated tiles.

Tiles are chosen so that no two planted pages share art by accident: no two chosen tiles have
equal canonical pixels or an equal colour pattern (Dungeon Crawl holds recoloured variants of
many tiles; a copy that is not planted would be counted against the report).

``ogasearch update`` runs against the site over loopback (every stage, provenance included);
then the stored groups are scored against the planted truth:

* recall: planted copies whose page is in one group with its original's page (also per edit);
* precision: found groups whose pages all belong to one planted group (a group made only of
  distractor or unrelated pages is a false conflict);
* flags: planted copies whose group member carries the expected flags.

The rebuild time (``ogasearch provenance --rebuild``) is measured on the same catalog and
extrapolated linearly to 100,000 images: each image costs one matcher search from what was
stored for it (``Matcher.search_indexed``: its stored vector's neighbours from the HNSW index,
indexed hash and patch lookups, a bounded number of candidates verified pixel by pixel; no
CNN), which does not grow with the catalog, and the grouping step reads
the links once. A larger catalog only adds the index's logarithmic search cost and the patch
lookups of more common fingerprints, so the extrapolation is a floor, not a measurement.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image, ImageOps
from sqlalchemy import create_engine, text

from _common import CRAWL_TILES, Report, add_report_arguments, clean_env
from ogasearch.embed.preprocess import canonical, pixel_hash, structure_hash
from ogasearch.localsite import imaging, packing, serve_site
from ogasearch.localsite.builder import SiteBuilder
from ogasearch.localsite.model import Person, Site, SitePage
from ogasearch.localsite.packing import Entry
from ogasearch.localsite.scale_site import source_tiles
from ogasearch.match.verify import place
from ogasearch.provenance.licences import conflicting

EDITS = ("exact", "upscaled", "recoloured", "flipped", "cropped", "re-compressed", "sheet")
WHITE = (255, 255, 255)  # a JPEG re-upload is flattened onto white, as image editors do
NEAR_VARIANT = 0.5  # tiles agreeing on this share of pixels are variants of one another
SHEET_EVERY = 7  # every seventh original also has a sheet; its copy is one tile cut from it
ORIGINAL_LICENCES = ("CC-BY-SA 3.0", "GPL 3.0", "CC-BY 3.0", "CC0")


@dataclass
class Truth:
    copies: dict[str, tuple[str, str, list[str]]] = field(default_factory=dict)
    # copy slug -> (original slug, edit, expected flags)
    groups: dict[str, set[str]] = field(default_factory=dict)  # original slug -> its pages


def _edit(tile: Image.Image, edit: str) -> Image.Image:
    if edit == "upscaled":
        return imaging.upscale(tile, 3)
    if edit == "recoloured":
        return imaging.rotate_channels(tile)
    if edit == "flipped":
        return ImageOps.mirror(tile)
    if edit == "cropped":
        big = imaging.upscale(tile, 2)
        return big.crop((4, 4, big.width - 8, big.height - 6))
    return tile  # exact, sheet (the tile as cut), re-compressed (encoded as JPEG below)


def _distinct_tiles(count: int) -> list[Image.Image]:
    """Tiles with no shared canonical pixels or colour pattern, none agreeing with another on
    half its pixels (Dungeon Crawl's variants of one tile), and enough art to match."""
    seen: set[str] = set()
    out: list[Image.Image] = []
    kept: list[Image.Image] = []
    for tile in source_tiles(CRAWL_TILES, 32):
        canon = canonical(tile.image)
        pattern = structure_hash(canon)
        keys = {pixel_hash(canon), pattern or ""}
        if pattern is None or keys & seen:
            continue
        if any(place(canon, other).agreement >= NEAR_VARIANT for other in kept):
            continue
        seen |= keys
        kept.append(canon)
        out.append(tile.image)
        if len(out) == count:
            break
    if len(out) < count:
        raise SystemExit(f"only {len(out)} distinct tiles under {CRAWL_TILES}")
    return out


def build_planted_site(
    originals: int, distractors: int, fillers: int, seed: int
) -> tuple[Site, Truth]:
    rng = random.Random(seed)
    sheets = originals // SHEET_EVERY + 1
    tiles = iter(_distinct_tiles(originals * 3 + sheets * 8 + distractors + fillers * 3))
    builder = SiteBuilder(first_fid=300_001)
    truth = Truth()
    start = datetime(2012, 1, 1, tzinfo=UTC)
    node = iter(range(40_000, 10**6))

    def page(
        slug: str, author: str, licences: tuple[str, ...], when: datetime, links: list
    ) -> None:  # type: ignore[type-arg]
        builder.pages.append(
            SitePage(
                slug=slug,
                node_id=next(node),
                title=slug.replace("-", " ").title(),
                author=Person.user(author),
                post_date=when,
                licences=licences,
                files=tuple(links),
            )
        )

    plan = []
    for i in range(originals):
        when = start + timedelta(days=7 * i)
        own = [next(tiles) for _ in range(3)]
        sheet_tiles = [next(tiles) for _ in range(8)] if i % SHEET_EVERY == 6 else []
        slug = f"original-{i:03d}"
        licences = (ORIGINAL_LICENCES[i % len(ORIGINAL_LICENCES)],)
        links = [builder.file(f"{slug}_{n}.png", packing.png(t), when) for n, t in enumerate(own)]
        if sheet_tiles:
            sheet = imaging.montage(sheet_tiles, columns=4, spacing=2, margin=2)
            links.append(builder.file(f"{slug}_sheet.png", packing.png(sheet), when))
        author = f"artist{i:03d}"
        page(slug, author, licences, when, links)
        truth.groups[slug] = {slug}
        plan.append((slug, author, licences, when, own, sheet_tiles))
    for n in range(originals):  # one planted copy per original page
        slug, author, licences, when, own, sheet_tiles = plan[n]
        edit = EDITS[n % len(EDITS)]  # "sheet" falls on the originals with a sheet
        art = _edit(sheet_tiles[rng.randrange(8)] if edit == "sheet" else own[0], edit)
        data = (
            packing.jpeg(imaging.on_background(imaging.upscale(art, 4), WHITE))
            if edit == "re-compressed"
            else packing.png(art)
        )
        name = f"copy_{n:03d}." + ("jpg" if edit == "re-compressed" else "png")
        same = n % 4 == 3
        copy_author = author if same else f"uploader{n:03d}"
        copy_licences = licences if same else ("CC0",)
        later = when + timedelta(days=3 + n % 5, hours=1)
        if n % 2:
            link = builder.file(name, data, later)
        else:
            archive = packing.zip_archive([Entry(f"pack/{name}", data)], later)
            link = builder.file(f"copy_{n:03d}.zip", archive, later)
        copy_slug = f"copy-{n:03d}-{edit.replace(' ', '-')}"
        page(copy_slug, copy_author, copy_licences, later, [link])
        flags = ["same-author"] if same else ["different-author"]
        if conflicting(licences, copy_licences):
            flags.append("licence-conflict")
        truth.copies[copy_slug] = (slug, edit, flags)
        truth.groups[slug].add(copy_slug)
    late = start + timedelta(days=7 * originals + 30)
    for n in range(distractors):
        base = next(tiles)
        if n % 2 == 0:  # an animation: the sprite moving a pixel per frame
            frames = [ImageOps.expand(base, (k, 0, 3 - k, 0)) for k in range(4)]
            kind = "animation"
        else:  # a tile set's colour variants
            frames = [
                base,
                imaging.rotate_channels(base),
                ImageOps.invert(base.convert("RGB")).convert("RGBA"),
                imaging.rotate_channels(imaging.rotate_channels(base)),
            ]
            kind = "variants"
        slug = f"{kind}-{n:03d}"
        when = late + timedelta(days=n)
        links = [
            builder.file(f"{slug}_{k}.png", packing.png(f), when) for k, f in enumerate(frames)
        ]
        page(slug, f"animator{n:03d}", ("CC-BY 3.0",), when, links)
    for n in range(fillers):
        slug = f"filler-{n:03d}"
        when = late + timedelta(days=distractors + n)
        links = [builder.file(f"{slug}_{k}.png", packing.png(next(tiles)), when) for k in range(3)]
        page(slug, f"filler{n:03d}", ("CC0",), when, links)
    return builder.build(f"planted:{originals}"), truth


def found_groups(data: Path) -> list[list[tuple[str, str, str]]]:
    """Every stored group: (page slug, how, flags) of each member, the original first."""
    engine = create_engine(f"sqlite:///{data / 'catalog.sqlite'}")
    groups: dict[int, list[tuple[str, str, str]]] = {}
    with engine.connect() as conn:
        for gid, slug, how, flags in conn.execute(
            text(
                "SELECT m.group_id, p.slug, m.how, m.flags FROM copy_group_members m"
                " JOIN pages p ON p.id = m.page_id ORDER BY m.group_id, m.position"
            )
        ):
            groups.setdefault(gid, []).append((slug, how, flags))
    engine.dispose()
    return list(groups.values())


def score(truth: Truth, groups: list[list[tuple[str, str, str]]]) -> dict[str, object]:
    page_group = {p: o for o, pages in truth.groups.items() for p in pages}
    correct = [
        g for g in groups if len({page_group.get(slug, f"?{slug}") for slug, _, _ in g}) == 1
    ]
    member = {(g[0][0], slug): (how, flags) for g in groups for slug, how, flags in g[1:]}
    per_edit: dict[str, list[int]] = {e: [0, 0] for e in EDITS}
    flags_ok = 0
    for copy, (original, edit, flags) in truth.copies.items():
        per_edit[edit][1] += 1
        together = [g for g in groups if {original, copy} <= {s for s, _, _ in g}]
        if together:
            per_edit[edit][0] += 1
            got = member.get((original, copy))
            flags_ok += got is not None and got[1] == ",".join(flags)
    recalled = sum(hit for hit, _ in per_edit.values())
    planted_groups = [pages for pages in truth.groups.values() if len(pages) > 1]
    whole = sum(any(pages <= {s for s, _, _ in g} for g in groups) for pages in planted_groups)
    return {
        "copies": len(truth.copies),
        "recall": recalled / max(1, len(truth.copies)),
        "group_recall": whole / max(1, len(planted_groups)),
        "precision": len(correct) / max(1, len(groups)),
        "groups": len(groups),
        "false": [g for g in groups if g not in correct],
        "flags": flags_ok / max(1, recalled),
        "per_edit": per_edit,
    }


def ogasearch(*args: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ogasearch", *args], env=clean_env(), capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"ogasearch {args[0]} failed:\n{proc.stderr[-4000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--originals", type=int, default=42)
    parser.add_argument("--distractors", type=int, default=16)
    parser.add_argument("--fillers", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, help="Data folder (default: a temporary one).")
    add_report_arguments(parser)
    args = parser.parse_args()
    report = Report("Conflicts report: planted re-uploads", args)
    site, truth = build_planted_site(args.originals, args.distractors, args.fillers, args.seed)
    data = args.data or Path(tempfile.mkdtemp(prefix="ogasearch-provenance-"))
    with serve_site(site) as running:
        update_s = ogasearch("update", "--data", str(data), "--site", running.base_url)
    engine = create_engine(f"sqlite:///{data / 'catalog.sqlite'}")
    with engine.connect() as conn:
        images = conn.execute(text("SELECT count(*) FROM images")).scalar_one()
    engine.dispose()
    rebuild_s = ogasearch("provenance", "--rebuild", "--data", str(data))
    result = score(truth, found_groups(data))
    per_edit = result["per_edit"]
    assert isinstance(per_edit, dict)
    report.line(
        f"Site: {len(site.pages())} pages ({args.originals} originals, {result['copies']} planted"
        f" copies, {args.distractors} distractor pages of animation frames or tile set variants,"
        f" {args.fillers} unrelated pages), {images} catalog images (tiles included)."
    )
    report.line("")
    report.table(
        ["measure", "value"],
        [
            ("recall (planted copies grouped with their original)", f"{result['recall']:.3f}"),
            ("recall of whole planted groups", f"{result['group_recall']:.3f}"),
            ("precision (groups within one planted group)", f"{result['precision']:.3f}"),
            ("groups found", result["groups"]),
            ("flags as planted (of recalled copies)", f"{result['flags']:.3f}"),
            ("`ogasearch update` (every stage), s", f"{update_s:.1f}"),
            ("`ogasearch provenance --rebuild`, s", f"{rebuild_s:.1f}"),
            ("rebuild, images/s", f"{images / rebuild_s:.1f}"),
            ("100k-image rebuild, extrapolated, h", f"{100_000 * rebuild_s / images / 3600:.1f}"),
        ],
    )
    report.table(
        ["edit", "found", "planted"], [(e, hit, n) for e, (hit, n) in per_edit.items() if n]
    )
    false = result["false"]
    assert isinstance(false, list)
    if false:
        report.line(
            "False groups: " + "; ".join(" + ".join(s for s, _, _ in g) for g in false[:10])
        )
    report.finish()


if __name__ == "__main__":
    main()
