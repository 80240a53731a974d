"""Run a sweep on Ray Tune: one trial per run, resources from each method's declared request.

The trials write the laicbench records themselves (absolute paths); the records stay the source
of truth, so an interrupted sweep resumes the same way as with the in-process executor. Tune's
own files live under ``<results dir>/_ray``. Features are extracted by the driver before the
trials start, so trials only read the cache.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from laicbench.api import registry
from laicbench.api.errors import UserError
from laicbench.api.settings import DataSettings
from laicbench.run.records import ResultStore
from laicbench.run.spec import RunSpec

RAY_SUBDIR = "_ray"
# laicbench draws its own progress bar; Tune's console reporters would interleave with it
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# Ctrl-C raises KeyboardInterrupt in the driver (the sweep stops like the local executor does)
# instead of Tune's graceful stop, which returns half-empty results
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")


def start_ray(address: str | None, num_cpus: int | None, num_gpus: int | None) -> dict[str, float]:
    """Connect to a cluster (`address`) or start a local Ray; return the cluster's resources."""
    import ray

    if address and (num_cpus is not None or num_gpus is not None):
        raise UserError("--num-cpus/--num-gpus apply to a local Ray, not with --address")
    if (num_cpus is not None and num_cpus < 1) or (num_gpus is not None and num_gpus < 0):
        raise UserError("--num-cpus must be at least 1 and --num-gpus at least 0")
    if not ray.is_initialized():
        try:
            ray.init(
                address=address,
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                include_dashboard=False,
                logging_level="ERROR",
                log_to_driver=False,
                runtime_env={"worker_process_setup_hook": f"{__name__}.prepare_worker"},
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise UserError(f"cannot start or reach {where}: {exc}") from exc
    return ray.cluster_resources()


def prepare_worker() -> None:
    """Import what a trial needs (torch, the runner) as soon as a Ray worker process starts.

    Ray starts the trial processes while Tune is still setting up in the driver; importing here
    overlaps the two instead of paying the imports after the trial begins (Tune start-up on
    2 cores: 5.0 s -> 3.3-3.8 s). Ray sets OMP_NUM_THREADS per task, after this hook, so the
    thread pools are capped here (one thread per pool, as Ray's default for a 1-CPU task) and
    each trial sizes torch's pool to its CPU share; otherwise every trial would start one
    thread per core and concurrent trials would oversubscribe the CPUs.
    """
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    import laicbench.run.runner  # noqa: F401


def check_requests_fit(methods: set[str], cluster_gpus: float) -> None:
    """UserError when a trial of one of `methods` asks for more CPUs or GPUs than any live node
    of the cluster has: Tune would wait for it forever."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    for method in sorted(methods):
        request = trial_resources(method, cluster_gpus)
        if not any(
            node.get("CPU", 0.0) >= request["CPU"] and node.get("GPU", 0.0) >= request["GPU"]
            for node in nodes
        ):
            largest = max(nodes, key=lambda n: n.get("CPU", 0.0), default={})
            raise UserError(
                f"method {method!r} asks for {request['CPU']:g} CPU and {request['GPU']:g} GPU "
                f"per run, but no Ray node has that much (the largest has "
                f"{largest.get('CPU', 0.0):g} CPU, {largest.get('GPU', 0.0):g} GPU); give Ray "
                "more (--num-cpus/--num-gpus, or nodes with more) or use --executor local"
            )


def trial_resources(method: str, cluster_gpus: float) -> dict[str, float]:
    """The CPU/GPU request of one run of `method`; GPU requests become 0 on a GPU-less cluster."""
    request = registry.methods.get(method).resources
    return {"CPU": float(request.cpus), "GPU": float(request.gpus) if cluster_gpus > 0 else 0.0}


def check_shared_storage(paths: list[Path]) -> None:
    """On a multi-node cluster, every node must see `paths` (results and cache dirs)."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) <= 1:
        return
    token = uuid.uuid4().hex
    markers = []
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)
        marker = path / f".laicbench-visible-{token}"
        marker.write_text(token)
        markers.append(str(marker))

    @ray.remote(num_cpus=0)
    def visible(files: list[str]) -> tuple[str, list[str]]:
        import socket

        return socket.gethostname(), [f for f in files if not os.path.exists(f)]

    try:
        tasks = [
            visible.options(
                scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                    n["NodeID"], soft=False
                )
            ).remote(markers)
            for n in nodes
        ]
        for host, missing in ray.get(tasks, timeout=120):
            if missing:
                folder = Path(missing[0]).parent
                raise UserError(
                    f"{folder} is not visible from Ray node {host}: put the results dir and the "
                    "feature cache (--results-dir, --cache-dir) on storage every node mounts"
                )
    finally:
        for marker in markers:
            Path(marker).unlink(missing_ok=True)


def _trial(config: dict[str, Any]) -> None:
    """One Tune trial: execute the run and let it write its record."""
    import ray
    from ray import tune

    from laicbench.run.runner import execute_run

    for folder in config["include_paths"]:
        registry.load_plugin_folder(folder)
    spec = RunSpec(**config["spec"])
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    record = execute_run(
        spec, ResultStore(config["results_dir"]), device, DataSettings(**config["settings"])
    )
    metrics = record.get("metrics") or {}
    tune.report({"status_ok": record["status"] == "ok", **metrics})


def prepare_cluster(
    specs: list[RunSpec],
    store: ResultStore,
    settings: DataSettings,
    address: str | None,
    num_cpus: int | None,
    num_gpus: int | None,
    device: str,
) -> float:
    """Start or reach Ray and check that `specs` can run there (shared storage on several
    nodes, GPUs for ``--device cuda``, every trial's request fits a node); UserError otherwise.
    Returns the GPUs that trials may ask for (0 with ``--device cpu`` or none in the cluster).
    Idempotent: ``run_ray`` calls it again."""
    resources = start_ray(address, num_cpus, num_gpus)
    if address:
        check_shared_storage(
            [store.root] + ([Path(settings.cache_dir)] if settings.cache_dir else [])
        )
    gpus = 0.0 if device == "cpu" else resources.get("GPU", 0.0)
    if device.startswith("cuda") and not gpus:
        raise UserError(f"--device {device}: the Ray cluster has no GPU; use --device cpu or auto")
    check_requests_fit({spec.method for spec in specs}, gpus)
    return gpus


def run_ray(
    specs: list[RunSpec],
    store: ResultStore,
    settings: DataSettings,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    include_paths: tuple[str, ...] = (),
    device: str = "auto",
    on_done: Callable[[RunSpec, dict[str, Any]], None] = lambda spec, record: None,
) -> list[tuple[RunSpec, dict[str, Any]]]:
    """Execute `specs` as Tune trials; return (spec, record) pairs, read back from the store.

    `device` is the sweep's request: ``cpu`` keeps every trial off the cluster's GPUs, ``auto``
    gives methods that ask for a GPU share one where the cluster has GPUs, ``cuda[:N]`` requires
    the cluster to have GPUs (Ray picks which).

    A trial that dies without writing a record (killed for memory, a crashed worker) gets an
    error or oom record written here from Tune's error.
    """
    from ray import tune

    gpus = prepare_cluster(specs, store, settings, address, num_cpus, num_gpus, device)
    trainable = tune.with_resources(
        _trial,
        lambda config: tune.PlacementGroupFactory(
            [trial_resources(config["spec"]["method"], gpus)]
        ),
    )
    tuner = tune.Tuner(
        trainable,
        param_space={
            "spec": tune.grid_search([spec.to_dict() for spec in specs]),
            "results_dir": str(store.root),
            "settings": settings.to_dict(),
            "include_paths": [str(Path(p).absolute()) for p in include_paths],
        },
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(
            name=f"sweep-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(store.root / RAY_SUBDIR),
            verbose=0,
            # a trial whose worker or node died is retried once (elsewhere, if its node is gone);
            # a method's own exception never fails a trial: it becomes an error record
            failure_config=tune.FailureConfig(max_failures=1, fail_fast=False),
        ),
    )
    watcher = _RecordWatcher(specs, store, on_done)
    watcher.start()
    try:
        grid = tuner.fit()
    finally:
        watcher.stop()
    for result in grid:
        spec = RunSpec(**result.config["spec"])
        if result.error is not None and not watcher.is_fresh(spec):
            store.write(spec, _lost_trial_record(spec, result.error))
    watcher.poll()
    return watcher.results


class _RecordWatcher:
    """Reports runs as their records appear (the trials write them), from a driver thread."""

    def __init__(self, specs: list[RunSpec], store: ResultStore, on_done):
        self.pending = {spec.run_id: spec for spec in specs}
        self.store = store
        self.on_done = on_done
        self.results: list[tuple[RunSpec, dict[str, Any]]] = []
        self.started = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._lock = threading.Lock()

    def is_fresh(self, spec: RunSpec) -> bool:
        """Whether `spec` has a record written during this sweep."""
        path = self.store.record_path(spec)
        return path.exists() and path.stat().st_mtime >= self.started - 1

    def poll(self) -> None:
        """Report every pending run whose fresh record now exists."""
        with self._lock:
            for run_id, spec in list(self.pending.items()):
                record = self.store.read(spec) if self.is_fresh(spec) else None
                if record is not None:
                    del self.pending[run_id]
                    self.results.append((spec, record))
                    self.on_done(spec, record)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.poll()

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        self._thread.join()


def _lost_trial_record(spec: RunSpec, error: BaseException) -> dict[str, Any]:
    """The record of a trial that ended without writing one (its worker died)."""
    from datetime import datetime, timezone

    from laicbench.run.records import SCHEMA_VERSION

    text = "".join(traceback.format_exception(error)) or "the trial ended without a record"
    lowered = text.lower()
    oom = "outofmemoryerror" in lowered or ("memory" in lowered and "kill" in lowered)
    method = registry.methods.get(spec.method)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": spec.run_id,
        "status": "oom" if oom else "error",
        "spec": spec.to_dict(),
        "method": {
            "name": spec.method,
            "version": method.version,
            "params": spec.params,
            "oracle": method.oracle,
        },
        "dataset": {"name": spec.dataset},
        "backbone": spec.backbone,
        "seed": spec.seed,
        "metrics": None,
        "error": {
            "type": type(error).__name__,
            "message": text.strip().splitlines()[-1] if text.strip() else text,
            "traceback": text,
        },
        "finished_at": datetime.now(timezone.utc).isoformat(),
    }
