"""Provenance stage: the same art on more than one page, grouped with the earliest page first.

Runs after ``index``. Two steps, both resumable:

1. **Match.** Every indexed image not in ``copy_checks`` (new, or a new row for a changed file)
   is searched for with the search's own matcher (``match.matching.Matcher``: equal canonical
   pixels, equal colour-index pattern, shared patch fingerprints and vector neighbours checked
   pixel by pixel). Each candidate on *another* page found by the "exact" or "near" path (a
   vector-only likeness is not a copy) becomes a ``copy_links`` row saying how it was copied
   (``provenance.hows``); the image's ``copy_checks`` row is written in the same transaction
   (``catalog.runner``: claimed in batches, progress with items/s and ETA). Tiles are matched
   too, but a link between two tiles is left out: a sheet copied whole is already linked by
   its whole image, and a sprite cut from a sheet links a whole image to a tile.
2. **Group.** The connected components of the links that hold an image checked but not yet
   ``grouped`` (or an image of a page fetched again since the last build, or a member of a
   group that lost a member) are rebuilt: one ``copy_groups`` row each, its pages in
   ``copy_group_members`` (the earliest post date first), every other page with how it
   matches and its flags (``provenance.flags``). Other groups are left alone.

Art on one page never forms a group by itself: links only join different pages, so the
frames of an animation or the variants of a tile set on their own page are never a conflict.
``rebuild`` clears the three tables and matches everything again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import Connection, Engine, Row, delete, exists, func, insert, select, update

from ogasearch.catalog.db import record_failure, utcnow
from ogasearch.catalog.dialect import insert_ignore
from ogasearch.catalog.locks import serialise
from ogasearch.catalog.runner import Pending, run
from ogasearch.catalog.schema import (
    authors,
    copy_checks,
    copy_group_members,
    copy_groups,
    copy_links,
    embeddings,
    files,
    images,
    licenses,
    meta,
    page_authors,
    page_licenses,
    pages,
)
from ogasearch.catalog.vectors import decode_vectors
from ogasearch.embed.preprocess import canonicalise, flip, structure_hash
from ogasearch.extract.images import ImageRejected
from ogasearch.extract.pixels import PixelCache, pixel_rows, tile_box
from ogasearch.match.adapters import CatalogHashes, CatalogPixels
from ogasearch.match.lookups import chunks, image_rows
from ogasearch.match.matching import MatchConfig, Matcher, contained
from ogasearch.match.verify import flattened_pairs, place
from ogasearch.provenance.flags import PageFacts, copy_flags, join_flags
from ogasearch.provenance.hows import how_copied
from ogasearch.workspace import Workspace

log = logging.getLogger(__name__)

BATCH = 16  # images matched per transaction
K = 50  # matches asked of the matcher per image (copies of one sprite on many pages)
KEEP = 4096  # canonical images of candidates kept between images (they recur)
MIN_OPAQUE = 16  # fewer opaque canonical pixels than this: too little art to call a copy
BUILT_AT = "provenance.built_at"  # meta: when the last build started
COPY_PATHS = ("exact", "near")  # matcher paths that mean "a copy"; "vector" means "alike"
# A pixel-verified match (not equal canonical pixels nor an equal colour pattern) is a copy
# only when this share of its content pixels agree at the best placement
# (``match.verify.place``): the search's similarity (a mean difference) also passes textures
# of the same tones, which a report that says "copy" must not. Measured with
# bench/eval_provenance.py (docs/benchmarks.md): unrelated tiles of one tile set agree on at
# most 0.87, JPEG copies and crops on 0.88 and more.
AGREE_MIN = 0.85
# The best vector neighbours are checked the same way: the search's verification scales its
# similarity by how much of the candidate the query covers, so a crop that agrees pixel for
# pixel can stay below its threshold and come back only as "vector".
VECTOR_TOP = 8
VERIFIED_HOWS = ("cropped", "re-compressed", "edited", "cut from a sheet")

Link = tuple[int, int]  # (low_id, high_id)


@dataclass
class ProvenanceStats:
    checked: int = 0
    skipped: int = 0  # too little art to match on
    failed: int = 0
    links: int = 0
    groups: int = 0  # groups written by this run
    removed: int = 0  # groups deleted by this run (rebuilt or dissolved)


def _pending() -> Pending:
    """Indexed images the stage has not matched yet."""
    checked = exists().where(copy_checks.c.image_id == images.c.id)
    query = (
        pixel_rows()
        .add_columns(files.c.page_id, embeddings.c.vector, embeddings.c.dim)
        .join(files, files.c.id == images.c.file_id)
        .join(embeddings, embeddings.c.image_id == images.c.id)
        .where(images.c.indexed.is_(True), ~checked)
        .order_by(images.c.id)
    )
    return Pending(query, images)  # a checked image is no longer pending: no cursor needed


def _enough_art(img: Any) -> bool:
    """False for art too plain to call a copy: a flat colour, two-colour shapes (no colour
    pattern to match on) or a handful of pixels."""
    canon = canonicalise(img).image
    opaque = int(np.count_nonzero(np.asarray(canon.getchannel("A"))))
    return opaque >= MIN_OPAQUE and structure_hash(canon) is not None


def _agreement(a: Image.Image, b: Image.Image) -> float:
    """How much of two canonical pictures agrees: either placed in the other, or (only when
    that is not enough, it costs more) the smaller as a part of the larger."""
    agree = max(place(a, b).agreement, place(b, a).agreement)
    return agree if agree >= AGREE_MIN else max(agree, contained(a, b).agreement)


def _disagreeing(pixels: CatalogPixels, img: Image.Image, ids: Sequence[int]) -> list[int]:
    """The pixel-verified candidates whose content agrees with the image's on fewer than
    ``AGREE_MIN`` of their pixels in every way the matcher compares them: either way round,
    either mirrored, flattened onto a background (``verify.flattened_pairs``), or the smaller
    as a part of the larger (``matching.contained``)."""
    if not ids:
        return []
    canon = canonicalise(img)
    mine = [f for f in (canon.image, canon.kept) if f is not None]
    mine += [flip(f) for f in mine]
    theirs = pixels.canonical_images(ids)
    out = []
    for ident in ids:
        found = theirs.get(ident)
        forms = [f for f in (found.image, found.kept) if f is not None] if found else []
        pairs = [(m, f) for f in forms for m in mine]
        pairs += flattened_pairs(canon, found) if found else []
        agree = max((_agreement(a, b) for a, b in pairs), default=0.0)
        if agree < AGREE_MIN:
            out.append(ident)
    return out


def match_new_images(ws: Workspace, stats: ProvenanceStats) -> None:
    """Step 1: match every pending image, record its cross-page links and its check."""
    pixels = CatalogPixels(ws, keep=KEEP)
    matcher = Matcher(
        ws.extractor,
        ws.index,
        CatalogHashes(ws),
        MatchConfig(regions=False),  # copies, not art placed in a scene
        pixels,
    )
    cache = PixelCache(ws.store, ws.settings.limits)

    def process(conn: Connection, rows: Sequence[Row]) -> None:
        now = utcnow()
        found_links: dict[Link, dict[str, Any]] = {}
        for row in rows:
            ident = int(row.id)
            try:
                img = cache.load(row.blob, tile_box(row))
                vector = decode_vectors([row.vector], row.dim)[0]
                found = matcher.search_indexed(img, vector, k=K) if _enough_art(img) else None
            except (ImageRejected, OSError, ValueError) as exc:
                record_failure(conn, "provenance", f"image {ident}", str(exc))
                stats.failed += 1
                found = []
            if found is None:
                stats.skipped += 1
                found = []
            nearest = [m for m in found if m.path == "vector"][:VECTOR_TOP]
            kept = [m for m in found if m.path in COPY_PATHS] + nearest
            matches = {m.id: m for m in kept if m.id != ident}
            info = image_rows(conn, [ident, *matches])
            me = info.get(ident)
            hows: dict[int, str] = {}
            for other, match in matches.items():
                them = info.get(other)
                if me is None or them is None or them.page_id == me.page_id:
                    continue
                if me.parent_id is not None and them.parent_id is not None:
                    continue  # two tiles: their sheets are linked, or a sprite to a tile
                hows[other] = how_copied(me, them, "exact" if match.path == "exact" else "near")
            verified = [i for i, how in hows.items() if matches[i].path != "exact"]
            verified = [i for i in verified if hows[i] in VERIFIED_HOWS]
            for other in _disagreeing(pixels, img, verified):
                del hows[other]
            for other, how in hows.items():
                low, high = sorted((ident, other))
                score = float(matches[other].score)
                found_links.setdefault((low, high), {"how": how, "score": score})
            conn.execute(insert(copy_checks).values(image_id=ident, checked_at=now, grouped=False))
            stats.checked += 1
        # in one order for every worker (low id, high id): two workers that find the same
        # links wait for each other's inserts in the same order, never in a cycle
        for (low, high), values in sorted(found_links.items()):
            row_values = {"low_id": low, "high_id": high, **values}
            stats.links += insert_ignore(conn, copy_links, row_values, ["low_id", "high_id"])

    run(ws.engine, _pending(), process, desc="provenance", unit="img", batch=BATCH)


# -- step 2: groups ----------------------------------------------------------------------------


def _seeds(conn: Connection, since: datetime | None) -> set[int]:
    """Images whose groups need rebuilding: checked but not grouped, on a page fetched since
    ``since`` (its authors or licences may have changed), or in a group that lost a member."""
    seeds = set(
        conn.execute(
            select(copy_checks.c.image_id).where(copy_checks.c.grouped.is_(False))
        ).scalars()
    )
    linked = select(copy_links.c.low_id).union(select(copy_links.c.high_id)).subquery()
    if since is not None:
        seeds |= set(
            conn.execute(
                select(images.c.id)
                .join(files, files.c.id == images.c.file_id)
                .join(pages, pages.c.id == files.c.page_id)
                .where(pages.c.fetched_at > since, images.c.id.in_(select(linked)))
            ).scalars()
        )
    counts = (
        select(copy_group_members.c.group_id, func.count().label("n"))
        .group_by(copy_group_members.c.group_id)
        .subquery()
    )
    shrunk = select(copy_groups.c.id).join(counts, counts.c.group_id == copy_groups.c.id)
    shrunk = shrunk.where(counts.c.n != copy_groups.c.pages)
    lost = select(copy_groups.c.id).where(
        ~exists().where(copy_group_members.c.group_id == copy_groups.c.id)
    )
    broken = set(conn.execute(shrunk).scalars()) | set(conn.execute(lost).scalars())
    if broken:
        seeds |= set(
            conn.execute(
                select(copy_group_members.c.image_id).where(
                    copy_group_members.c.group_id.in_(broken)
                )
            ).scalars()
        )
        conn.execute(delete(copy_groups).where(copy_groups.c.id.in_(broken)))
    return seeds


def _components(conn: Connection, seeds: set[int]) -> tuple[list[set[int]], dict[Link, Row]]:
    """The connected components of ``copy_links`` that hold a seed, and every link."""
    links = {(int(r.low_id), int(r.high_id)): r for r in conn.execute(select(copy_links))}
    neighbours: dict[int, set[int]] = defaultdict(set)
    for low, high in links:
        neighbours[low].add(high)
        neighbours[high].add(low)
    seen: set[int] = set()
    components: list[set[int]] = []
    for seed in sorted(seeds):
        if seed in seen or seed not in neighbours:
            continue
        component, todo = set(), [seed]
        while todo:
            node = todo.pop()
            if node in component:
                continue
            component.add(node)
            todo.extend(neighbours[node] - component)
        seen |= component
        components.append(component)
    return components, links


def _page_facts(conn: Connection, page_ids: Iterable[int]) -> dict[int, PageFacts]:
    """Authors (role author, else the submitter) and licences of each page."""
    names: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    lic: dict[int, list[str]] = defaultdict(list)
    ids = list(page_ids)
    for chunk in chunks(ids):
        for pid, role, name in conn.execute(
            select(page_authors.c.page_id, page_authors.c.role, authors.c.name)
            .join(authors, authors.c.id == page_authors.c.author_id)
            .where(page_authors.c.page_id.in_(chunk))
        ):
            names[int(pid)][role].add(name)
        for pid, name in conn.execute(
            select(page_licenses.c.page_id, licenses.c.name)
            .join(licenses, licenses.c.id == page_licenses.c.license_id)
            .where(page_licenses.c.page_id.in_(chunk))
            .order_by(page_licenses.c.page_id, page_licenses.c.position)
        ):
            lic[int(pid)].append(name)
    out = {}
    for pid in ids:
        roles = names.get(pid, {})
        who = roles.get("author") or roles.get("submitter") or set()
        out[pid] = PageFacts(frozenset(who), tuple(lic.get(pid, ())))
    return out


PageWhen = tuple[int, datetime | None, int | None]  # page id, post date, OGA node id


def _live_pages(conn: Connection, ids: Iterable[int]) -> dict[int, PageWhen]:
    """image id -> its page's (id, post date, node id), for images on a fetched page's
    present file."""
    out: dict[int, PageWhen] = {}
    for chunk in chunks(ids):
        for ident, pid, posted, node in conn.execute(
            select(images.c.id, pages.c.id, pages.c.post_date, pages.c.node_id)
            .join(files, files.c.id == images.c.file_id)
            .join(pages, pages.c.id == files.c.page_id)
            .where(images.c.id.in_(chunk), files.c.present.is_(True), pages.c.state == "fetched")
        ):
            out[int(ident)] = (int(pid), posted, node)
    return out


def _earliest_key(page: PageWhen) -> tuple[bool, str, int, int]:
    """Earliest first: by post date (shown to the minute), then by OGA's node id, which
    grows with each submission, then by catalog id; pages without a date last."""
    pid, posted, node = page
    return (posted is None, posted.isoformat() if posted else "", node or 0, pid)


def _write_group(
    conn: Connection, component: set[int], links: dict[Link, Row], now: datetime
) -> bool:
    """Store one component as a group (False when it spans fewer than two live pages)."""
    where = _live_pages(conn, component)
    by_page: dict[int, list[int]] = defaultdict(list)
    for ident in sorted(where):
        by_page[where[ident][0]].append(ident)
    if len(by_page) < 2:
        return False
    when = {pid: where[ids[0]] for pid, ids in by_page.items()}
    order = sorted(by_page, key=lambda pid: _earliest_key(when[pid]))
    first = order[0]
    mine = [
        link
        for link in links
        if (link[0] in where and link[1] in where) and where[link[0]][0] != where[link[1]][0]
    ]

    def best(page: int, towards: int | None) -> tuple[int, int, Row] | None:
        """The strongest link from ``page`` to the page ``towards`` (any page when None):
        (this page's image, the other image, the link)."""
        found = []
        for low, high in mine:
            for here, there in ((low, high), (high, low)):
                if where[here][0] == page and (towards is None or where[there][0] == towards):
                    row = links[(low, high)]
                    found.append((row.how == "exact", float(row.score), -here, here, there, row))
        if not found:
            return None
        top = max(found, key=lambda f: f[:3])
        return top[3], top[4], top[5]

    linked_first = [best(pid, first) for pid in order[1:]]
    original_votes: dict[int, int] = defaultdict(int)
    for found in linked_first:
        if found is not None:
            original_votes[found[1]] += 1
    original = max(by_page[first], key=lambda i: (original_votes[i], -i))
    facts = _page_facts(conn, order)
    members: list[dict[str, Any]] = [
        {
            "position": 0,
            "image_id": original,
            "page_id": first,
            "how": "original",
            "score": 1.0,
            "flags": "",
        }
    ]
    for position, (pid, found) in enumerate(zip(order[1:], linked_first, strict=True), 1):
        found = found or best(pid, None)
        assert found is not None  # every page of a component has a link
        image_id, _, row = found
        flags = copy_flags(facts[first], facts[pid])
        members.append(
            {
                "position": position,
                "image_id": image_id,
                "page_id": pid,
                "how": row.how,
                "score": float(row.score),
                "flags": join_flags(flags),
            }
        )
    group_id = conn.execute(
        insert(copy_groups)
        .values(
            original_image_id=original,
            pages=len(members),
            flags=join_flags([f for m in members for f in m["flags"].split(",") if f]),
            first_post_date=when[first][1],
            built_at=now,
        )
        .returning(copy_groups.c.id)
    ).scalar_one()
    conn.execute(insert(copy_group_members), [{"group_id": group_id, **m} for m in members])
    return True


GROUPS_LOCK = "provenance.groups"  # one worker at a time rebuilds groups (catalog.locks)


def regroup(engine: Engine, stats: ProvenanceStats, started: datetime) -> None:
    """Step 2: rebuild the groups the seeds touch, mark the seeds grouped and record when
    this build started; one worker at a time (``GROUPS_LOCK``), in one transaction."""
    now = utcnow()
    with engine.begin() as conn:
        serialise(conn, GROUPS_LOCK)
        seeds = _seeds(conn, _built_at(conn))
        components, links = _components(conn, seeds)
        touched = set().union(*components) if components else set()
        stale = set()
        for chunk in chunks(touched):
            stale |= set(
                conn.execute(
                    select(copy_group_members.c.group_id).where(
                        copy_group_members.c.image_id.in_(chunk)
                    )
                ).scalars()
            )
        for chunk in chunks(stale):
            conn.execute(delete(copy_groups).where(copy_groups.c.id.in_(chunk)))
        stats.removed += len(stale)
        for component in components:
            stats.groups += _write_group(conn, component, links, now)
        # only the seeds read above: another worker's checks committed since are its to group
        for chunk in chunks(seeds):
            conn.execute(
                update(copy_checks).where(copy_checks.c.image_id.in_(chunk)).values(grouped=True)
            )
        conn.execute(delete(meta).where(meta.c.key == BUILT_AT))
        conn.execute(insert(meta).values(key=BUILT_AT, value=started.isoformat()))


def _built_at(conn: Connection) -> datetime | None:
    value = conn.execute(select(meta.c.value).where(meta.c.key == BUILT_AT)).scalar()
    return datetime.fromisoformat(value) if value else None


def build_copy_groups(ws: Workspace, rebuild: bool = False) -> ProvenanceStats:
    """Match new images and rebuild the groups they touch (``rebuild``: everything)."""
    stats = ProvenanceStats()
    started = utcnow()
    if rebuild:
        with ws.engine.begin() as conn:
            serialise(conn, GROUPS_LOCK)
            for table in (copy_groups, copy_links, copy_checks):
                conn.execute(delete(table))
            conn.execute(delete(meta).where(meta.c.key == BUILT_AT))
    match_new_images(ws, stats)
    regroup(ws.engine, stats, started)
    log.info("provenance: %s", stats)
    return stats
