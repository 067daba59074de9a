"""A catalog's content by natural keys (no ids, no timestamps), to compare two runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, inspect, text

QUERIES = {
    "pages": "SELECT slug, url, node_id, title, post_date_text, art_type, description, "
    "attribution, favorites, files_unavailable, state FROM pages",
    "authors": "SELECT p.slug, a.name, a.url, pa.role, pa.position FROM page_authors pa "
    "JOIN pages p ON p.id = pa.page_id JOIN authors a ON a.id = pa.author_id",
    "licenses": "SELECT p.slug, l.name, l.url, pl.position FROM page_licenses pl "
    "JOIN pages p ON p.id = pl.page_id JOIN licenses l ON l.id = pl.license_id",
    "tags": "SELECT p.slug, t.name, pt.position FROM page_tags pt "
    "JOIN pages p ON p.id = pt.page_id JOIN tags t ON t.id = pt.tag_id",
    "files": "SELECT p.slug, f.url, f.name, f.link_text, f.kind, f.fid, f.declared_size, "
    "f.present, f.state, f.sha256, f.size FROM files f JOIN pages p ON p.id = f.page_id",
    "blobs": "SELECT sha256, size FROM blobs",
    "embeddings": "SELECT f.url, i.archive_path, i.box, e.model, e.dim FROM embeddings e "
    "JOIN images i ON i.id = e.image_id JOIN files f ON f.id = i.file_id",
    "patches": "SELECT f.url, i.archive_path, i.box, e.patches FROM embeddings e "
    "JOIN images i ON i.id = e.image_id JOIN files f ON f.id = i.file_id",
    "members": "SELECT f.url, m.path, m.kind, m.size, m.sha256, m.state, m.error, "
    "pm.path FROM members m JOIN files f ON f.id = m.file_id "
    "LEFT JOIN members pm ON pm.id = m.parent_id",
    "images": "SELECT f.url, i.archive_path, i.box, i.sha256, i.pixel_sha256, i.phash, "
    "i.format, i.width, i.height, i.frames, i.tiles_state, pi.archive_path, pi.box, "
    "i.embed_state, i.indexed, i.canonical_sha256, i.structure_sha256 "
    "FROM images i JOIN files f ON f.id = i.file_id LEFT JOIN images pi ON pi.id = i.parent_id",
}


def dump_catalog(url: str, tables: tuple[str, ...] = tuple(QUERIES)) -> dict[str, list[Any]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: sorted(
                    (tuple(row) for row in conn.execute(text(QUERIES[name]))),
                    key=lambda r: tuple((v is None, str(v)) for v in r),
                )
                for name in tables
            }
    finally:
        engine.dispose()


def count_duplicates(url: str) -> dict[str, int]:
    """Rows that share a natural key (should always be zero)."""
    checks = {
        "pages": "SELECT COUNT(*) - COUNT(DISTINCT slug) FROM pages",
        "files": "SELECT COUNT(*) FROM (SELECT page_id, url FROM files "
        "GROUP BY page_id, url HAVING COUNT(*) > 1) d",
        "members": "SELECT COUNT(*) FROM (SELECT file_id, path FROM members "
        "GROUP BY file_id, path HAVING COUNT(*) > 1) d",
        "images": "SELECT COUNT(*) FROM (SELECT file_id, archive_path, box FROM images "
        "GROUP BY file_id, archive_path, box HAVING COUNT(*) > 1) d",
    }
    engine = create_engine(url)
    try:
        if not inspect(engine).has_table("images"):  # killed before the schema was created
            return dict.fromkeys(checks, 0)
        with engine.connect() as conn:
            return {k: int(conn.execute(text(q)).scalar_one()) for k, q in checks.items()}
    finally:
        engine.dispose()
