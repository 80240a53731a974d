"""``laicbench rescore``: bring stored records to the current scoring from their stored
predictions, without rerunning any method.

The metrics against the labels and the cluster sizes come from the ``.pred.npz`` beside each
record. The label-free metrics need the run's test image features: they are loaded through the
dataset plugin (the feature cache) and used only when their fingerprint equals the one the run
stored, so that a record is never scored on features other than those it was made from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from laicbench.api.errors import UserError
from laicbench.api.settings import DataSettings
from laicbench.files import atomic_write_bytes
from laicbench.run.records import (
    ResultStore,
    RunRecord,
    load_arrays,
    predictions_intact,
    read_record,
)
from laicbench.run.scoring import SCORING_VERSION, has_internal_metrics, score, scoring_version
from laicbench.run.spec import RunSpec


@dataclass
class RescoreResult:
    """How many records were rescored, and why others were not (reason -> count)."""

    rescored: int = 0
    without_internal: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)


def needs_rescore(record: RunRecord) -> bool:
    """Whether an ok record lacks any score of the current scoring version."""
    return scoring_version(record) < SCORING_VERSION or not has_internal_metrics(record)


def rescore(
    results_dir: str | Path,
    settings: DataSettings,
    device: str = "cpu",
    everything: bool = False,
    on_record: Callable[[Path], None] | None = None,
) -> RescoreResult:
    """Rescore the ok records of `results_dir` that need it (all ok records with `everything`);
    features are loaded on `device` with `settings`. Each record is rewritten atomically; its
    predictions file is left as it is. `on_record` is called with each record path examined."""
    store = ResultStore(results_dir)
    if not store.root.is_dir():
        raise UserError(f"--results-dir {store.root}: no such folder")
    result = RescoreResult()
    test_features = _TestFeatures(device, settings)
    # every record is read before any is rewritten: one written by a newer release stops the
    # rescore (NewerRecordError, naming it) before anything changed
    records = [(path, read_record(path)) for path in store.record_paths()]
    for path, record in records:
        if on_record is not None:
            on_record(path)
        if record is None or not record.ok or not record.metrics:
            continue
        if not (everything or needs_rescore(record)):
            continue
        if record.predictions is None or not predictions_intact(path, record):
            result.skipped["predictions file missing or damaged"] += 1
            continue
        arrays = load_arrays(path)
        image_test = test_features(record)
        if isinstance(image_test, str):
            result.without_internal[image_test] += 1
            image_test = None
        n_clusters = record.n_clusters or int(len(np.unique(arrays["y_true"])))
        score(record, arrays["y_true"], arrays["y_pred"], image_test, n_clusters)
        try:
            atomic_write_bytes(path, record.to_json().encode())
        except OSError as exc:
            raise UserError(
                f"cannot rewrite {path} ({exc.strerror or exc}): rescore needs write access to "
                f"the results dir; {result.rescored} record(s) were rescored before it"
            ) from exc
        result.rescored += 1
    return result


class _TestFeatures:
    """The test image features a record was made from, loaded once per dataset and backbone,
    or why they cannot be used (a string)."""

    def __init__(self, device: str, settings: DataSettings):
        self.device = device
        self.settings = settings
        self._features: dict[tuple, np.ndarray | str] = {}
        self._inputs: dict[tuple, dict | str] = {}

    def __call__(self, record: RunRecord) -> np.ndarray | str:
        from laicbench.run.inputs import attacked_settings, run_inputs, run_spaces
        from laicbench.run.runner import load_dataset_features

        if not record.spec:
            return "the record stores no run spec"
        spec = RunSpec(**record.spec)
        key = (spec.dataset, spec.backbone, spec.attack)
        try:
            spaces = tuple(run_spaces(spec, self.settings))
            inputs_key = (*key, spec.method, spec.train_on, spaces)
            if inputs_key not in self._inputs:
                self._inputs[inputs_key] = run_inputs(spec, self.device, self.settings)
            if record.inputs is not None and self._inputs[inputs_key] != record.inputs:
                return "today's features differ from the run's (device, precision or data)"
            if key not in self._features:
                settings = attacked_settings(spec, self.settings)
                data = load_dataset_features(spec.dataset, spec.backbone, self.device, settings)
                self._features[key] = data.image_test
        except UserError as exc:
            self._features[key] = f"features not available ({str(exc).splitlines()[0]})"
        return self._features[key]
