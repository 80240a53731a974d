"""One study: the search of one method's space on one (dataset, backbone) for one objective, its
trials (each an ordinary run per selection seed, with its record) and its study record.

A trial's runs are ordinary runs: a run whose up-to-date record exists is not run again (the
objective is read from the study record when its predictions are the same, else computed from
them), so an interrupted study, started again, replays its search (the samplers are seeded, so
they propose the same parameters) and runs only what is missing.

The study record, ``<results dir>/_tune/<method>/<dataset>/<backbone>/<objective>-<id>.json``,
says how the search was made (space, objective, sampler, seeds, budget), every trial and its
value, the chosen parameters and the evaluation seeds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from laicbench.api import registry
from laicbench.api.settings import DataSettings
from laicbench.files import atomic_write_bytes, canonical_json, short_hash
from laicbench.run.records import ResultStore, RunRecord
from laicbench.run.spec import RunSpec, path_part
from laicbench.tune.objectives import Objective, get_objective
from laicbench.tune.space import StudySpace

TUNE_SUBDIR = "_tune"
STUDY_KIND = "laicbench tuning study"
STUDY_VERSION = 1
SEARCH_ALGORITHMS = ("tpe", "random")
DEFAULT_BUDGET = 20
DEFAULT_SELECTION_SEEDS = "1000"  # disjoint from the evaluation seeds 0-2 of laicbench run
DEFAULT_BATCH = 4


@dataclass(frozen=True)
class SearchSettings:
    """How a study searches: ``tpe`` (Optuna's TPESampler) or ``random`` (Optuna's
    RandomSampler), seeded with `seed`; `batch` trials are proposed together and the next ones
    only once all have finished, so the choices do not depend on timing or the executor."""

    algorithm: str = "tpe"
    seed: int = 0
    batch: int = DEFAULT_BATCH

    def sampler(self):
        """A new Optuna sampler of these settings."""
        import optuna

        if self.algorithm == "random":
            return optuna.samplers.RandomSampler(seed=self.seed)
        return optuna.samplers.TPESampler(seed=self.seed)


@dataclass
class Study:
    """The search of `method` on (`dataset`, `backbone`) for `objective`: `budget` trials over
    `space` (None while planning, before features make a ``Scaled`` range concrete; `declared`
    is the space in words), each run with every selection seed; `base_params` are the method's
    parameters outside the space (defaults, or fixed by the user)."""

    method: str
    dataset: str
    backbone: str
    objective: Objective
    budget: int
    space: StudySpace | None
    declared: dict[str, str]
    base_params: dict[str, Any]
    selection_seeds: list[int]
    search: SearchSettings
    k_factor: int = 1
    train_on: str | None = None

    @property
    def study_id(self) -> str:
        """A hash of what the search is (not of the evaluation seeds, which come after it): the
        same command finds its study again."""
        return short_hash(
            {
                "method": self.method,
                "dataset": self.dataset,
                "backbone": self.backbone,
                "objective": self.objective.name,
                "budget": self.budget,
                "space": self.declared,
                "base_params": self.base_params,
                "selection_seeds": self.selection_seeds,
                "search": asdict(self.search),
                "k_factor": self.k_factor,
                "train_on": self.train_on,
            }
        )

    def record_path(self, root: Path) -> Path:
        """Where the study record lives below the results dir `root`."""
        return (
            root
            / TUNE_SUBDIR
            / self.method
            / path_part(self.dataset)
            / path_part(self.backbone)
            / f"{self.objective.name}-{self.study_id}.json"
        )

    def run_params(self, sampled: dict[str, Any]) -> dict[str, Any]:
        """The full parameters of a trial that sampled `sampled`: the base parameters with the
        sampled values, except that the default point is the default parameters themselves (so
        that the default trial is the default run)."""
        if self.space.default_point is not None and canonical_json(sampled) == canonical_json(
            self.space.default_point
        ):
            return dict(self.base_params)
        cls = registry.methods.get(self.method)
        return cls.from_params({**self.base_params, **sampled}).get_params()

    def specs(self, params: dict[str, Any], seeds: list[int]) -> list[RunSpec]:
        """The runs of `params` with `seeds`."""
        return [
            RunSpec(
                self.method,
                self.dataset,
                self.backbone,
                seed,
                params,
                self.k_factor,
                self.train_on,
            )
            for seed in seeds
        ]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the study record's head, and a Ray trial's config)."""
        return {
            "method": self.method,
            "dataset": self.dataset,
            "backbone": self.backbone,
            "k_factor": self.k_factor,
            "train_on": self.train_on,
            "objective": asdict(self.objective),
            "budget": self.budget,
            "space": self.space.to_dict(),
            "declared_space": self.declared,
            "base_params": self.base_params,
            "selection_seeds": self.selection_seeds,
            "search": asdict(self.search),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Study:
        """The Study of ``to_dict``'s form."""
        from laicbench.api.params import Choice, FloatRange, IntRange

        dims = {}
        for name, dim in data["space"]["dims"].items():
            if dim["kind"] == "choice":
                dims[name] = Choice(tuple(dim["values"]))
            else:
                kind = IntRange if dim["kind"] == "int" else FloatRange
                dims[name] = kind(dim["low"], dim["high"], dim["log"])
        return cls(
            method=data["method"],
            dataset=data["dataset"],
            backbone=data["backbone"],
            objective=get_objective(data["objective"]["name"]),
            budget=int(data["budget"]),
            space=StudySpace(dims, data["space"]["default_point"]),
            declared=dict(data["declared_space"]),
            base_params=dict(data["base_params"]),
            selection_seeds=[int(s) for s in data["selection_seeds"]],
            search=SearchSettings(**data["search"]),
            k_factor=int(data.get("k_factor", 1)),
            train_on=data.get("train_on"),
        )


@dataclass
class TrialRun:
    """One run of a trial: its id, seed, objective value (None: failed or undefined), the
    checksum of the predictions it was computed from, and whether it was run now."""

    run_id: str
    seed: int
    value: float | None
    predictions_sha256: str | None = None
    executed: bool = False


@dataclass
class Trial:
    """One trial: its number (the order Optuna proposed it in), the sampled values, the run
    parameters, its runs and its value (the mean over the selection seeds; None when a run
    failed or the objective is undefined for one)."""

    number: int
    sampled: dict[str, Any]
    params: dict[str, Any]
    runs: list[TrialRun] = field(default_factory=list)

    @property
    def value(self) -> float | None:
        """The mean objective over the trial's runs, or None."""
        values = [r.value for r in self.runs]
        if not values or any(v is None for v in values):
            return None
        return float(np.mean(values))

    @property
    def executed(self) -> int:
        """How many of the trial's runs were run now (not found stored)."""
        return sum(r.executed for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in the study record."""
        return {
            "number": self.number,
            "sampled": self.sampled,
            "params": self.params,
            "value": self.value,
            "runs": [asdict(r) for r in self.runs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trial:
        """The Trial of ``to_dict``'s form."""
        runs = [TrialRun(**r) for r in data.get("runs", [])]
        return cls(int(data["number"]), dict(data["sampled"]), dict(data["params"]), runs)


Known = dict[str, tuple[str | None, float | None]]  # run id -> (predictions sha256, value)


def evaluate_trial(
    study: Study,
    number: int,
    sampled: dict[str, Any],
    store: ResultStore,
    device: str,
    settings: DataSettings,
    known: Known,
    on_run: Callable[[RunSpec, RunRecord], None] | None = None,
) -> Trial:
    """Run trial `number` of `study` (the parameters `sampled`) with every selection seed on
    `device`, skipping runs whose up-to-date record is stored, and compute its objective values
    (taken from `known` when the stored predictions are those it was computed from). Runs in
    the driver (local executor) or in a Ray trial; `on_run` is called after each run is run."""
    from laicbench.run.plan import InputFingerprints, stored_state
    from laicbench.run.runner import execute_run, load_dataset_features

    params = study.run_params(sampled)
    trial = Trial(number, dict(sampled), params)
    fingerprints = InputFingerprints(device, settings)
    method_device = registry.methods.get(study.method).resources.device_for(device)
    features: list[np.ndarray] = []

    def test_features() -> np.ndarray:
        if not features:
            data = load_dataset_features(study.dataset, study.backbone, method_device, settings)
            features.append(data.image_test)
        return features[0]

    for spec in study.specs(params, study.selection_seeds):
        state, _, record = stored_state(spec, store, fingerprints)
        executed = state != "done"
        if executed:
            record = execute_run(spec, store, device, settings)
            if on_run is not None:
                on_run(spec, record)
        sha = (record.predictions or {}).get("sha256")
        value = None
        if record.ok:
            cached = known.get(spec.run_id)
            if cached is not None and cached[0] == sha and not executed:
                value = cached[1]
            else:
                score = study.objective.value(record, store.record_path(spec), test_features)
                value = None if math.isnan(score) else score
        trial.runs.append(TrialRun(spec.run_id, spec.seed, value, sha, executed))
    return trial


def best_trial(study: Study, trials: list[Trial]) -> Trial | None:
    """The trial with the best value (the first proposed among equals), or None when none has
    a value."""
    best: Trial | None = None
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.value is not None and (
            best is None or study.objective.better(trial.value, best.value)
        ):
            best = trial
    return best


def known_values(record: dict[str, Any] | None) -> Known:
    """{run id: (predictions sha256, objective value)} of the trials of a study record."""
    out: Known = {}
    for trial in (record or {}).get("trials", []):
        for run in trial.get("runs", []):
            out[run["run_id"]] = (run.get("predictions_sha256"), run.get("value"))
    return out


def read_study_record(path: Path) -> dict[str, Any] | None:
    """The parsed study record at `path`, or None when absent or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("kind") == STUDY_KIND else None


def write_study_record(path: Path, record: dict[str, Any]) -> None:
    """Write the study record atomically (a reader never sees half of it)."""
    text = json.dumps({"kind": STUDY_KIND, "version": STUDY_VERSION, **record}, indent=2)
    atomic_write_bytes(path, (text + "\n").encode())
