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


class RecordError(ValueError):
    """A record file that cannot be used: unreadable, not JSON, or a field missing or of the
    wrong type. The message names the problem (``load_record`` adds the file)."""


class NewerRecordError(UserError):
    """A record written by a newer laicbench (a higher ``schema_version``): never read as if it
    were of this release's schema, never rewritten."""


@dataclass
class MethodInfo:
    """The method of a run: name, version, full parameters, whether it is an oracle, the inputs
    it declared, its tags (``training-free``, ...) and the SHA-256 of its source
    (``method_source_sha256``; None in records written before it was stored)."""

    name: str
    version: str
    params: dict[str, Any] = field(default_factory=dict)
    oracle: bool = False
    needs: list[str] | None = None
    tags: list[str] | None = None
    source_sha256: str | None = None
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
    attack: dict[str, Any] | None = None
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
        """A new ok record of `spec` run by `method_cls` (its version, oracle flag, needs, tags
        and source hash), with any further fields given."""
        from laicbench.api.method import method_source_sha256

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
                source_sha256=method_source_sha256(method_cls),
            ),
            dataset=DatasetInfo(spec.dataset),
            backbone=spec.backbone,
            seed=spec.seed,
            k_factor=spec.k_factor if spec.k_factor != 1 else None,
            train_on=spec.train_on,
            attack=None if spec.attack is None else spec.attack.to_dict(),
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
        """The RunRecord of a parsed record; RecordError (a ValueError) when it is not one (no
        schema version, a missing field or one of the wrong type: ``check_record_types``),
        NewerRecordError when a newer release wrote it."""
        if not isinstance(data, dict) or data.get("schema_version") is None:
            raise RecordError("not a laicbench record (no schema_version)")
        version = data["schema_version"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise RecordError(f"malformed record: schema_version {version!r} is not an integer")
        if version > SCHEMA_VERSION:
            raise NewerRecordError(
                f"record of schema_version {version}, newer than this release's "
                f"{SCHEMA_VERSION}: upgrade laicbench to read it, or use another --results-dir"
            )
        check_record_types(data)
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
                source_sha256=method.get("source_sha256"),
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
            raise RecordError(f"malformed record: {exc!r}") from exc
        return record

    def to_json(self) -> str:
        """The record file's text."""
        return json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n"


_MAPPINGS = (
    "spec", "inputs", "scoring", "artefacts", "diagnostics", "environment", "error",
    "last_failure",
)  # fmt: skip
_NUMBER_MAPPINGS = ("metrics", "internal_metrics", "cluster_sizes")
_TEXTS = (
    "run_id",
    "status",
    "backbone",
    "device",
    "kmeans",
    "train_on",
    "started_at",
    "finished_at",
)
# fields inside a mapping that the commands read: (mapping, key) -> type
_NESTED: dict[tuple[str, str], type] = {
    ("method", "params"): dict,
    ("method", "needs"): list,
    ("method", "tags"): list,
    ("method", "source_sha256"): str,
    ("dataset", "info"): dict,
    ("scoring", "version"): int,
    ("environment", "libraries"): dict,
    ("error", "message"): str,
}
_KIND_NAMES = {dict: "a mapping", list: "a list", str: "a string", int: "an integer"}
_INTEGERS = ("seed", "threads", "n_clusters", "n_clusters_found", "k_factor")
_NUMBERS = ("fit_time_s", "wall_time_s", "peak_rss_mb", "peak_gpu_mb")


def check_record_types(data: dict[str, Any]) -> None:
    """RecordError naming the first field of the parsed record `data` that is missing or of
    the wrong type (metrics that are not a mapping of numbers, predictions that are not a
    mapping of strings, inputs that are not a mapping, ...): a record that passes can be read by
    every command without a type error. Fields may be absent (None) unless every record has
    them: method, dataset (with their names), backbone and seed."""

    def bad(name: str, what: str) -> RecordError:
        return RecordError(f"malformed record: {name} is {_kind(data.get(name))}, not {what}")

    for name in ("method", "dataset"):
        value = data.get(name)
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise bad(name, "a mapping with a name")
    for (outer, inner), kind in _NESTED.items():
        value = (data.get(outer) or {}).get(inner) if isinstance(data.get(outer), dict) else None
        if value is not None and not isinstance(value, kind):
            raise RecordError(
                f"malformed record: {outer}.{inner} is {_kind(value)}, not {_KIND_NAMES[kind]}"
            )
    if data.get("backbone") is None or data.get("seed") is None:
        raise RecordError("malformed record: no backbone or seed")
    for name in _MAPPINGS:
        if data.get(name) is not None and not isinstance(data[name], dict):
            raise bad(name, "a mapping")
    for name in _NUMBER_MAPPINGS:
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise bad(name, "a mapping of numbers")
        for key, v in value.items():
            if v is not None and not _is_number(v):
                raise RecordError(f"malformed record: {name}[{key!r}] is {_kind(v)}, not a number")
    predictions = data.get("predictions")
    if predictions is not None and not (
        isinstance(predictions, dict) and all(isinstance(v, str) for v in predictions.values())
    ):
        raise bad("predictions", "a mapping of file name and checksum")
    for name in _TEXTS:
        if data.get(name) is not None and not isinstance(data[name], str):
            raise bad(name, "a string")
    for name in _INTEGERS:
        value = data.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise bad(name, "an integer")
    for name in _NUMBERS:
        if data.get(name) is not None and not _is_number(data[name]):
            raise bad(name, "a number")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    """'a str', 'a list', ... (for error messages)."""
    if value is None:
        return "missing"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


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
        """The stored record of `spec`, or None when absent or unusable (NewerRecordError when
        a newer release wrote it)."""
        return read_record(self.record_path(spec))

    def load(self, spec: RunSpec) -> RunRecord | None:
        """The stored record of `spec`, None when absent; RecordError naming the file when it
        is unusable, NewerRecordError when a newer release wrote it (``load_record``)."""
        return load_record(self.record_path(spec))

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
        """Every record file below the results dir, in path order: the one listing that
        ``status``, ``run``, ``report`` and ``rescore`` share. Symlinked folders are followed
        (each real folder once, so a link loop ends); folders whose name starts with ``_``
        (Tune's ``_ray``, tuning studies' ``_tune``) and hidden files (temporary ones) are not
        read. The walk keeps its own stack, so any depth of folders is fine."""
        found: list[Path] = []
        seen: set[str] = set()
        stack = [self.root]
        while stack:
            folder = stack.pop()
            real = os.path.realpath(folder)
            if real in seen:
                continue
            seen.add(real)
            try:
                entries = list(os.scandir(folder))
            except OSError:  # unreadable or vanished: the records there cannot be listed
                continue
            for entry in entries:
                if entry.name.startswith(".") or (folder == self.root and entry.name[0] == "_"):
                    continue
                try:
                    is_dir = entry.is_dir()  # follows symlinks
                except OSError:
                    continue
                if entry.name.endswith(RECORD_SUFFIX):  # a folder here is a damaged record
                    found.append(Path(entry.path))
                elif is_dir:
                    stack.append(Path(entry.path))
        return sorted(found, key=lambda p: p.parts)  # parts split once per path


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
    """The RunRecord of a record file; None when missing, unparsable or not a valid laicbench
    record; NewerRecordError (one line naming the file) when a newer release wrote it."""
    try:
        return load_record(path)
    except RecordError:
        return None


def load_record(path: Path) -> RunRecord | None:
    """The RunRecord of a record file, None when there is no file; RecordError naming the file
    and the problem when it cannot be read or is not a valid record (``check_record_types``);
    NewerRecordError naming the file and both schema versions when a newer release wrote it."""
    try:
        text = path.read_bytes().decode()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: unreadable ({exc})") from exc
    try:
        return RunRecord.from_dict(json.loads(text))
    except NewerRecordError as exc:
        raise NewerRecordError(f"{path}: {exc}") from None
    except (ValueError, RecursionError) as exc:  # RecordError, not JSON, absurdly nested
        raise RecordError(f"{path}: {str(exc) or type(exc).__name__}") from exc


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
