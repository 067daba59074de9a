"""The patch table: which indexed images hold each patch fingerprint, memory-mapped.

The matcher looks up every patch of a query (hundreds per view, several views per query) to
find the images that share the most of them (``match.matching``). This table answers that
from two sorted arrays instead of a SQL query per view:

    keys     uint32, sorted   the key of each (fingerprint, image) pair: the fingerprint's
                              low 32 bits (``catalog.fingerprints``, which says why 32)
    owners   uint32 / int64   the image id of each pair, in the same order (int64 only when
                              an id does not fit 32 bits)

A lookup is two ``np.searchsorted`` per query hash; the length of a key's run is how many
images hold it, so the "too common to vote" rule (``embed.patches.COMMON``) costs nothing.

Files, in a ``patches`` folder beside the vector index (local to the data folder, Milvus or
not), all written atomically (``index.files``):

    patches.json            format, generation, pair and image counts, and ``built_from``:
                            the catalog's change counter the table was built from
    keys.<gen>.npy          } one generation; a rebuild writes generation <gen>+1 beside
    owners.<gen>.npy        } them and switches ``patches.json`` last

Readers (``serve``) map the arrays read-only and ``refresh`` to a newer generation like the
vector index; the index stage rebuilds the table from the catalog when the counter moved.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ogasearch.catalog.fingerprints import fingerprint_keys
from ogasearch.embed.patches import COMMON
from ogasearch.index.files import atomic_write, folder_lock

FORMAT = 1
SIDECAR = "patches.json"
LOCK = ".lock"
_GENERATION_FILE = re.compile(r"^(keys|owners)\.(\d+)\.npy$")


@dataclass(frozen=True)
class PatchArrays:
    """The table's two arrays (in memory or mapped from files)."""

    keys: np.ndarray
    owners: np.ndarray

    @classmethod
    def build(cls, ids: np.ndarray, counts: np.ndarray, values: np.ndarray) -> PatchArrays:
        """The table of images ``ids``, image ``i`` holding the next ``counts[i]`` of the
        fingerprint keys ``values`` (uint32, concatenated in the order of ``ids``)."""
        if not len(values):
            return EMPTY
        keys = np.asarray(values, dtype=np.uint32)
        owners = np.repeat(np.asarray(ids, dtype=np.int64), counts)
        order = np.lexsort((owners, keys))
        keys, owners = keys[order], owners[order]
        fresh = np.ones(len(keys), dtype=bool)  # two fingerprints of one image, one key
        fresh[1:] = (keys[1:] != keys[:-1]) | (owners[1:] != owners[:-1])
        small = owners.max() < 2**32
        return cls(keys[fresh], owners[fresh].astype(np.uint32 if small else np.int64))

    @classmethod
    def of(cls, owned: Mapping[int, Sequence[int]]) -> PatchArrays:
        """The table of ``{image id: its fingerprints}`` (64-bit ints, signed or not)."""
        ids = np.fromiter(owned, dtype=np.int64, count=len(owned))
        counts = np.fromiter((len(v) for v in owned.values()), dtype=np.int64, count=len(owned))
        flat = fingerprint_keys(v for values in owned.values() for v in values)
        return cls.build(ids, counts, flat)

    def __len__(self) -> int:
        return int(self.keys.size)

    def owners_of(self, hashes: Sequence[int]) -> list[tuple[int, int]]:
        """``(hash, image id)`` for every image holding one of ``hashes`` (64-bit fingerprints,
        as ``embed.patches`` gives them); hashes held by more than ``COMMON`` images are left
        out."""
        if not len(hashes) or not len(self.keys):
            return []
        wanted = np.asarray(hashes, dtype=np.int64)
        keys, first = np.unique(fingerprint_keys(wanted), return_index=True)
        lo = np.searchsorted(self.keys, keys, side="left")
        hi = np.searchsorted(self.keys, keys, side="right")
        runs = hi - lo
        usable = (runs > 0) & (runs <= COMMON)
        lo, runs, queried = lo[usable], runs[usable], wanted[first[usable]]
        starts = np.repeat(lo - np.cumsum(runs) + runs, runs)
        rows = starts + np.arange(int(runs.sum()))
        owners = np.asarray(self.owners[rows], dtype=np.int64)
        return list(zip(np.repeat(queried, runs).tolist(), owners.tolist(), strict=True))

    def equals(self, other: PatchArrays) -> bool:
        return bool(
            np.array_equal(self.keys, other.keys) and np.array_equal(self.owners, other.owners)
        )


EMPTY = PatchArrays(np.zeros(0, np.uint32), np.zeros(0, np.uint32))


class PatchTable:
    """The patch table in ``folder`` (created on the first ``rebuild``); ``lookup`` answers
    from the generation last loaded, ``refresh`` picks up a newer one."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.arrays = EMPTY
        self.generation = 0
        self.built_from: int | None = None
        self.problem: str | None = None  # why ``arrays`` is not the saved table (None: it is)
        self.missing = False  # no table was ever saved here
        self.refresh()

    def lookup(self, hashes: Sequence[int]) -> list[tuple[int, int]]:
        return self.arrays.owners_of(hashes)

    def refresh(self) -> bool:
        """Load the generation ``patches.json`` names when it is not the one in use."""
        self.missing = not (self.folder / SIDECAR).exists()
        if self.missing:
            self.problem = f"no patch table in {self.folder}"
            return False
        with self._lock(exclusive=False):
            sidecar = self._read_sidecar()
            if sidecar is None:
                self.problem, self.missing = f"no patch table in {self.folder}", True
                return False
            if int(sidecar.get("format", -1)) != FORMAT:
                self.problem = (
                    f"the patch table in {self.folder} has format {sidecar.get('format')!r}, "
                    f"this ogasearch reads format {FORMAT}"
                )
                return False
            if int(sidecar["generation"]) == self.generation:
                return False
            try:
                arrays = self._load(sidecar)
            except (OSError, ValueError, KeyError) as exc:
                self.problem = f"the patch table in {self.folder} is unreadable: {exc}"
                return False
            self.arrays = arrays
            self.generation = int(sidecar["generation"])
            self.built_from = int(sidecar["built_from"])
            self.problem = None
            return True

    def rebuild(self, changes: int | None, build: Callable[[], tuple[PatchArrays, int]]) -> bool:
        """Write a new generation from ``build()`` (the arrays and the catalog's change counter
        they reflect), unless the saved table was built from ``changes`` already (``None``:
        always). One writer at a time; the new generation is loaded. True if written."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._lock(exclusive=True):
            sidecar = self._read_sidecar()
            built = sidecar is not None and self._complete(sidecar)
            if built and changes is not None and sidecar and sidecar["built_from"] == changes:
                return False
            arrays, built_from = build()
            generation = int(sidecar.get("generation", 0)) + 1 if sidecar else 1
            self._save(arrays, generation, built_from)
        self.refresh()
        return True

    # -- files ------------------------------------------------------------------------------

    def _lock(self, exclusive: bool) -> contextlib.AbstractContextManager[None]:
        return folder_lock(self.folder / LOCK, exclusive)

    def _complete(self, sidecar: dict[str, Any]) -> bool:
        """A sidecar of this format whose files are all there."""
        if sidecar.get("format") != FORMAT:
            return False
        return all((self.folder / name).exists() for name in sidecar["files"].values())

    def _read_sidecar(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.folder / SIDECAR).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:
            return {"format": "unreadable"}
        return data if isinstance(data, dict) else {"format": "unreadable"}

    def _load(self, sidecar: dict[str, Any]) -> PatchArrays:
        if not int(sidecar["pairs"]):
            return EMPTY
        files = sidecar["files"]
        return PatchArrays(
            np.load(self.folder / files["keys"], mmap_mode="r"),
            np.load(self.folder / files["owners"], mmap_mode="r"),
        )

    def _save(self, arrays: PatchArrays, generation: int, built_from: int) -> None:
        files = {name: f"{name}.{generation}.npy" for name in ("keys", "owners")}
        for name, arr in (("keys", arrays.keys), ("owners", arrays.owners)):
            atomic_write(self.folder / files[name], _npy_writer(np.ascontiguousarray(arr)))
        sidecar = {
            "format": FORMAT,
            "generation": generation,
            "pairs": len(arrays),
            "images": int(np.unique(arrays.owners).size),
            "key_bits": 32,
            "built_from": built_from,
            "files": files,
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        payload = (json.dumps(sidecar, indent=2) + "\n").encode("utf-8")
        atomic_write(self.folder / SIDECAR, lambda tmp: tmp.write_bytes(payload))
        for entry in self.folder.iterdir():  # older generations, interrupted writes
            stale = _GENERATION_FILE.match(entry.name) and entry.name not in files.values()
            if stale or entry.name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()


def _npy_writer(arr: np.ndarray) -> Callable[[Path], None]:
    """A writer of ``arr`` as an ``.npy`` file to the path it is given (any name)."""

    def write(path: Path) -> None:
        with path.open("wb") as fh:
            np.save(fh, arr, allow_pickle=False)

    return write
