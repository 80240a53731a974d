"""Execute one run: features -> method.fit_predict -> metrics -> one stored record.

Both executors (in-process and Ray) call ``execute_run``; nothing else writes records.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from typing import Any

import numpy as np
import torch

from laicbench.api import registry
from laicbench.api.errors import UserError
from laicbench.api.features import DatasetFeatures, FeatureBundle, Need, other_backbones
from laicbench.api.method import Method
from laicbench.api.outputs import MethodOutputs
from laicbench.api.settings import DataSettings
from laicbench.cluster import kmeans
from laicbench.cluster.tensors import torch_threads
from laicbench.data.resolve import resolve_dataset
from laicbench.data.transfer import transfer_features
from laicbench.run.diagnostics import label_diagnostics
from laicbench.run.inputs import attacked_settings, run_inputs, run_spaces
from laicbench.run.peak_memory import PeakMemory
from laicbench.run.provenance import device_description, environment
from laicbench.run.records import DatasetInfo, ResultStore, RunRecord, now
from laicbench.run.scoring import score
from laicbench.run.spec import ALL_CLASSES, RunSpec, train_protocol
from laicbench.run.timeout import RunTimeout, call_with_timeout


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_dataset_features(
    dataset: str, backbone: str, device: str, settings: DataSettings
) -> DatasetFeatures:
    """The features of `dataset` under `backbone` (the dataset plugin caches them)."""
    return resolve_dataset(dataset, settings).load(backbone, device, settings)


def run_threads(method_cls: type[Method]) -> int:
    """torch's thread count for a run of `method_cls`: its declared CPU share (at least 1), the
    same with either executor, so that reductions, and so the results, do not depend on it."""
    return max(1, math.floor(method_cls.resources.cpus))


def load_run_features(
    spec: RunSpec, device: str, settings: DataSettings
) -> tuple[DatasetFeatures, int]:
    """The features `spec` runs on and its number of clusters before the k-factor: the dataset's
    own, or with ``train_on`` the source's train split (``transfer_features``): ``SOURCE:all``
    every source class and K of the source (VLM4Cluster's 1,000-way heads on ImageNet),
    ``SOURCE:subset`` the source's images of the dataset's classes and K of the dataset.

    When the method reads other backbones' image features (``run_spaces``), they come through
    ``image_space_loader``, made the same way from the feature cache on first use; the info of
    each one loaded is added to ``info["spaces"]`` (so to the record)."""
    data, n_classes = _features_under(spec, spec.backbone, device, settings)
    extra = run_spaces(spec, settings)
    if not extra:
        return data, n_classes
    loaded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    infos: dict[str, Any] = {}

    def image_space(name: str) -> tuple[np.ndarray, np.ndarray]:
        backbone = next(iter(other_backbones([name], spec.backbone)), None)
        if backbone is None:  # the run's own
            return data.image_train, data.image_test
        if backbone not in extra:
            raise UserError(
                f"method {spec.method!r} read the features under backbone {backbone!r}, which "
                f"its extra_backbones do not name (they name {', '.join(extra)})"
            )
        if backbone not in loaded:
            other, _ = _features_under(spec, backbone, device, settings)
            for split in ("train", "test"):
                if not np.array_equal(
                    getattr(other, f"labels_{split}"), getattr(data, f"labels_{split}")
                ):
                    raise ValueError(
                        f"the {split} split of {spec.dataset} under {backbone} is not the same "
                        f"images in the same order as under {spec.backbone}"
                    )
            loaded[backbone] = (other.image_train, other.image_test)
            infos[backbone] = other.info
        return loaded[backbone]

    info = {**data.info, "spaces": infos}
    return dataclasses.replace(data, image_space_loader=image_space, info=info), n_classes


def _features_under(
    spec: RunSpec, backbone: str, device: str, settings: DataSettings
) -> tuple[DatasetFeatures, int]:
    data = load_dataset_features(spec.dataset, backbone, device, attacked_settings(spec, settings))
    if spec.train_on is None:
        return data, data.n_classes
    name, protocol = train_protocol(spec.train_on)
    source = load_dataset_features(name, backbone, device, settings)
    if protocol == ALL_CLASSES:
        return transfer_features(source, data, None), source.n_classes
    classes = resolve_dataset(spec.dataset, settings).source_classes(name)
    return transfer_features(source, data, classes), data.n_classes


class LabelsError(ValueError):
    """A method returned cluster labels that cannot be scored."""


def check_labels(y_pred: np.ndarray, n_samples: int, n_clusters: int) -> None:
    """LabelsError unless `y_pred` holds one integer label in 0..`n_clusters`-1 per test sample
    (a 1-D array of length `n_samples`). The metrics have no notion of a "noise" label (-1), so
    none is accepted: a method that leaves samples unassigned must assign them itself."""
    where = "fit_predict returned"
    if y_pred.shape != (n_samples,):
        raise LabelsError(f"{where} labels of shape {y_pred.shape}, expected ({n_samples},)")
    if not np.issubdtype(y_pred.dtype, np.integer):
        raise LabelsError(
            f"{where} labels of dtype {y_pred.dtype}, expected integers (cast them with "
            "astype(int) if they are whole numbers)"
        )
    if n_samples and (int(y_pred.min()) < 0 or int(y_pred.max()) >= n_clusters):
        raise LabelsError(
            f"{where} labels from {int(y_pred.min())} to {int(y_pred.max())}, expected 0 to "
            f"{n_clusters - 1} ({n_clusters} clusters were asked for; no noise label such as "
            "-1 is scored)"
        )


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError))


def execute_run(
    spec: RunSpec,
    store: ResultStore,
    device: str,
    settings: DataSettings | None = None,
    timeout: float | None = None,
) -> RunRecord:
    """Run `spec` on `device`, store its record (ok, error, oom or timeout) and return the record.

    A method without a GPU share runs on the CPU whatever `device` says (Resources.device_for),
    on the features extracted for `device` (precision "auto" resolves for `device`, the sweep's,
    not for the device the method runs on: ``DataSettings.extracting_on``).
    Exceptions of the method or the data become error records; a method still going after
    `timeout` seconds (None: no limit; loading the features is not counted) makes a timeout
    record (``laicbench.run.timeout``); KeyboardInterrupt propagates and leaves nothing behind.
    A failed rerun of a run whose ok record exists (``--overwrite``) keeps the ok record, with
    the failure stored in it under ``last_failure``.
    """
    settings = (settings or DataSettings()).extracting_on(device)
    method_cls: type[Method] = registry.methods.get(spec.method)
    device = method_cls.resources.device_for(device)
    t0 = time.perf_counter()
    record = RunRecord.start(
        spec,
        method_cls,
        device=device_description(device),
        threads=run_threads(method_cls),
        kmeans=kmeans.IMPLEMENTATION,
        started_at=now(),
    )
    y_true = y_pred = None
    arrays: dict[str, np.ndarray] = {}
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    with PeakMemory() as memory, torch_threads(record.threads):
        # the work fills a copy: a timed-out run's thread may go on for a while, and must not
        # touch the record that is stored
        work = dataclasses.replace(record)
        try:
            work.inputs = run_inputs(spec, device, settings)
            data, n_classes = load_run_features(spec, device, settings)
            y_true, y_pred, arrays = call_with_timeout(
                lambda: _fit_and_score(spec, work, method_cls, data, n_classes, device), timeout
            )
            record = work
        except RunTimeout as exc:
            record.inputs, record.dataset = work.inputs, work.dataset
            record.fail(exc, oom=False, status="timeout")
        except Exception as exc:  # noqa: BLE001 - a failing run becomes an error record
            record = work
            record.fail(exc, oom=_is_oom(exc))
            y_pred = None
    record.wall_time_s = time.perf_counter() - t0
    record.peak_rss_mb = memory.peak_mb
    if device.startswith("cuda"):
        record.peak_gpu_mb = torch.cuda.max_memory_allocated(device) / 2**20  # the run's GPU
    record.finished_at = now()
    record.environment = environment()
    if not record.ok:
        store.write_failure(spec, record)  # an ok record of an earlier run stays
        return record
    store.write(spec, record, y_true=y_true, y_pred=y_pred, arrays=arrays)
    return record


def _fit_and_score(
    spec: RunSpec,
    record: RunRecord,
    method_cls: type[Method],
    data: DatasetFeatures,
    n_classes: int,
    device: str,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The method's part of a run (what ``--run-timeout`` limits): ``fit_predict`` on `data`,
    the scores and diagnostics, filled into `record`; returns (test labels, predictions,
    diagnostic arrays)."""
    record.dataset = DatasetInfo(
        spec.dataset,
        n_classes=data.n_classes,
        n_train=int(len(data.labels_train)),
        n_test=int(len(data.labels_test)),
        info=data.info,
    )
    method = method_cls.from_params(spec.params)
    needs = method_cls.run_needs(spec.params)
    if data.image_space_loader is not None:  # the method names other backbones
        needs = needs | {Need.IMAGE_SPACES}
    bundle = FeatureBundle(data, needs, spec.settings_dataset, device, spec.backbone)
    seed_everything(spec.seed)
    t_fit = time.perf_counter()
    if n_classes < 2:  # any clustering of one class scores 100%
        raise ValueError(f"{spec.dataset} has {n_classes} class: K must be at least 2")
    n_clusters = n_classes * spec.k_factor
    y_pred = np.asarray(method.fit_predict(bundle, n_clusters, spec.seed))
    record.fit_time_s = time.perf_counter() - t_fit
    check_labels(y_pred, len(data.labels_test), n_clusters)
    y_true = data.labels_test
    score(record, y_true, y_pred, data.image_test, n_clusters)
    record.n_clusters = n_clusters
    record.artefacts = getattr(method, "artefacts_", {})
    outputs = getattr(method, "outputs_", None) or MethodOutputs()
    outputs.check(record.dataset.n_train, record.dataset.n_test)
    record.diagnostics, arrays = label_diagnostics(outputs, data, y_pred, spec.seed, device)
    return y_true, y_pred, arrays
