"""Every catalog query the read path runs, batched: rows for many image ids in one query.

The search service and the web UI read the catalog only through these
functions (the matcher's own lookups are ``match.lookups``). Each takes an open
``Connection`` and any number of ids, and asks the database in chunks of ``CHUNK`` ids
(one query per chunk, never one per id; ``match.lookups.CHUNK``). ``read_groups`` gathers
everything ``search.grouping`` needs to turn matched ids into results.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, Row, select

from ogasearch.catalog.schema import (
    HASH_KEY_CHARS,
    authors,
    embeddings,
    files,
    hash_key,
    images,
    kind_vectors,
    licenses,
    page_authors,
    page_licenses,
    pages,
)
from ogasearch.catalog.vectors import decode_vectors
from ogasearch.match.lookups import chunks, image_rows
from ogasearch.search.grouping import (
    GroupKey,
    Groups,
    SourceRow,
    group_key,
    merge_near_copies,
    near_copy_pairs,
)
from ogasearch.search.results import Source

MAX_IMAGE_ID = (1 << 63) - 1  # ids are signed 64-bit in SQLite, PostgreSQL and the indexes

CatalogRow = Row[*tuple[Any, ...]]  # a result row, read by column name


def is_image_id(image_id: int) -> bool:
    """False for ids no catalog can hold (a huge one from a URL would overflow the driver)."""
    return 0 < image_id <= MAX_IMAGE_ID


def any_indexed(conn: Connection) -> bool:
    """True when the catalog has at least one indexed image."""
    return (
        conn.execute(select(images.c.id).where(images.c.indexed.is_(True)).limit(1)).first()
        is not None
    )


def stored_vectors(conn: Connection, ids: Iterable[int]) -> dict[int, np.ndarray]:
    """The catalog's feature vector of each image that has one."""
    out: dict[int, np.ndarray] = {}
    for chunk in chunks(ids):
        for row in conn.execute(
            select(embeddings.c.image_id, embeddings.c.vector, embeddings.c.dim).where(
                embeddings.c.image_id.in_(chunk)
            )
        ):
            out[int(row.image_id)] = decode_vectors([row.vector], row.dim)[0]
    return out


def similar_seed(conn: Connection, image_id: int) -> CatalogRow | None:
    """An image's canonical hash, stored lookup vector and kind vector (``vector``,
    ``kind_vector`` None when there is none), or None when the catalog has no such image."""
    return conn.execute(
        select(
            images.c.canonical_sha256,
            embeddings.c.vector,
            embeddings.c.dim,
            kind_vectors.c.vector.label("kind_vector"),
            kind_vectors.c.dim.label("kind_dim"),
            kind_vectors.c.model.label("kind_model"),
        )
        .select_from(
            images.outerjoin(embeddings, embeddings.c.image_id == images.c.id).outerjoin(
                kind_vectors, kind_vectors.c.image_id == images.c.id
            )
        )
        .where(images.c.id == image_id)
    ).first()


def lacks_kind_vectors(conn: Connection) -> bool:
    """True when an embedded image has no kind vector (a data folder from before them)."""
    missing = (
        select(embeddings.c.image_id)
        .outerjoin(kind_vectors, kind_vectors.c.image_id == embeddings.c.image_id)
        .where(kind_vectors.c.image_id.is_(None))
        .limit(1)
    )
    return conn.execute(missing).first() is not None


def licence_names(conn: Connection) -> list[str]:
    return list(conn.execute(select(licenses.c.name).order_by(licenses.c.name)).scalars())


def art_type_names(conn: Connection) -> list[str]:
    """Every art type a fetched page has (e.g. "2D Art"), sorted."""
    query = (
        select(pages.c.art_type)
        .where(pages.c.art_type.is_not(None), pages.c.state == "fetched")
        .distinct()
        .order_by(pages.c.art_type)
    )
    return list(conn.execute(query).scalars())


# -- what grouping needs --------------------------------------------------------------------


def read_groups(conn: Connection, ids: Sequence[int], merge_near: bool = True) -> Groups:
    """Everything ``search.grouping`` needs for matched ``ids``: their rows, their groups
    (with every member) and the sources of every member. ``merge_near``: also merge the
    groups of matched near-copies (a single image never has one to merge with)."""
    info = image_rows(conn, ids)
    keys = {i: group_key(info[i]) for i in ids if i in info}
    members = group_members(conn, {key for key in keys.values() if key[0] != "id"})
    for key in set(keys.values()):
        members.setdefault(key, [int(key[1])] if key[0] == "id" else [])
    if merge_near:
        pairs = near_copy_pairs(info, keys)
        if pairs:
            vectors = stored_vectors(conn, sorted({i for pair in pairs for i in pair}))
            keys, members = merge_near_copies(pairs, vectors, keys, members)
    all_ids = set(ids) | {i for group in members.values() for i in group}
    sources = read_sources(conn, all_ids)
    info.update(image_rows(conn, [i for i in all_ids if i not in info]))
    return Groups(info=info, keys=keys, members=members, sources=sources)


def group_members(conn: Connection, keys: set[GroupKey]) -> dict[GroupKey, list[int]]:
    """Every image id sharing each group key (all the copies of one picture)."""
    members: dict[GroupKey, list[int]] = defaultdict(list)
    values = [v for kind, v in keys if kind == "canonical"]
    wanted = set(values)
    for chunk in chunks(values):
        for ident, value in conn.execute(
            select(images.c.id, images.c.canonical_sha256)
            # by prefix (``schema.hash_key``), the whole value compared here (as ``ids_by_hash``)
            .where(hash_key(images.c.canonical_sha256).in_({v[:HASH_KEY_CHARS] for v in chunk}))
            .order_by(images.c.id)
        ):
            if value in wanted:
                members[("canonical", value)].append(int(ident))
    return members


def read_sources(conn: Connection, image_ids: Iterable[int]) -> dict[int, SourceRow]:
    """Where each image appears: page, file, archive path, author, licences (present files
    of fetched pages only)."""
    rows: list[CatalogRow] = []
    for chunk in chunks(image_ids):
        rows += conn.execute(
            select(
                images.c.id,
                images.c.archive_path,
                files.c.url.label("file_url"),
                files.c.name.label("file_name"),
                files.c.link_text,
                pages.c.id.label("page_id"),
                pages.c.url.label("page_url"),
                pages.c.title,
                pages.c.post_date,
                pages.c.art_type,
            )
            .join(files, files.c.id == images.c.file_id)
            .join(pages, pages.c.id == files.c.page_id)
            .where(
                images.c.id.in_(chunk),
                files.c.present.is_(True),
                pages.c.state == "fetched",
            )
        ).all()
    page_ids = {int(row.page_id) for row in rows}
    lic: dict[int, list[str]] = defaultdict(list)
    who: dict[int, tuple[str, str | None]] = {}
    for chunk in chunks(page_ids):
        for pid, name in conn.execute(
            select(page_licenses.c.page_id, licenses.c.name)
            .join(licenses, licenses.c.id == page_licenses.c.license_id)
            .where(page_licenses.c.page_id.in_(chunk))
            .order_by(page_licenses.c.page_id, page_licenses.c.position)
        ):
            lic[int(pid)].append(name)
        for pid, name, url in conn.execute(
            select(page_authors.c.page_id, authors.c.name, authors.c.url)
            .join(authors, authors.c.id == page_authors.c.author_id)
            .where(
                page_authors.c.page_id.in_(chunk),
                page_authors.c.role.in_(("author", "submitter")),
            )
            .order_by(page_authors.c.page_id, page_authors.c.role, page_authors.c.position)
        ):
            # "author" sorts before "submitter": the author wins when both exist.
            who.setdefault(int(pid), (name, url))
    out: dict[int, SourceRow] = {}
    for row in rows:
        pid = int(row.page_id)
        name, url = who.get(pid, (None, None))
        out[int(row.id)] = SourceRow(
            Source(
                image_id=int(row.id),
                page_id=pid,
                page_url=row.page_url,
                title=row.title,
                author=name,
                author_url=url,
                licenses=lic.get(pid, []),
                post_date=row.post_date,
                file_url=row.file_url,
                file_name=row.file_name,
                archive_path=row.archive_path or None,
                page_file_name=(row.link_text or "").strip() or row.file_name,
            ),
            row.art_type,
        )
    return out
