"""The run record (one typed ``RunRecord`` per run) and the result store that keeps them.

Layout below the results dir: ``<method>/<dataset>/<backbone>/seed<N>-<params hash>.json`` (the
run id) and, beside it, ``.pred.npz`` with the test labels and predictions. The predictions file
is written first and the record last, so a record's presence means the run is complete.

Records are JSON with ``schema_version`` 1; every record written since that schema reads back
into the same RunRecord (keys this release does not know are kept in ``extra`` and written back).
Nothing here imports torch.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import traceback
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from laicbench.api.errors import UserError
from laicbench.files import atomic_write_bytes, check_writable_dir, file_sha256
from laicbench.run.spec import RunSpec

SCHEMA_VERSION = 1
RECORD_SUFFIX = ".json"
PREDICTIONS_SUFFIX = ".pred.npz"


@dataclass
class MethodInfo:
    """The method of a run: name, version, full parameters, whether it is an oracle, the inputs
    it declared and its tags (``training-free``, ...)."""

    name: str
    version: str
    params: dict[str, Any] = field(default_factory=dict)
    oracle: bool = False
    needs: list[str] | None = None
    tags: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetInfo:
    """The dataset of a run: name and, once loaded, its sizes and how its features were made."""

    name: str
    n_classes: int | None = None
    n_train: int | None = None
    n_test: int | None = None
    info: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunRecord:
    """Everything stored about one run: what ran (spec, method, dataset, backbone, seed, inputs),
    where and how (device, threads, k-means implementation, environment), what came out (status,
    metrics, artefacts, label-based diagnostics, predictions checksum, or the error) and what it
    cost (times, peak memory). Optional fields left at None are not written.

    ``metrics`` holds the scores against the labels (acc, nmi, ari and, since scoring version
    2, ami, balanced_acc, m2o_acc), ``internal_metrics`` the label-free ones, ``cluster_sizes``
    the size distribution and ``scoring`` how they were computed (version, NMI normalisation,
    feature space); records of scoring version 1 have the first three metrics only."""

    run_id: str
    status: str
    spec: dict[str, Any]
    method: MethodInfo
    dataset: DatasetInfo
    backbone: str
    seed: int
    schema_version: int = SCHEMA_VERSION
    device: str | None = None
    threads: int | None = None
    kmeans: str | None = None
    inputs: dict[str, Any] | None = None
    fit_time_s: float | None = None
    metrics: dict[str, float] | None = None
    n_clusters: int | None = None
    n_clusters_found: int | None = None
    k_factor: int | None = None
    train_on: str | None = None
    internal_metrics: dict[str, float | None] | None = None
    cluster_sizes: dict[str, float] | None = None
    scoring: dict[str, Any] | None = None
    artefacts: dict[str, Any] | None = None
    diagnostics: dict[str, Any] | None = None
    wall_time_s: float | None = None
    peak_rss_mb: float | None = None
    peak_gpu_mb: float | None = None
    started_at: str | None = None
    finished_at: str | None = None
    environment: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    predictions: dict[str, str] | None = None
    last_failure: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, spec: RunSpec, method_cls: type, **fields_: Any) -> RunRecord:
        """A new ok record of `spec` run by `method_cls` (its version, oracle flag, needs and
        tags), with any further fields given."""
        return cls(
            run_id=spec.run_id,
            status="ok",
            spec=spec.to_dict(),
            method=MethodInfo(
                name=spec.method,
                version=method_cls.version,
                params=spec.params,
                oracle=method_cls.oracle,
                needs=sorted(n.value for n in method_cls.needs),
                tags=sorted(method_cls.tags),
            ),
            dataset=DatasetInfo(spec.dataset),
            backbone=spec.backbone,
            seed=spec.seed,
            k_factor=spec.k_factor if spec.k_factor != 1 else None,
            train_on=spec.train_on,
            **fields_,
        )

    def fail(
        self,
        exc: BaseException,
        *,
        oom: bool,
        text: str | None = None,
        message: str | None = None,
        status: str | None = None,
    ) -> None:
        """Turn this record into an error (with `oom`: an oom; or the given `status`, such as
        ``timeout``) record of `exc`; `text` is the traceback (default: of the exception being
        handled), `message` the one-line message (default: ``str(exc)``)."""
        self.status = status or ("oom" if oom else "error")
        self.metrics = None
        self.error = {
            "type": type(exc).__name__,
            "message": str(exc) if message is None else message,
            "traceback": traceback.format_exc() if text is None else text,
        }

    @property
    def ok(self) -> bool:
        """Whether the run finished (status ok)."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: known fields in declaration order (``schema_version`` first; optional
        ones only when set), then the unknown keys of a record read from disk."""
        out: dict[str, Any] = {"schema_version": self.schema_version}
        for f in fields(self):
            if f.name in ("schema_version", "extra"):
                continue
            value = getattr(self, f.name)
            if f.name == "metrics" or value is not None:
                out[f.name] = _drop_none(value) if f.name in ("method", "dataset") else value
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> RunRecord:
        """The RunRecord of a parsed record; ValueError when it is not one (no schema version,
        a missing field or one of the wrong type)."""
        if not isinstance(data, dict) or data.get("schema_version") is None:
            raise ValueError("not a laicbench record (no schema_version)")
        known = _field_names(cls) - {"extra"}
        try:
            method = data["method"]
            dataset = data["dataset"]
            values = {k: v for k, v in data.items() if k in known}
            values["method"] = MethodInfo(
                name=str(method["name"]),
                version=str(method.get("version", "")),
                params=dict(method.get("params") or {}),
                oracle=bool(method.get("oracle", False)),
                needs=method.get("needs"),
                tags=method.get("tags"),
                extra=_unknown(method, MethodInfo),
            )
            values["dataset"] = DatasetInfo(
                **{k: dataset.get(k) for k in ("n_classes", "n_train", "n_test", "info")},
                name=str(dataset["name"]),
                extra=_unknown(dataset, DatasetInfo),
            )
            values["backbone"] = str(data["backbone"])
            values["seed"] = int(data["seed"])
            values.setdefault("run_id", "")
            values.setdefault("spec", {})
            values.setdefault("status", "error")
            record = cls(**values, extra={k: v for k, v in data.items() if k not in known})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"malformed record: {exc!r}") from exc
        if record.metrics is not None and not isinstance(record.metrics, dict):
            raise ValueError("malformed record: metrics is not a mapping")
        return record

    def to_json(self) -> str:
        """The record file's text."""
        return json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n"


def _unknown(data: dict[str, Any], kind: type) -> dict[str, Any]:
    """The keys of `data` that are not fields of the dataclass `kind`."""
    known = _field_names(kind)
    return {k: v for k, v in data.items() if k not in known}


@functools.cache
def _field_names(kind: type) -> frozenset[str]:
    """The field names of the dataclass `kind` (``dataclasses.fields`` is slow enough to count
    when 50,000 records are read)."""
    return frozenset(f.name for f in fields(kind))


def now() -> str:
    """The current UTC time in ISO format, as records store it."""
    return datetime.now(timezone.utc).isoformat()


def _drop_none(value: Any) -> dict[str, Any]:
    """The JSON form of a MethodInfo or DatasetInfo: set fields, then the unknown keys."""
    out = {
        f.name: v
        for f in fields(value)
        if f.name != "extra" and (v := getattr(value, f.name)) is not None
    }
    return {**out, **value.extra}


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

    def check_paths(self, specs: list[RunSpec]) -> None:
        """UserError (one line) when the record of a run of `specs` could not be stored where
        it goes: a name longer than the file system allows, a path too long, or a file or a
        link to nothing in the way of its folder. Checked before any run computes."""
        name_max, path_max = _name_limits(self.root)
        checked: set[Path] = set()
        for spec in specs:
            path = self.predictions_path(spec)  # the longer of a run's two names
            for part in path.relative_to(self.root).parts:
                if len(part.encode()) > name_max:
                    raise UserError(
                        f"run {spec.run_id}: its record's path has a part of "
                        f"{len(part.encode())} bytes ({part[:40]}...), more than the {name_max} "
                        "the file system allows; use shorter names (a shorter path to the "
                        "features file, e.g. through a symbolic link)"
                    )
            if len(str(path).encode()) >= path_max:
                raise UserError(
                    f"run {spec.run_id}: its record's path would be {len(str(path).encode())} "
                    f"bytes long, more than the file system allows ({path_max}); choose a "
                    "results dir with a shorter path"
                )
            folder = path.parent
            while folder not in checked and folder != self.root:
                checked.add(folder)
                if folder.is_symlink() and not folder.exists():
                    raise UserError(
                        f"run {spec.run_id}: {folder} is a symbolic link to nothing; remove it "
                        "or create its target"
                    )
                if folder.exists() and not folder.is_dir():
                    raise UserError(
                        f"run {spec.run_id}: {folder} is a file where its record's folder goes; "
                        "move it away"
                    )
                folder = folder.parent

    def read(self, spec: RunSpec) -> RunRecord | None:
        """The stored record of `spec`, or None when absent or unreadable."""
        return read_record(self.record_path(spec))

    def write(
        self,
        spec: RunSpec,
        record: RunRecord,
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
            _clear_folder_at(path)
            atomic_write_bytes(path, data)
            record.predictions = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest()}
        path = self.record_path(spec)
        _clear_folder_at(path)
        atomic_write_bytes(path, record.to_json().encode())
        return path

    def write_failure(self, spec: RunSpec, record: RunRecord) -> None:
        """Store the failed `record` of `spec`, unless an ok record is stored: that one is kept
        (with its predictions), the failure noted in its ``last_failure``."""
        previous = self.read(spec)
        if previous is not None and previous.ok:
            previous.last_failure = {
                "status": record.status,
                "error": record.error,
                "finished_at": record.finished_at,
            }
            self.write(spec, previous)
        else:
            self.write(spec, record)

    def record_paths(self) -> list[Path]:
        """Every record file below the results dir, in path order (not the files of folders
        whose name starts with ``_``: Tune's under ``_ray``, tuning studies under ``_tune``; nor
        hidden temporary files)."""
        return sorted(
            (
                p
                for p in self.root.rglob("*" + RECORD_SUFFIX)
                if not p.name.startswith(".")
                and not p.relative_to(self.root).parts[0].startswith("_")
            ),
            key=lambda p: p.parts,  # Path's own order, its parts split once per path
        )


def _clear_folder_at(path: Path) -> None:
    """Make room for the file `path` where a folder took its place (a damaged results dir): an
    empty folder is removed, one with contents moved aside to a hidden sibling, kept."""
    if not path.is_dir() or path.is_symlink():
        return
    try:
        path.rmdir()
    except OSError:
        path.rename(path.with_name(f".{path.name}.folder-{uuid.uuid4().hex[:8]}"))


def _name_limits(root: Path) -> tuple[int, int]:
    """(longest file name, longest path) in bytes on the file system of `root` (its nearest
    existing folder); 255 and 4096, Linux's, where the system does not say."""
    probe = root
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        return os.pathconf(probe, "PC_NAME_MAX"), os.pathconf(probe, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):
        return 255, 4096


def read_record(path: Path) -> RunRecord | None:
    """The RunRecord of a record file; None when missing, unparsable or not a laicbench record."""
    try:
        return RunRecord.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        return None


def predictions_intact(record_path: Path, record: RunRecord) -> bool:
    """Whether the predictions file beside `record_path` exists with the SHA-256 that `record`
    stores (a record without predictions, such as a failed run's, passes)."""
    expected = (record.predictions or {}).get("sha256")
    if expected is None:
        return True
    try:
        return file_sha256(predictions_path(record_path)) == expected
    except OSError:
        return False


def predictions_path(record_path: Path) -> Path:
    """The predictions file beside the record file `record_path`."""
    return Path(str(record_path)[: -len(RECORD_SUFFIX)] + PREDICTIONS_SUFFIX)


def load_arrays(record_path: Path) -> dict[str, np.ndarray]:
    """The arrays stored beside a record: y_true, y_pred and any diagnostic arrays."""
    with np.load(predictions_path(record_path)) as data:
        return {key: data[key] for key in data.files}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
