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
from laicbench.run.peak_memory import PeakMemory
from laicbench.run.provenance import device_description, environment
from laicbench.run.records import DatasetInfo, ResultStore, RunRecord, now
from laicbench.run.scoring import score
from laicbench.run.spec import ALL_CLASSES, RunSpec, train_protocol


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


def run_spaces(spec: RunSpec, settings: DataSettings) -> list[str]:
    """The backbones besides `spec.backbone` whose image features of the same dataset(s) the run
    reads (its method's ``extra_backbones``, canonical, without repeats): usually none. UserError
    (one line) when a dataset of the run lives in one backbone's space (the simulated demo, a
    features file) and so has no other."""
    method_cls = registry.methods.get(spec.method)
    extra = other_backbones(method_cls.extra_backbones(spec.params), spec.backbone)
    for name in spec.datasets if extra else []:
        dataset = resolve_dataset(name, settings)
        for backbone in extra:
            try:
                dataset.backbone_for(backbone, spec.backbone)
            except UserError:
                raise UserError(
                    f"method {spec.method!r} asks for the features of {name} under backbone "
                    f"{backbone!r} too, but {name} lives in the feature space of backbone "
                    f"{dataset.native_backbone!r} only; drop the other backbones from the "
                    f"method's parameters for this dataset"
                ) from None
    return extra


def run_inputs(spec: RunSpec, device: str, settings: DataSettings) -> dict[str, Any]:
    """The fingerprint of what `spec`'s features are made from on `device` (Dataset.fingerprint;
    with ``train_on``, the source's too; with other backbones' image features, ``run_spaces``,
    theirs under ``spaces``), stored in its record and compared when planning."""
    method_cls = registry.methods.get(spec.method)
    out = _inputs_under(spec, spec.backbone, method_cls.needs, device, settings)
    extra = run_spaces(spec, settings)
    if extra:
        spaces = {b: _inputs_under(spec, b, frozenset(), device, settings) for b in extra}
        out = {**out, "spaces": spaces}
    return out


def _inputs_under(
    spec: RunSpec, backbone: str, needs: frozenset[Need], device: str, settings: DataSettings
) -> dict[str, Any]:
    prints = [
        resolve_dataset(name, settings).fingerprint(backbone, device, settings, needs)
        for name in spec.datasets
    ]
    if spec.train_on is None:
        return prints[0]
    return {
        **prints[0],
        "train_on": spec.train_on,
        "train_inputs": prints[1],
        "settings_from": spec.settings_dataset,
    }


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
    data = load_dataset_features(spec.dataset, backbone, device, settings)
    if spec.train_on is None:
        return data, data.n_classes
    name, protocol = train_protocol(spec.train_on)
    source = load_dataset_features(name, backbone, device, settings)
    if protocol == ALL_CLASSES:
        return transfer_features(source, data, None), source.n_classes
    classes = resolve_dataset(spec.dataset, settings).source_classes(name)
    return transfer_features(source, data, classes), data.n_classes


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError))


def execute_run(
    spec: RunSpec, store: ResultStore, device: str, settings: DataSettings | None = None
) -> RunRecord:
    """Run `spec` on `device`, store its record (ok, error or oom) and return the record.

    A method without a GPU share runs on the CPU whatever `device` says (Resources.device_for),
    on the features extracted for `device` (precision "auto" resolves for `device`, the sweep's,
    not for the device the method runs on: ``DataSettings.extracting_on``).
    Exceptions of the method or the data become error records; KeyboardInterrupt propagates and
    leaves nothing behind. A failed rerun of a run whose ok record exists (``--overwrite``)
    keeps the ok record, with the failure stored in it under ``last_failure``.
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
        try:
            record.inputs = run_inputs(spec, device, settings)
            data, n_classes = load_run_features(spec, device, settings)
            record.dataset = DatasetInfo(
                spec.dataset,
                n_classes=data.n_classes,
                n_train=int(len(data.labels_train)),
                n_test=int(len(data.labels_test)),
                info=data.info,
            )
            method = method_cls.from_params(spec.params)
            needs = method_cls.needs
            if data.image_space_loader is not None:  # the method names other backbones
                needs = needs | {Need.IMAGE_SPACES}
            bundle = FeatureBundle(data, needs, spec.settings_dataset, device, spec.backbone)
            seed_everything(spec.seed)
            t_fit = time.perf_counter()
            n_clusters = n_classes * spec.k_factor
            y_pred = np.asarray(method.fit_predict(bundle, n_clusters, spec.seed))
            record.fit_time_s = time.perf_counter() - t_fit
            if y_pred.shape != data.labels_test.shape:
                raise ValueError(
                    f"fit_predict returned labels of shape {y_pred.shape}, expected "
                    f"{data.labels_test.shape}"
                )
            y_true = data.labels_test
            score(record, y_true, y_pred, data.image_test, n_clusters)
            record.n_clusters = n_clusters
            record.artefacts = getattr(method, "artefacts_", {})
            outputs = getattr(method, "outputs_", None) or MethodOutputs()
            outputs.check(record.dataset.n_train, record.dataset.n_test)
            record.diagnostics, arrays = label_diagnostics(outputs, data, y_pred, spec.seed, device)
        except Exception as exc:  # noqa: BLE001 - a failing run becomes an error record
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
