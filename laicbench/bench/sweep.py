"""Local executor vs Ray on this machine (``laicbench bench sweep``).

N CPU-bound demo runs (clip-kmeans on demo-50 with n_init calibrated so that one run takes the
requested seconds) are executed in-process, one after another, and then as Ray Tune trials on a
freshly started local Ray (its start-up is reported apart, and once more counted in); the pair is
repeated and medians reported. Ray's per-trial overhead is the
wall time Ray needs beyond the runs' own time spread over the available CPUs, per trial: once in
all, and once without Tune's fixed start-up (the time until the first trial starts).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import datetime
from typing import Any

from laicbench.api.settings import DataSettings
from laicbench.run.records import ResultStore
from laicbench.run.spec import RunSpec

DATASET = "demo-50"


def _specs(n_runs: int, n_init: int) -> list[RunSpec]:
    from laicbench.api import registry

    params = registry.methods.get("clip-kmeans").from_params({"n_init": n_init}).get_params()
    return [RunSpec("clip-kmeans", DATASET, "tiny-random", seed, params) for seed in range(n_runs)]


def calibrate(seconds: float) -> int:
    """The n_init that makes one clip-kmeans run on demo-50 take about `seconds` (1 thread)."""
    import torch

    from laicbench.run.runner import execute_run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    n_init = 10
    try:
        for _ in range(2):  # a first guess, then one correction at the guessed size
            with tempfile.TemporaryDirectory() as tmp:
                record = execute_run(_specs(1, n_init)[0], ResultStore(tmp), "cpu")
            n_init = max(10, round(n_init * seconds / record.wall_time_s))
    finally:
        torch.set_num_threads(threads)
    return n_init


def _quiet():
    """on_start and on_done callbacks that do nothing."""
    return (lambda spec: None, lambda spec, record: None)


def _one_comparison(specs: list[RunSpec], cpus: int) -> dict[str, Any]:
    """Wall times of `specs` with the local executor, then on a freshly started local Ray."""
    import ray

    from laicbench.run.executors import Batch
    from laicbench.run.executors.local import LocalExecutor
    from laicbench.run.executors.ray import RayExecutor, start_ray

    settings = DataSettings()
    with tempfile.TemporaryDirectory() as local_dir, tempfile.TemporaryDirectory() as ray_dir:
        t = time.perf_counter()
        local = LocalExecutor("cpu").run(Batch(specs, ResultStore(local_dir), settings), *_quiet())
        local_s = time.perf_counter() - t
        t = time.perf_counter()
        start_ray(None, cpus, 0)
        ray_start_s = time.perf_counter() - t
        try:
            t, t_epoch = time.perf_counter(), time.time()
            on_ray = RayExecutor("cpu").run(Batch(specs, ResultStore(ray_dir), settings), *_quiet())
            ray_s = time.perf_counter() - t
        finally:
            ray.shutdown()  # the next repeat starts from a cold Ray, as a user's run does
    n_runs = len(specs)
    first_start = min(datetime.fromisoformat(r.started_at).timestamp() for _, r in on_ray)
    tune_start_s = first_start - t_epoch
    local_run_s = sum(r.wall_time_s for _, r in local)
    ray_run_s = sum(r.wall_time_s for _, r in on_ray)
    same = sorted((s.run_id, r.metrics) for s, r in local) == sorted(
        (s.run_id, r.metrics) for s, r in on_ray
    )
    return {
        "local_wall_s": local_s,
        "local_mean_run_s": local_run_s / n_runs,
        "ray_start_s": ray_start_s,
        "ray_wall_s": ray_s,
        "ray_mean_run_s": ray_run_s / n_runs,
        "speedup": local_s / ray_s,
        "speedup_with_ray_start": local_s / (ray_start_s + ray_s),
        "tune_start_s": tune_start_s,
        "ray_overhead_per_trial_s": max(0.0, ray_s * cpus - ray_run_s) / n_runs,
        "ray_overhead_per_trial_after_start_s": max(0.0, (ray_s - tune_start_s) * cpus - ray_run_s)
        / n_runs,
        "same_metrics": same,
    }


def bench_sweep(
    n_runs: int = 8, seconds: float = 5.0, cpus: int | None = None, repeats: int = 3
) -> dict[str, Any]:
    """Compare the same `n_runs` runs with the local executor and with Ray, `repeats` times.

    Returns the settings, every repeat's figures (``repeats``) and, per figure, the median over
    the repeats (``median``): single measurements on a shared 2-core machine vary by 5-10%.
    """
    cpus = cpus or os.cpu_count() or 1
    n_init = calibrate(seconds)
    specs = _specs(n_runs, n_init)
    results = [_one_comparison(specs, cpus) for _ in range(repeats)]
    median = {
        key: statistics.median(r[key] for r in results)
        for key in results[0]
        if key != "same_metrics"
    }
    median["same_metrics"] = all(r["same_metrics"] for r in results)
    return {"runs": n_runs, "cpus": cpus, "n_init": n_init, "repeats": results, "median": median}
