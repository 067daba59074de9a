"""Bytes per image: the vector in the catalog and in the vector index, the patch fingerprints
and image hashes, and the catalog around them.

    python bench/bench_footprint.py                     # ingest a 100-page local site, measure
    python bench/bench_footprint.py --data ./oga        # measure an existing data folder

The prototype kept VGG16 ``fc2`` features: 4096 float32 = 16 KiB per image. Here every image
and tile has one vector: its copy of record in the catalog (``embeddings.vector``: float16,
compact once the codec is fitted, ``embed.codec``) and the vector index built from it (the
embedded HNSW index holds float32 plus its graph links). Measured from the files themselves:
SQLite's ``dbstat`` (or PostgreSQL's relation sizes) per table with its indexes, and the index
folder on disk (hnswlib's file is its memory image). Targets: <= 512 bytes of stored vector per
image, and <= 3 KiB per indexed item for the catalog (the codec included) and every vector
file (the index, the patch table) together.

Patch fingerprints and image hashes (target: <= 600 bytes per image on disk): the catalog's
copy (version 2: the ``embeddings.patches`` blobs of 32-bit keys; version 1: the ``patches``
table with its two indexes, measured on a folder ingested by an older version), the
memory-mapped patch table beside the vector index (``index.patches``), and the image hash
columns (``canonical_sha256``, ``structure_sha256``, ``phash``) with their two indexes.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, inspect, select, text

from _common import CRAWL_TILES, Report, add_report_arguments, ingest_local_site, own_settings
from ogasearch.catalog.dialect import is_postgres
from ogasearch.catalog.fingerprints import KEY_DTYPE
from ogasearch.catalog.migrate import FULL_HASH_INDEXES
from ogasearch.catalog.schema import HASH_KEY_INDEXES, embeddings, images
from ogasearch.settings import load_settings

TARGET_BYTES = 512
ITEM_TARGET_BYTES = 3 * 1024
PROTOTYPE_BYTES = 4096 * 4


def table_bytes(engine: Engine) -> dict[str, int]:
    """Bytes on disk per table, its indexes included (SQLite dbstat, PostgreSQL sizes)."""
    with engine.connect() as conn:
        if is_postgres(engine):
            rows = conn.execute(
                text(
                    "SELECT relname, pg_total_relation_size(oid) FROM pg_class"
                    " WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
                )
            )
            return {name: int(size) for name, size in rows}
        owner = dict(
            conn.execute(
                text("SELECT name, tbl_name FROM sqlite_master WHERE tbl_name != ''")
            ).all()
        )
        sizes: dict[str, int] = {}
        for name, size in conn.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")):
            table = owner.get(name, name)
            sizes[table] = sizes.get(table, 0) + int(size)
        return sizes


def object_bytes(engine: Engine) -> dict[str, int]:
    """Bytes on disk per SQLite table or index (``dbstat``), by its own name."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
        return {name: int(size) for name, size in rows}


def fingerprint_rows(engine: Engine, data: Path, vectors: int) -> list[tuple[str, str, str]]:
    """Bytes per image of the patch fingerprints and image hashes, in every place they live."""
    objects = {} if is_postgres(engine) else object_bytes(engine)
    with engine.connect() as conn:
        legacy = inspect(conn).has_table("patches")
        if legacy:
            count = conn.execute(text("SELECT COUNT(*) FROM patches")).scalar_one()
            stored = sum(v for k, v in objects.items() if k == "patches" or "patches" in k)
            where = "catalog: version-1 `patches` table, its two indexes"
        else:
            stored = conn.execute(
                text("SELECT COALESCE(SUM(LENGTH(patches)), 0) FROM embeddings")
            ).scalar_one()
            count = int(stored) // KEY_DTYPE.itemsize
            where = "catalog: `embeddings.patches` blobs (payload; rows shared with the vector)"
        hashes = conn.execute(
            text(
                "SELECT COALESCE(SUM(LENGTH(canonical_sha256) + LENGTH(structure_sha256)"
                " + LENGTH(phash)), 0) FROM images"
            )
        ).scalar_one()
    hash_indexes = sum(  # version 3 indexes a prefix (``hash_key``), earlier the whole hash
        objects.get(index.name, 0) for index in HASH_KEY_INDEXES if index.name
    ) + sum(objects.get(name, 0) for name in FULL_HASH_INDEXES)
    table = folder_bytes(data / "patches") if (data / "patches").exists() else 0
    total = stored + table + int(hashes) + hash_indexes

    def row(what: str, size: float) -> tuple[str, str, str]:
        return (what, f"{size / vectors:,.0f}", f"{size / 1e6:.2f}")

    return [
        (
            f"fingerprints per image ({'rows' if legacy else 'values'})",
            f"{count / vectors:.1f}",
            "",
        ),
        row(where, stored),
        row("patch table (`DATA/patches/<model>`, memory-mapped)", table),
        row("image hash columns (canonical, structure, perceptual)", int(hashes)),
        row("their two indexes (canonical, structure)", hash_indexes),
        row("**fingerprints and hashes, all places**", total),
    ]


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="An ingested data folder (default: ingest).")
    parser.add_argument("--catalog", help="Its catalog URL when not DATA/catalog.sqlite.")
    parser.add_argument("--pages", type=int, default=100, help="Local site pages to ingest.")
    parser.add_argument("--source", type=Path, default=CRAWL_TILES)
    add_report_arguments(parser)
    args = parser.parse_args()
    report = Report(
        "Footprint: bytes per image",
        args,
        depends=["src/ogasearch/embed", "src/ogasearch/catalog", "src/ogasearch/index"],
    )
    report.target(vector_bytes=TARGET_BYTES)
    temp = None
    if args.data is None:
        temp = tempfile.mkdtemp(prefix="bench-footprint-")
        args.data = Path(temp)
        print(f"ingesting a {args.pages}-page local site into {args.data} ...")
        ingest_local_site(args.data, args.pages, args.source)
    try:
        settings = (
            own_settings(args.data) if temp else load_settings(data=args.data, catalog=args.catalog)
        )
        engine = create_engine(settings.catalog_url)
        try:
            with engine.connect() as conn:
                vectors, raw, dim, model = conn.execute(
                    select(
                        func.count(),
                        func.sum(func.length(embeddings.c.vector)),
                        func.max(embeddings.c.dim),
                        func.max(embeddings.c.model),
                    )
                ).one()
                whole = conn.execute(
                    select(func.count()).where(images.c.parent_id.is_(None))
                ).scalar_one()
            sizes = table_bytes(engine)
        finally:
            engine.dispose()
        if not vectors:
            raise SystemExit(f"{args.data}: no embeddings in the catalog")
        vectors, raw, dim = int(vectors), int(raw), int(dim)
        catalog_file = args.data / "catalog.sqlite"
        catalog_total = (
            catalog_file.stat().st_size if catalog_file.exists() else sum(sizes.values())
        )
        index_bytes = 0
        if settings.vectors is None:  # the embedded index: measure its folder
            from ogasearch.workspace import Workspace

            with Workspace(settings) as ws:
                index_bytes = folder_bytes(Path(ws.index.folder))
        store_bytes = folder_bytes(settings.store_dir)
        codec_bytes = sizes.get("codecs", 0)  # in the catalog: fixed, whatever its size
        patch_bytes = folder_bytes(args.data / "patches")
        item_bytes = catalog_total + index_bytes + patch_bytes
        rows = [
            (f"vector as stored (catalog, float16, {model})", f"{raw / vectors:,.0f}", ""),
            ("vector in the index (float32)", f"{dim * 4:,}", ""),
            (
                "`embeddings` table with its indexes",
                f"{sizes.get('embeddings', 0) / vectors:,.0f}",
                f"{sizes.get('embeddings', 0) / 1e6:.1f}",
            ),
            (
                "`images` table with its indexes (hashes, state, box)",
                f"{sizes.get('images', 0) / vectors:,.0f}",
                f"{sizes.get('images', 0) / 1e6:.1f}",
            ),
            ("whole catalog", f"{catalog_total / vectors:,.0f}", f"{catalog_total / 1e6:.1f}"),
        ]
        if index_bytes:
            rows.append(
                (
                    "embedded HNSW index on disk (vectors + graph, = its memory)",
                    f"{index_bytes / vectors:,.0f}",
                    f"{index_bytes / 1e6:.1f}",
                )
            )
        rows.append(
            (
                "patch table (`DATA/patches`)",
                f"{patch_bytes / vectors:,.0f}",
                f"{patch_bytes / 1e6:.1f}",
            )
        )
        rows.append(
            (
                "of the catalog: the vector codec (`codecs`, fixed size)",
                f"{codec_bytes / vectors:,.0f}",
                f"{codec_bytes / 1e6:.2f}",
            )
        )
        rows.append(
            (
                "**catalog + vector files per indexed item**",
                f"{item_bytes / vectors:,.0f}",
                f"{item_bytes / 1e6:.1f}",
            )
        )
        rows.append(("prototype: VGG16 fc2, 4096 float32", f"{PROTOTYPE_BYTES:,}", ""))
        report.line(
            f"Data: {args.data if temp is None else f'a {args.pages}-page local site'};"
            f" {vectors:,} vectors ({whole:,} whole images, {vectors - whole:,} tiles), model"
            f" {model}, {dim}-d. Blob store: {store_bytes / 1e6:.1f} MB (downloads and"
            " extracted members, not counted below)."
        )
        report.line()
        report.table(["what", "bytes per vector", "total MB"], rows)
        if sizes:
            report.line("Where the catalog's bytes go (tables with their indexes, largest first):")
            report.line()
            ranked = sorted(sizes.items(), key=lambda kv: -kv[1])
            report.table(
                ["table", "bytes per vector", "total MB"],
                [
                    (name, f"{size / vectors:,.0f}", f"{size / 1e6:.2f}")
                    for name, size in ranked[:12]
                ],
            )
        engine = create_engine(settings.catalog_url)
        try:
            patch_rows = fingerprint_rows(engine, args.data, vectors)
        finally:
            engine.dispose()
        report.line("Patch fingerprints and image hashes (target: <= 600 bytes per image):")
        report.line()
        report.table(["what", "bytes per vector", "total MB"], patch_rows)
        report.record(
            vectors=vectors,
            model=str(model),
            dim=dim,
            catalog_vector_bytes=round(raw / vectors),
            index_vector_bytes=dim * 4,
            prototype_vector_bytes=PROTOTYPE_BYTES,
            index_bytes_per_vector=round(index_bytes / vectors) if index_bytes else None,
            fingerprint_and_hash_bytes=int(patch_rows[-1][1].replace(",", "")),
            catalog_bytes_per_vector=round(catalog_total / vectors),
            item_bytes=round(item_bytes / vectors),
            item_target_bytes=ITEM_TARGET_BYTES,
        )
        stored = raw / vectors
        verdict = "met" if stored <= TARGET_BYTES else f"missed ({stored / TARGET_BYTES:.1f}x)"
        report.line(
            f"Target: <= {TARGET_BYTES:,} bytes of stored vector (the copy of record) per image:"
            f" {stored:,.0f} B, {verdict} (the index built from it holds {dim * 4:,} B of"
            " float32)."
            f" Against the prototype's {PROTOTYPE_BYTES:,} B:"
            f" {PROTOTYPE_BYTES / (raw / vectors):.1f}x smaller in the catalog,"
            f" {PROTOTYPE_BYTES / (dim * 4):.1f}x in the index."
        )
        per_item = item_bytes / vectors
        verdict = "met" if per_item <= ITEM_TARGET_BYTES else "missed"
        report.line(
            f"Target: catalog + vector files <= {ITEM_TARGET_BYTES:,} bytes per indexed item:"
            f" {per_item:,.0f} B, {verdict}."
        )
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    report.finish()


if __name__ == "__main__":
    main()
