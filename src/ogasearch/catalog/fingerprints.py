"""How patch fingerprints are stored in the catalog: one blob per image, ``embeddings.patches``.

An image's fingerprints (``embed.patches.fingerprints``: at most 64 distinct 64-bit hashes)
are kept as their *keys*, the low 32 bits (``fingerprint_keys``), sorted and distinct, as
little-endian uint32 bytes in the row that holds its vector. The catalog holds the copy of
record; the patch table the matcher reads (``index.patches``) is rebuilt from it, and a query's
hashes are cut to keys the same way before the lookup.

Why 32 bits and not the full 64: nothing reads the upper half. A key shared by chance with
another image's fingerprint (at 53M keys in the table, about 1 query hash in 80) gives that
image one stray vote, short of the two votes (``MatchConfig.patch_min``) a candidate needs,
and every candidate is verified pixel by pixel; measured on the quality benchmark with no
change in results (docs/benchmarks.md). Half the bytes in the catalog and in the table is what
brings fingerprints under 600 bytes per image.

The embed stage encodes, the index stage and ``check`` decode.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sqlalchemy import Connection, Integer, Text, cast, select, update

from ogasearch.catalog.dialect import insert_ignore
from ogasearch.catalog.schema import meta

KEY_DTYPE = np.dtype("<u4")
KEY_MASK = 0xFFFF_FFFF


def fingerprint_keys(values: Iterable[int] | np.ndarray) -> np.ndarray:
    """The key (low 32 bits, uint32) of each fingerprint, signed or unsigned 64-bit."""
    if isinstance(values, np.ndarray):
        return (values.astype(np.int64, copy=False) & KEY_MASK).astype(np.uint32)
    return np.fromiter((v & KEY_MASK for v in values), dtype=np.uint32)


def encode_fingerprints(values: Iterable[int]) -> bytes:
    """Fingerprints -> their distinct keys, sorted, as uint32 little-endian bytes."""
    return np.unique(fingerprint_keys(values)).astype(KEY_DTYPE).tobytes()


def decode_fingerprints(blob: bytes | None) -> np.ndarray:
    """Bytes -> uint32 keys (empty for None: an image without informative patches)."""
    if not blob:
        return np.zeros(0, dtype=np.uint32)
    return np.frombuffer(blob, dtype=KEY_DTYPE).astype(np.uint32)


# -- the change counter ---------------------------------------------------------------------
# ``meta['patch_changes']`` grows in every transaction that changes which fingerprints the
# index holds (the index stage marking images indexed, the legacy row move); the patch table
# records the value it was built from, so the index stage knows without reading every
# fingerprint whether the table is behind the catalog.

CHANGES_KEY = "patch_changes"


def patch_changes(conn: Connection) -> int:
    value = conn.execute(select(meta.c.value).where(meta.c.key == CHANGES_KEY)).scalar()
    return int(value or 0)


def add_patch_changes(conn: Connection) -> None:
    """The counter's row, at 0 (``open_catalog``, once per catalog: then every change is an
    atomic UPDATE of it, which concurrent workers queue on)."""
    insert_ignore(conn, meta, {"key": CHANGES_KEY, "value": "0"}, ["key"])


def note_patch_change(conn: Connection) -> None:
    """Count one change, in the caller's transaction (atomic on both databases)."""
    conn.execute(
        update(meta)
        .where(meta.c.key == CHANGES_KEY)
        .values(value=cast(cast(meta.c.value, Integer) + 1, Text))
    )
