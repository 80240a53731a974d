"""The Python API of a sweep: ``run_sweep(config) -> SweepResult``, and ``Sweep`` for callers
that want the plan first (``--dry-run``, ``status``) or a progress display.

A sweep expands its config into runs, skips those already done (resume), checks everything a
run needs before the first one starts (results and cache folders writable, vocabulary readable,
datasets complete, features obtainable, the executor able to take every run) and then hands the
rest to its executor, which stores one record per run.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from laicbench.api import registry
from laicbench.api.errors import UserError
from laicbench.api.settings import DataSettings
from laicbench.run.config import SweepConfig
from laicbench.run.executors import Batch, Executor, OnDone, OnStart, make_executor
from laicbench.run.plan import (
    InputFingerprints,
    SweepPlan,
    check_datasets,
    check_settings_read,
    expand,
    plan,
    prepare_features,
    stored_state,
)
from laicbench.run.provenance import resolve_device
from laicbench.run.records import ResultStore, RunRecord
from laicbench.run.spec import RunSpec


@dataclass
class SweepResult:
    """What a sweep did: its runs (`specs`), those skipped because an up-to-date record
    existed and those run now, each with its record."""

    results_dir: Path
    specs: list[RunSpec]
    skipped: list[tuple[RunSpec, RunRecord]] = field(default_factory=list)
    finished: list[tuple[RunSpec, RunRecord]] = field(default_factory=list)

    @property
    def failed(self) -> list[tuple[RunSpec, RunRecord]]:
        """The runs of this sweep that ended in an error or oom record."""
        return [(spec, record) for spec, record in self.finished if not record.ok]

    @property
    def records(self) -> list[RunRecord]:
        """The records of every run of the sweep (skipped ones, then new ones)."""
        return [record for _, record in self.skipped + self.finished]


class Sweep:
    """The runs of `config` (or the given `specs`, made by a caller such as ``laicbench tune``)
    and their state in its results dir, ready to execute."""

    def __init__(self, config: SweepConfig, specs: list[RunSpec] | None = None):
        config.check()
        for folder in config.include_path:
            registry.load_plugin_folder(folder)
        self.config = config
        self.specs = expand(config) if specs is None else specs
        given = config.data_settings()
        if given.vocabulary is not None:  # unreadable: said first, whatever the runs
            from laicbench.data.vocab import load_vocabulary

            load_vocabulary(given.vocabulary)
        check_settings_read(self.specs, given)  # the flags as given, before "auto" resolves
        remote_ray = config.executor == "ray" and bool(config.address)
        # the driver only extracts features; with a remote cluster the trials' GPUs are the
        # cluster's, so the driver's own device stays auto
        self.device = resolve_device(
            "auto" if remote_ray and config.device != "cpu" else config.device
        )
        # the precision is the extracting device's (the driver's), for every run wherever it runs
        self.settings: DataSettings = config.data_settings().extracting_on(self.device)
        self.store = ResultStore(config.results_dir)
        self.fingerprints = InputFingerprints(self.device, self.settings)

    @functools.cached_property
    def plan(self) -> SweepPlan:
        """The runs to do and those already done (read from the results dir once)."""
        return plan(self.specs, self.store, self.config.overwrite, self.fingerprints)

    @functools.cached_property
    def executor(self) -> Executor:
        """The executor of the config (local when nothing is left to run)."""
        return self.executor_of(self.config.executor if self.plan.todo else "local")

    def executor_of(self, kind: str) -> Executor:
        """A new executor of `kind` (ray or local) for this sweep's device, cluster and plugin
        folders."""
        config = self.config
        return make_executor(
            kind,
            self.device if kind == "local" else config.device,
            address=config.address,
            num_cpus=config.num_cpus,
            num_gpus=config.num_gpus,
            include_paths=tuple(config.include_path),
        )

    def states(self) -> Iterator[tuple[RunSpec, str, str]]:
        """(spec, state, why) of every run: done, failed, outdated, damaged or missing."""
        for spec in self.specs:
            state, why, _ = stored_state(spec, self.store, self.fingerprints)
            yield spec, state, why

    def check(self) -> None:
        """Everything the runs to do need, before the first starts; UserError otherwise. Features
        are extracted (or found in the cache) here, so that unobtainable weights or an unknown
        architecture stop the sweep with one line instead of error records."""
        self.check_inputs(self.plan.todo, self.executor)

    def check_inputs(self, todo: list[RunSpec], executor: Executor) -> None:
        """``check`` for the runs `todo`, executed by `executor`."""
        self.store.check_writable()
        self.store.check_paths(todo)
        if todo:
            from laicbench.data.cache import default_cache_dir
            from laicbench.files import check_writable_dir

            check_writable_dir(self.settings.cache_dir or default_cache_dir(), "--cache-dir")
        if self.settings.vocabulary is not None:
            from laicbench.data.vocab import load_vocabulary

            load_vocabulary(self.settings.vocabulary)  # one line naming the file if unreadable
        check_datasets(todo, self.settings)
        prepare_features(todo, self.device, self.settings)
        check_cluster_counts(todo, self.device, self.settings)
        executor.prepare(Batch(todo, self.store, self.settings, self.config.run_timeout))

    def execute(
        self,
        on_start: OnStart = lambda spec: None,
        on_done: OnDone = lambda spec, record: None,
    ) -> SweepResult:
        """Run the runs to do with the executor (after ``check``); returns the SweepResult."""
        result = SweepResult(self.store.root, self.specs, skipped=list(self.plan.done))
        try:
            batch = Batch(self.plan.todo, self.store, self.settings, self.config.run_timeout)
            result.finished = self.executor.run(batch, on_start, on_done)
        except OSError as exc:
            raise UserError(f"cannot write results in {self.store.root}: {exc}") from exc
        return result


def check_cluster_counts(specs: list[RunSpec], device: str, settings: DataSettings) -> None:
    """UserError (one line) when a run of `specs` would ask for more clusters (``--k-factor``
    x K) than its dataset has test images; read from the features prepared, once per dataset,
    backbone and source."""
    from laicbench.run.runner import load_run_features

    seen: set[tuple] = set()
    for spec in specs:
        key = (spec.dataset, spec.backbone, spec.train_on, spec.k_factor)
        if spec.k_factor == 1 or key in seen:
            continue
        seen.add(key)
        data, n_classes = load_run_features(spec, device, settings)
        n_test = len(data.labels_test)
        if n_classes * spec.k_factor > n_test:
            raise UserError(
                f"--k-factor {spec.k_factor}: {spec.dataset} would be split into "
                f"{n_classes * spec.k_factor:,} clusters ({n_classes} classes x "
                f"{spec.k_factor}) but has {n_test:,} test images; use a smaller --k-factor"
            )


def run_sweep(
    config: SweepConfig,
    on_start: OnStart = lambda spec: None,
    on_done: OnDone = lambda spec, record: None,
) -> SweepResult:
    """Run the sweep of `config` (skipping runs already done) and return what it did.

    `on_start(spec)` and `on_done(spec, record)` are called as each run starts and ends. Raises
    UserError, before any run starts, for anything the sweep cannot do.
    """
    sweep = Sweep(config)
    sweep.check()
    return sweep.execute(on_start, on_done)
