"""Torch-free helpers for files and hashes: canonical JSON and its hash, file checksums, atomic
writes and the check that a folder can be written.

Every part of laicbench that hashes a configuration or writes a file that must never be seen
half-written (records, cache manifests, checksum memos) uses these.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from laicbench.api.errors import UserError


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def short_hash(value: Any, length: int = 10) -> str:
    """The first `length` hex digits of the SHA-256 of `value`'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename.

    The file gets the permissions a plain ``open`` would give (0666 less the umask), so that
    colleagues sharing the results or the cache can read them.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def staging_dir(parent: Path, prefix: str, suffix: str = "") -> Path:
    """A new empty folder in `parent` to build into before renaming it into place, with the
    permissions a plain ``mkdir`` would give (``mkdtemp`` alone makes it private, 0700)."""
    path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix, suffix=suffix))
    path.chmod(0o777 & ~_umask())
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable_dir(path: str | Path, what: str) -> None:
    """Raise a one-line UserError unless folder `path` exists or can be created, and is
    writable; `what` names it in the message ("results dir", "--cache-dir").

    Leaves nothing behind: it creates and removes a temporary file in the nearest existing
    folder on the way to `path`.
    """
    root = Path(path).expanduser().absolute()
    probe = root
    while not probe.exists() and probe.parent != probe:
        if probe.is_symlink():  # exists() follows links: this one points nowhere
            raise UserError(
                f"{what} {root}: {probe} is a symbolic link to {os.readlink(probe)}, which does "
                "not exist; create its target or remove the link"
            )
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{what} {root}: {probe} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise UserError(f"{what} {root}: cannot write in {probe} ({exc.strerror})") from exc
