"""Reading the conflicts report: groups of the same art on several pages, earliest page first.

The groups are written by the provenance stage (``ogasearch.provenance``, after ``index``) into
``copy_groups`` / ``copy_group_members``; this module only reads them, paged and filtered, and
joins each member to its page (author, licences, date) through ``catalog_reads.read_sources``.
Copies by the original's own author (``same-author``) are listed apart from the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from sqlalchemy import ColumnElement, Connection, and_, exists, func, literal, select

from ogasearch.catalog.schema import (
    copy_group_members,
    copy_groups,
    licenses,
    page_licenses,
)
from ogasearch.search.catalog_reads import read_sources
from ogasearch.search.results import Source

FlagName = Literal["different-author", "licence-conflict", "same-author"]
FLAGS: tuple[str, ...] = get_args(FlagName)  # as ``provenance.flags.FLAGS`` writes them
MAX_LIMIT = 200


@dataclass
class CopyMember:
    """One page of a group: where the art is, how it matches the original, and its flags."""

    source: Source
    how: str  # "original", or exact | upscaled | flipped | recoloured | cut from a sheet | ...
    score: float
    flags: list[str]


@dataclass
class CopyGroup:
    id: int
    flags: list[str]  # every flag of its members
    original: CopyMember
    copies: list[CopyMember] = field(default_factory=list)  # other authors (or unknown)
    same_author: list[CopyMember] = field(default_factory=list)  # the original's author


@dataclass
class ConflictsPage:
    total: int  # groups matching the filters
    offset: int
    limit: int
    groups: list[CopyGroup]


def _has_flag(flag: str) -> ColumnElement[bool]:
    padded = literal(",") + copy_groups.c.flags + literal(",")
    return padded.like(f"%,{flag},%")


def _filters(flag: str | None, licence: str | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if flag:
        where.append(_has_flag(flag))
    if licence:
        where.append(
            exists().where(
                and_(
                    copy_group_members.c.group_id == copy_groups.c.id,
                    page_licenses.c.page_id == copy_group_members.c.page_id,
                    licenses.c.id == page_licenses.c.license_id,
                    licenses.c.name == licence,
                )
            )
        )
    return where


def read_conflicts(
    conn: Connection,
    flag: str | None = None,
    licence: str | None = None,
    offset: int = 0,
    limit: int = 20,
) -> ConflictsPage:
    """One page of groups (licence conflicts first, then other authors, then the rest; the
    newest first within each), filtered by a flag (``FLAGS``) and a licence any page carries."""
    limit = max(1, min(limit, MAX_LIMIT))
    offset = max(0, offset)
    where = _filters(flag, licence)
    total = conn.execute(select(func.count()).select_from(copy_groups).where(*where)).scalar_one()
    rows = conn.execute(
        select(copy_groups.c.id, copy_groups.c.flags)
        .where(*where)
        .order_by(
            _has_flag("licence-conflict").desc(),
            _has_flag("different-author").desc(),
            copy_groups.c.id.desc(),
        )
        .offset(offset)
        .limit(limit)
    ).all()
    ids = [int(r.id) for r in rows]
    members = conn.execute(
        select(copy_group_members)
        .where(copy_group_members.c.group_id.in_(ids))
        .order_by(copy_group_members.c.group_id, copy_group_members.c.position)
    ).all()
    sources = read_sources(conn, {int(m.image_id) for m in members})
    by_group: dict[int, list[CopyMember]] = {i: [] for i in ids}
    for m in members:
        found = sources.get(int(m.image_id))
        if found is None:
            continue  # the page went away since the build: the next update regroups it
        flags = [f for f in m.flags.split(",") if f]
        by_group[int(m.group_id)].append(CopyMember(found.source, m.how, float(m.score), flags))
    groups = []
    for row in rows:
        found_members = by_group[int(row.id)]
        if not found_members or found_members[0].how != "original":
            continue
        original, others = found_members[0], found_members[1:]
        groups.append(
            CopyGroup(
                id=int(row.id),
                flags=[f for f in row.flags.split(",") if f],
                original=original,
                copies=[c for c in others if "same-author" not in c.flags],
                same_author=[c for c in others if "same-author" in c.flags],
            )
        )
    return ConflictsPage(total=int(total), offset=offset, limit=limit, groups=groups)


ROW_FIELDS = (
    "group",
    "position",
    "how",
    "score",
    "flags",
    "post_date",
    "author",
    "licenses",
    "title",
    "page_url",
    "file_name",
    "archive_path",
    "image_id",
)


def member_rows(groups: list[CopyGroup]) -> list[dict[str, object]]:
    """One flat row per page of each group (the original first), for tables and CSV."""
    out: list[dict[str, object]] = []
    for group in groups:
        for position, m in enumerate([group.original, *group.copies, *group.same_author]):
            s = m.source
            out.append(
                {
                    "group": group.id,
                    "position": position,
                    "how": m.how,
                    "score": round(m.score, 3),
                    "flags": ",".join(m.flags),
                    "post_date": s.post_date.date().isoformat() if s.post_date else "",
                    "author": s.author or "",
                    "licenses": "; ".join(s.licenses),
                    "title": s.title or "",
                    "page_url": s.page_url,
                    "file_name": s.file_name,
                    "archive_path": s.archive_path or "",
                    "image_id": s.image_id,
                }
            )
    return out
