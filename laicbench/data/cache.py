"""The content-addressed feature cache.

An entry is a folder named by the hash of every field that changes its arrays (backbone, weights
checksum, preprocessing, precision, dataset, split, sample list, vocabulary, templates, library
versions). Arrays are ``.npy`` files (memory-mapped on load), each written to a temporary name and
renamed; ``manifest.json`` with shapes, dtypes and SHA-256 checksums is written last. A file lock
per key makes concurrent processes build an entry once. An entry whose files do not match its
manifest is rebuilt, never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from laicbench.files import atomic_write_bytes, canonical_json, file_sha256, staging_dir

MANIFEST = "manifest.json"


def default_cache_dir() -> Path:
    """``$LAICBENCH_CACHE`` if set, else ``~/.cache/laicbench/features``."""
    env = os.environ.get("LAICBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "laicbench" / "features"


def cache_key(fields: dict[str, Any]) -> str:
    """The entry name of `fields`: 32 hex digits of the SHA-256 of their canonical JSON."""
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CacheEntry:
    """A cache entry's key, folder and manifest (None when missing or unreadable)."""

    key: str
    path: Path
    manifest: dict[str, Any] | None

    @property
    def size_bytes(self) -> int:
        """Bytes of the entry's files."""
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())


class FeatureCache:
    """Feature arrays stored by content key below `root`."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def entry(self, key: str) -> CacheEntry:
        """The entry of `key` (which may not exist)."""
        path = self.root / key
        manifest = None
        with contextlib.suppress(OSError, ValueError):
            manifest = json.loads((path / MANIFEST).read_text())
        return CacheEntry(key, path, manifest)

    def problems(self, key: str, checksums: bool = True) -> list[str]:
        """What is wrong with entry `key` (empty when it is complete and intact)."""
        entry = self.entry(key)
        manifest = entry.manifest
        if not isinstance(manifest, dict) or not isinstance(manifest.get("arrays"), dict):
            return ["no readable manifest"]
        found = []
        for name, meta in manifest["arrays"].items():
            file = entry.path / f"{name}.npy"
            if not file.is_file():
                found.append(f"{file.name} is missing")
            elif file.stat().st_size != meta["bytes"]:
                found.append(
                    f"{file.name} has {file.stat().st_size} bytes, expected {meta['bytes']}"
                )
            elif checksums and file_sha256(file) != meta["sha256"]:
                found.append(f"{file.name} does not match its checksum")
        return found

    def load(self, key: str) -> dict[str, np.ndarray]:
        """The arrays of entry `key`, memory-mapped read-only."""
        entry = self.entry(key)
        assert entry.manifest is not None
        return {
            name: np.load(entry.path / f"{name}.npy", mmap_mode="r")
            for name in entry.manifest["arrays"]
        }

    def get_or_build(
        self,
        fields: dict[str, Any],
        build: Callable[[], dict[str, np.ndarray]],
        description: str = "",
    ) -> tuple[str, dict[str, np.ndarray]]:
        """(key, arrays) of `fields`, building and storing them with `build()` if needed.

        Checksums are verified before use; an entry that fails is deleted and rebuilt. Concurrent
        callers with the same fields wait on a file lock and build once.
        """
        key = cache_key(fields)
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.problems(key):
            return key, self.load(key)
        with FileLock(str(self.root / f"{key}.lock")):
            if not self.problems(key):
                return key, self.load(key)
            shutil.rmtree(self.root / key, ignore_errors=True)
            arrays = build()
            self._store(key, fields, arrays, description)
        return key, self.load(key)

    def _store(
        self, key: str, fields: dict[str, Any], arrays: dict[str, np.ndarray], description: str
    ) -> None:
        staging = staging_dir(self.root, prefix=f".{key}.")
        try:
            meta = {}
            for name, array in arrays.items():
                file = staging / f"{name}.npy"
                np.save(file, np.ascontiguousarray(array))
                meta[name] = {
                    "shape": list(array.shape),
                    "dtype": str(array.dtype),
                    "bytes": file.stat().st_size,
                    "sha256": file_sha256(file),
                }
            os.replace(staging, self.root / key)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        manifest = {
            "key": key,
            "description": description,
            "fields": fields,
            "arrays": meta,
            "created_at": datetime.now(timezone.utc).isoformat(),
        }
        atomic_write_bytes(self.root / key / MANIFEST, json.dumps(manifest, indent=2).encode())

    def entries(self) -> list[CacheEntry]:
        """Every entry folder below the root (complete or not), by key."""
        if not self.root.is_dir():
            return []
        return [
            self.entry(p.name)
            for p in sorted(self.root.iterdir())
            if p.is_dir() and not p.name.startswith(".")
        ]

    def remove(self, key: str) -> None:
        """Delete entry `key` and its lock file."""
        shutil.rmtree(self.root / key, ignore_errors=True)
        (self.root / f"{key}.lock").unlink(missing_ok=True)
