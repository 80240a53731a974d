"""The Python API of ``laicbench tune``: ``run_tuning(config) -> TuningResult``, and ``Tuning``
for callers that want the plan first (``--dry-run``) or a progress display.

For every (method, dataset, backbone) of the sweep and every objective, a study searches the
method's declared space with the same budget of trials, each trial an ordinary run per
selection seed. Then the default and the chosen parameters of every method run with the
evaluation seeds (disjoint from the selection seeds unless asked otherwise), as ordinary runs:
those are the numbers the report compares. Methods without a space (or oracles) only get their
default runs.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from laicbench.api import registry
from laicbench.api.errors import UserError
from laicbench.run.config import SweepConfig
from laicbench.run.executors import Executor, OnDone, OnStart
from laicbench.run.records import now
from laicbench.run.spec import RunSpec, parse_seeds
from laicbench.run.sweep import Sweep, SweepResult
from laicbench.tune.objectives import DEFAULT_OBJECTIVE, Objective, get_objective
from laicbench.tune.space import StudySpace, describe_space, resolve_space
from laicbench.tune.study import (
    DEFAULT_BATCH,
    DEFAULT_BUDGET,
    DEFAULT_SELECTION_SEEDS,
    SEARCH_ALGORITHMS,
    SearchSettings,
    Study,
    Trial,
    best_trial,
    evaluate_trial,
    known_values,
    read_study_record,
    write_study_record,
)


@dataclass
class TuningConfig:
    """What ``laicbench tune`` does: the sweep (``sweep``: methods, datasets, backbones, data,
    executor; its ``seeds`` are the evaluation seeds), the number of trials per study
    (``budget``, the same for every method), the ``objectives`` (each its own study), the
    ``selection_seeds`` every trial runs with, the search (``search``: tpe or random,
    ``search_seed``, ``batch``: trials proposed together) and whether selection and evaluation
    seeds may overlap (``overlap_seeds``)."""

    sweep: SweepConfig = field(default_factory=SweepConfig)
    budget: int = DEFAULT_BUDGET
    objectives: list[str] = field(default_factory=lambda: [DEFAULT_OBJECTIVE])
    selection_seeds: str = DEFAULT_SELECTION_SEEDS
    search: str = "tpe"
    search_seed: int = 0
    batch: int = DEFAULT_BATCH
    overlap_seeds: bool = False

    def check(self) -> None:
        """UserError for a value no tuning can take."""
        self.sweep.check()
        if self.budget < 1:
            raise UserError("--budget must be at least 1 trial")
        if self.batch < 1:
            raise UserError("--batch must be at least 1")
        if self.search not in SEARCH_ALGORITHMS:
            raise UserError(f"--search {self.search!r}: expected {' or '.join(SEARCH_ALGORITHMS)}")
        if not self.objectives:
            raise UserError("--objective: no objective given")
        if self.sweep.grid:
            raise UserError(
                "--grid does not apply to tune: it searches each method's param_space (fix a "
                "parameter with a config file's [params.METHOD] table)"
            )

    def seeds(self) -> tuple[list[int], list[int]]:
        """(selection seeds, evaluation seeds); UserError when bad, or overlapping without
        ``overlap_seeds``."""
        try:
            selection = parse_seeds(self.selection_seeds)
        except ValueError as exc:
            raise UserError(f"--selection-seeds: {exc}") from exc
        try:
            evaluation = parse_seeds(self.sweep.seeds)
        except ValueError as exc:
            raise UserError(f"--seeds: {exc}") from exc
        common = sorted(set(selection) & set(evaluation))
        if common and not self.overlap_seeds:
            raise UserError(
                f"selection seeds and evaluation seeds share {', '.join(map(str, common))}: "
                "choosing and scoring on the same seeds favours tuned methods; pick disjoint "
                "--selection-seeds and --seeds, or pass --overlap-seeds"
            )
        return selection, evaluation


@dataclass
class Cell:
    """One (method, dataset, backbone) of the sweep: its base parameters (defaults and the
    user's fixed values), which of them the user fixed, and its k-factor and train_on."""

    method: str
    dataset: str
    backbone: str
    base_params: dict[str, Any]
    fixed: frozenset[str]
    k_factor: int
    train_on: str | None

    @property
    def method_cls(self):
        """The registered method class of the cell."""
        return registry.methods.get(self.method)

    def declared_space(self) -> dict[str, str]:
        """The method's declared space without the fixed parameters, in words (empty: nothing
        to tune here)."""
        cls = self.method_cls
        if not cls.tunable():
            return {}
        space = {n: d for n, d in cls.param_space.items() if n not in self.fixed}
        return describe_space(space)

    def untuned_reason(self) -> str | None:
        """Why this cell gets no study (None: it gets one per objective)."""
        cls = self.method_cls
        if "interactive" in cls.tags:
            return "interactive (learns from simulated feedback): never tuned nor ranked"
        if cls.oracle:
            return "oracle: never tuned nor ranked"
        if not cls.param_space:
            return "not tunable: no param_space"
        if not self.declared_space():
            return "every parameter of its param_space is fixed"
        return None


@dataclass
class StudyResult:
    """A finished search: the study, its trials (proposal order), the best trial and where its
    record is."""

    study: Study
    trials: list[Trial]
    best: Trial | None
    record_path: Path

    @property
    def executed_runs(self) -> int:
        """Runs of the search that were run now (not found stored)."""
        return sum(t.executed for t in self.trials)


@dataclass
class TuningResult:
    """What ``run_tuning`` did: the studies, the cells left untuned (with why) and the
    evaluation sweep (default and chosen parameters with the evaluation seeds)."""

    results_dir: Path
    studies: list[StudyResult]
    untuned: list[tuple[Cell, str]]
    evaluation: SweepResult


OnTrial = Callable[[Study, Trial], None]


class Tuning:
    """The studies of a TuningConfig, ready to search and evaluate."""

    def __init__(self, config: TuningConfig):
        config.check()
        self.config = config
        self.objectives: list[Objective] = list(
            {o.name: o for o in map(get_objective, config.objectives)}.values()
        )
        self.selection_seeds, self.evaluation_seeds = config.seeds()
        selection = dataclasses.replace(config.sweep, seeds=config.selection_seeds)
        self.sweep = Sweep(selection)  # the default parameters with the selection seeds
        self.cells = self._cells(self.sweep.specs)
        self.search_settings = SearchSettings(config.search, config.search_seed, config.batch)

    def _cells(self, specs: list[RunSpec]) -> list[Cell]:
        cells: dict[tuple, Cell] = {}
        for spec in specs:
            key = (spec.method, spec.dataset, spec.backbone)
            if key not in cells:
                fixed = frozenset(
                    p
                    for name, values in self.config.sweep.params.items()
                    if registry.methods.canonical(name) == spec.method
                    for p in values
                )
                cells[key] = Cell(
                    spec.method,
                    spec.dataset,
                    spec.backbone,
                    spec.params,
                    fixed,
                    spec.k_factor,
                    spec.train_on,
                )
        return list(cells.values())

    @property
    def store(self):
        """The result store of the records (runs and studies)."""
        return self.sweep.store

    def planned(self) -> list[Study]:
        """The studies to run, their spaces not yet made concrete (for ``--dry-run``; the
        record path and id are known)."""
        return [self._study(cell, objective, None) for cell, objective in self._pairs()]

    def _pairs(self) -> list[tuple[Cell, Objective]]:
        return [
            (cell, objective)
            for cell in self.cells
            if cell.untuned_reason() is None
            for objective in self.objectives
        ]

    def untuned(self) -> list[tuple[Cell, str]]:
        """The cells that get no study, with why."""
        return [(c, r) for c in self.cells if (r := c.untuned_reason()) is not None]

    def _study(self, cell: Cell, objective: Objective, space: StudySpace | None) -> Study:
        return Study(
            method=cell.method,
            dataset=cell.dataset,
            backbone=cell.backbone,
            objective=objective,
            budget=self.config.budget,
            space=space,
            declared=cell.declared_space(),
            base_params=cell.base_params,
            selection_seeds=self.selection_seeds,
            search=self.search_settings,
            k_factor=cell.k_factor,
            train_on=cell.train_on,
        )

    @functools.cached_property
    def executor(self) -> Executor:
        """The executor the searches and the evaluation run with (the config's)."""
        return self.sweep.executor_of(self.sweep.config.executor)

    def check(self) -> None:
        """Everything the searches need before the first trial (results and cache writable,
        datasets, features extracted, the executor able to take the runs); UserError
        otherwise."""
        proxies = [s for s in self.sweep.specs if s.seed == self.selection_seeds[0]]
        self.sweep.check_inputs(proxies, self.executor)

    def studies(self) -> list[Study]:
        """The studies with their concrete spaces (the run's number of train images and of
        clusters resolve ``Scaled`` ranges; features are read from the cache)."""
        from laicbench.run.runner import load_run_features

        out = []
        for cell, objective in self._pairs():
            spec = RunSpec(
                cell.method,
                cell.dataset,
                cell.backbone,
                self.selection_seeds[0],
                cell.base_params,
                cell.k_factor,
                cell.train_on,
            )
            device = cell.method_cls.resources.device_for(self.sweep.device)
            data, n_classes = load_run_features(spec, device, self.sweep.settings)
            space = resolve_space(
                cell.method_cls,
                set(cell.fixed),
                cell.dataset,
                len(data.labels_train),
                n_classes * cell.k_factor,
            )
            out.append(self._study(cell, objective, space))
        return out

    def search(self, on_trial: OnTrial = lambda study, trial: None) -> list[StudyResult]:
        """Run every study's search (one after another, each batch of trials in parallel on
        Ray), writing each study record as trials end. Returns the finished studies."""
        return [self._search(study, on_trial) for study in self.studies()]

    def _search(self, study: Study, on_trial: OnTrial) -> StudyResult:
        from laicbench.tune.search import local_search, ray_search

        path = study.record_path(self.store.root)
        previous = read_study_record(path)
        known = known_values(previous)
        started = (previous or {}).get("started_at") or now()
        trials: list[Trial] = []

        def record(trial: Trial) -> None:
            trials.append(trial)
            self._write(study, path, trials, started, done=False)
            on_trial(study, trial)

        if self.executor.name == "ray":
            from laicbench.run.executors import Batch

            batch = Batch(self.sweep.specs, self.store, self.sweep.settings)
            found = ray_search(
                study,
                self.executor.cluster_gpus(batch),
                self.store,
                self.sweep.settings,
                self.executor.include_paths,
                known,
                record,
            )
        else:

            def evaluate(number: int, sampled: dict[str, Any]) -> Trial:
                store, settings = self.store, self.sweep.settings
                device = self.sweep.device
                return evaluate_trial(study, number, sampled, store, device, settings, known)

            found = local_search(study, evaluate, record)
        self._write(study, path, found, started, done=True)
        return StudyResult(study, found, best_trial(study, found), path)

    def _write(
        self, study: Study, path: Path, trials: list[Trial], started: str, done: bool
    ) -> None:
        trials = sorted(trials, key=lambda t: t.number)
        best = best_trial(study, trials) if done else None
        write_study_record(
            path,
            {
                "study_id": study.study_id,
                **study.to_dict(),
                "status": "done" if done else "searching",
                "executor": self.executor.name,
                "optuna": _optuna_version(),
                "trials": [t.to_dict() for t in trials],
                "best": None if best is None else best.to_dict(),
                "evaluation": {
                    "seeds": self.evaluation_seeds,
                    "seeds_disjoint": not set(self.evaluation_seeds) & set(self.selection_seeds),
                    "params": None if best is None else best.params,
                    "default_params": study.base_params,
                },
                "started_at": started,
                "updated_at": now(),
            },
        )

    def evaluation_specs(self, studies: list[StudyResult]) -> list[RunSpec]:
        """The runs that score the tuning: every cell's default parameters and every study's
        chosen ones, with the evaluation seeds (each run once)."""
        specs: dict[str, RunSpec] = {}
        points = [(c, c.base_params) for c in self.cells]
        by_key = {(c.method, c.dataset, c.backbone): c for c in self.cells}
        for result in studies:
            if result.best is not None:
                s = result.study
                points.append((by_key[(s.method, s.dataset, s.backbone)], result.best.params))
        for cell, params in points:
            for seed in self.evaluation_seeds:
                spec = RunSpec(
                    cell.method,
                    cell.dataset,
                    cell.backbone,
                    seed,
                    params,
                    cell.k_factor,
                    cell.train_on,
                )
                specs.setdefault(spec.run_id, spec)
        return list(specs.values())

    def evaluation_sweep(self, studies: list[StudyResult]) -> Sweep:
        """The Sweep of ``evaluation_specs``."""
        return Sweep(self.config.sweep, specs=self.evaluation_specs(studies))


def _optuna_version() -> str:
    import optuna

    return optuna.__version__


def run_tuning(
    config: TuningConfig,
    on_trial: OnTrial = lambda study, trial: None,
    on_start: OnStart = lambda spec: None,
    on_done: OnDone = lambda spec, record: None,
) -> TuningResult:
    """Tune every method of `config` and evaluate default and chosen parameters; returns what
    was done. `on_trial(study, trial)` is called as each trial ends, `on_start`/`on_done` as
    each evaluation run starts and ends. UserError, before any run, for anything it cannot do;
    KeyboardInterrupt leaves every finished run and trial stored (run it again to resume)."""
    tuning = Tuning(config)
    tuning.check()
    studies = tuning.search(on_trial)
    evaluation = tuning.evaluation_sweep(studies)
    evaluation.check()
    result = evaluation.execute(on_start, on_done)
    return TuningResult(tuning.store.root, studies, tuning.untuned(), result)
