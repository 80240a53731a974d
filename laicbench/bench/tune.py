"""What a tuning search costs beyond its runs (``laicbench bench tune``).

A budget-N tune (default 20 trials of clip-kmeans and of tac-notrain on demo-50, one selection
seed) runs on a freshly started local Ray, then the very runs its trials made run again as a
plain sweep (``laicbench run``'s Ray executor, on the same Ray); then the same tune and the same
runs in-process. The difference per trial is the search's overhead: Tune's trials, one Tune
experiment per study, the batches' waits, Optuna's proposals and the objective (silhouette by
default: read from the record, so nearly free). Each repeat starts from empty results dirs.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from laicbench.run.executors import Batch
from laicbench.run.records import ResultStore
from laicbench.run.spec import RunSpec

DATASET = "demo-50"
METHODS = ("clip-kmeans", "tac-notrain")


def _tune(
    executor: str, results: Path, budget: int, methods: tuple[str, ...], dataset: str,
    objective: str, cpus: int | None,
) -> tuple[float, float, list]:  # fmt: skip
    """(seconds to check and start, seconds of the searches, their StudyResults) of one tune."""
    from laicbench.run.config import SweepConfig
    from laicbench.tune.tuning import Tuning, TuningConfig

    sweep = SweepConfig(
        methods=list(methods),
        datasets=[dataset],
        results_dir=str(results),
        executor=executor,
        device="cpu",
        num_cpus=cpus if executor == "ray" else None,
    )
    tuning = Tuning(TuningConfig(sweep, budget=budget, objectives=[objective]))
    t = time.perf_counter()
    tuning.check()  # features, and on Ray: Ray started
    start_s = time.perf_counter() - t
    t = time.perf_counter()
    studies = tuning.search()
    return start_s, time.perf_counter() - t, studies


def _trial_specs(studies: list) -> list[RunSpec]:
    specs = {
        spec.run_id: spec
        for result in studies
        for trial in result.trials
        for spec in result.study.specs(trial.params, result.study.selection_seeds)
    }
    return list(specs.values())


def _run(executor, specs: list[RunSpec], results: Path) -> float:
    from laicbench.api.settings import DataSettings

    t = time.perf_counter()
    executor.run(
        Batch(specs, ResultStore(results), DataSettings()), lambda s: None, lambda s, r: None
    )
    return time.perf_counter() - t


def _choices(studies: list) -> list:
    return [(r.study.method, r.best.sampled if r.best else None) for r in studies]


def _one_comparison(
    budget: int, methods: tuple[str, ...], dataset: str, objective: str, cpus: int | None
) -> dict[str, Any]:
    import ray

    from laicbench.run.executors.local import LocalExecutor
    from laicbench.run.executors.ray import RayExecutor

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        try:
            ray_start_s, tune_ray_s, on_ray = _tune(
                "ray", root / "tune-ray", budget, methods, dataset, objective, cpus
            )
            specs = _trial_specs(on_ray)
            run_ray_s = _run(RayExecutor("cpu"), specs, root / "run-ray")
        finally:
            ray.shutdown()
        _, tune_local_s, in_process = _tune(
            "local", root / "tune-local", budget, methods, dataset, objective, None
        )
        run_local_s = _run(LocalExecutor("cpu"), specs, root / "run-local")
    trials = sum(len(r.trials) for r in on_ray)
    return {
        "trials": trials,
        "runs": len(specs),
        "ray_start_s": ray_start_s,
        "tune_ray_s": tune_ray_s,
        "run_ray_s": run_ray_s,
        "tune_local_s": tune_local_s,
        "run_local_s": run_local_s,
        "ray_overhead_per_trial_s": (tune_ray_s - run_ray_s) / trials,
        "ray_overhead_per_trial_vs_local_run_s": (tune_ray_s - run_local_s) / trials,
        "local_overhead_per_trial_s": (tune_local_s - run_local_s) / trials,
        "same_choice": _choices(on_ray) == _choices(in_process),
    }


def bench_tune(
    budget: int = 20,
    methods: tuple[str, ...] = METHODS,
    dataset: str = DATASET,
    objective: str = "silhouette",
    cpus: int | None = None,
    repeats: int = 1,
) -> dict[str, Any]:
    """Time `repeats` comparisons of a budget-`budget` tune of `methods` on `dataset` with the
    plain runs of the same configurations (see the module). Returns the settings, every
    repeat's figures (``repeats``) and the median of each (``median``)."""
    results = [_one_comparison(budget, methods, dataset, objective, cpus) for _ in range(repeats)]
    median = {
        key: statistics.median(r[key] for r in results)
        for key in results[0]
        if key != "same_choice"
    }
    median["same_choice"] = all(r["same_choice"] for r in results)
    return {
        "budget": budget,
        "methods": list(methods),
        "dataset": dataset,
        "objective": objective,
        "cpus": cpus,
        "repeats": results,
        "median": median,
    }
