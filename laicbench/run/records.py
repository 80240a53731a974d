"""The result store: one JSON record per finished run, written atomically.

Layout below the results dir: ``<method>/<dataset>/<backbone>/seed<N>-<params hash>.json`` (the
run id) and, beside it, ``.pred.npz`` with the test labels and predictions. The predictions file
is written first and the record last, so a record's presence means the run is complete.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from laicbench.files import atomic_write_bytes, check_writable_dir, file_sha256
from laicbench.run.spec import RunSpec

SCHEMA_VERSION = 1
RECORD_SUFFIX = ".json"
PREDICTIONS_SUFFIX = ".pred.npz"
STATUSES = ("ok", "error", "oom")


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
        """Raise UserError unless the results dir exists or can be created, and is writable."""
        check_writable_dir(self.root, "results dir")

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

    def record_paths(self) -> list[Path]:
        """Every record file below the results dir, in path order (not Tune's files under
        ``_ray`` nor hidden temporary files)."""
        return sorted(
            p
            for p in self.root.rglob("*" + RECORD_SUFFIX)
            if not p.name.startswith(".") and p.relative_to(self.root).parts[0] != "_ray"
        )


def read_record(path: Path) -> dict[str, Any] | None:
    """Parse a record file; None when missing, unparsable or not a laicbench record."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("schema_version") is None:
        return None
    return record


def predictions_intact(record_path: Path, record: dict[str, Any]) -> bool:
    """Whether the predictions file beside `record_path` exists with the SHA-256 that `record`
    stores (a record without predictions, such as a failed run's, passes)."""
    expected = (record.get("predictions") or {}).get("sha256")
    if expected is None:
        return True
    try:
        return file_sha256(_predictions_path(record_path)) == expected
    except OSError:
        return False


def _predictions_path(record_path: Path) -> Path:
    return Path(str(record_path)[: -len(RECORD_SUFFIX)] + PREDICTIONS_SUFFIX)


def load_arrays(record_path: Path) -> dict[str, np.ndarray]:
    """The arrays stored beside a record: y_true, y_pred and any diagnostic arrays."""
    with np.load(_predictions_path(record_path)) as data:
        return {key: data[key] for key in data.files}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
