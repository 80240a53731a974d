"""The result store: one JSON record per finished run, written atomically.

Layout below the results dir: ``<method>/<dataset>/<backbone>/seed<N>-<params hash>.json`` (the
run id) and, beside it, ``.pred.npz`` with the test labels and predictions. The predictions file
is written first and the record last, so a record's presence means the run is complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from laicbench.errors import UserError
from laicbench.runspec import RunSpec

SCHEMA_VERSION = 1
RECORD_SUFFIX = ".json"
PREDICTIONS_SUFFIX = ".pred.npz"
STATUSES = ("ok", "error", "oom")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResultStore:
    """Reads and writes the records of one results dir."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().absolute()

    def record_path(self, spec: RunSpec) -> Path:
        """Where the record of `spec` lives."""
        return self.root / (spec.run_id + RECORD_SUFFIX)

    def predictions_path(self, spec: RunSpec) -> Path:
        """Where the predictions of `spec` live."""
        return self.root / (spec.run_id + PREDICTIONS_SUFFIX)

    def check_writable(self) -> None:
        """Raise UserError unless the results dir exists or can be created, and is writable.

        Leaves nothing behind: it creates and removes a temporary file in the nearest existing
        folder on the way to the results dir.
        """
        probe = self.root
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            raise UserError(f"results dir {self.root}: {probe} is not a directory")
        try:
            with tempfile.TemporaryFile(dir=probe):
                pass
        except OSError as exc:
            raise UserError(
                f"results dir {self.root}: cannot write in {probe} ({exc.strerror})"
            ) from exc

    def read(self, spec: RunSpec) -> dict[str, Any] | None:
        """The stored record of `spec`, or None when absent or unreadable."""
        return read_record(self.record_path(spec))

    def write(
        self,
        spec: RunSpec,
        record: dict[str, Any],
        y_true=None,
        y_pred=None,
        arrays: dict[str, np.ndarray] | None = None,
    ) -> Path:
        """Store `record` for `spec`, and the predictions (with any extra diagnostic `arrays`)
        when given; return the record path."""
        if y_pred is not None:
            buf = io.BytesIO()
            np.savez_compressed(
                buf, y_true=np.asarray(y_true), y_pred=np.asarray(y_pred), **(arrays or {})
            )
            data = buf.getvalue()
            path = self.predictions_path(spec)
            atomic_write_bytes(path, data)
            record["predictions"] = {
                "file": path.name,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        text = json.dumps(record, indent=2, sort_keys=False, default=_json_default) + "\n"
        path = self.record_path(spec)
        atomic_write_bytes(path, text.encode())
        return path

    def iter_records(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Every readable record below the results dir, in path order."""
        for path in sorted(self.root.rglob("*" + RECORD_SUFFIX)):
            record = read_record(path)
            if record is not None:
                yield path, record


def read_record(path: Path) -> dict[str, Any] | None:
    """Parse a record file; None when missing, unparsable or not a laicbench record."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("schema_version") is None:
        return None
    return record


def load_arrays(record_path: Path) -> dict[str, np.ndarray]:
    """The arrays stored beside a record: y_true, y_pred and any diagnostic arrays."""
    stem = str(record_path)[: -len(RECORD_SUFFIX)]
    with np.load(stem + PREDICTIONS_SUFFIX) as data:
        return {key: data[key] for key in data.files}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
