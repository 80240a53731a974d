"""The Ray executor: one Tune trial per run, resources from each method's declared request.

The trials write the laicbench records themselves (absolute paths); the records stay the source
of truth, so an interrupted sweep resumes the same way as with the in-process executor. The
driver follows the trials through a Tune callback (a trial reports its run id once its record is
stored). Tune's own files live under ``<results dir>/_ray``. Features are extracted by the driver
before the trials start, so trials only read the cache.
"""

from __future__ import annotations

import json
import os
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from laicbench.api import registry
from laicbench.api.errors import UserError
from laicbench.api.settings import DataSettings
from laicbench.run.executors import Batch, Executor, OnDone, OnStart
from laicbench.run.records import ResultStore, RunRecord, now
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
    overlaps the two instead of paying the imports after the trial begins (what it saves: the
    documentation's performance page). Ray sets OMP_NUM_THREADS per task, after this hook, so the
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


def check_plugins_import(include_paths: tuple[str, ...]) -> None:
    """UserError (one line) unless the plugin folders `include_paths`, which the driver has
    imported, import in a Ray worker process of every live node too (where the trials run): a
    library or a file only the driver sees would otherwise turn every trial into an error."""
    import ray

    if not include_paths:
        return

    @ray.remote(num_cpus=0)
    def import_plugins(folders: list[str]) -> tuple[str, str | None]:
        import socket

        try:
            for folder in folders:
                registry.load_plugin_folder(folder)
        except Exception as exc:  # noqa: BLE001 - reported to the driver in one line
            return socket.gethostname(), (str(exc) or repr(exc)).splitlines()[0]
        return socket.gethostname(), None

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    tasks = [
        import_plugins.options(
            scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                n["NodeID"], soft=False
            )
        ).remote(list(include_paths))
        for n in nodes
    ]
    for host, problem in ray.get(tasks, timeout=300):
        if problem:
            raise UserError(
                f"--include-path: the plugins import here but not in Ray's workers on {host}: "
                f"{problem}; make them importable there (the same files and libraries) or use "
                "--executor local"
            )


def _trial(config: dict[str, Any]) -> None:
    """One Tune trial: execute the run, let it write its record, report its status."""
    import ray
    from ray import tune

    from laicbench.run.runner import execute_run

    for folder in config["include_paths"]:
        registry.load_plugin_folder(folder)
    spec = RunSpec(**config["spec"])
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    record = execute_run(
        spec,
        ResultStore(config["results_dir"]),
        device,
        DataSettings(**config["settings"]),
        timeout=config.get("run_timeout"),
    )
    # the record itself: a failed rerun keeps the stored ok record, so the file is not the news
    tune.report({"run_id": spec.run_id, "record": record.to_json()})


def prepare_cluster(
    specs: list[RunSpec],
    store: ResultStore,
    settings: DataSettings,
    address: str | None,
    num_cpus: int | None,
    num_gpus: int | None,
    device: str,
    include_paths: tuple[str, ...] = (),
) -> float:
    """Start or reach Ray and check that `specs` can run there (shared storage on several
    nodes, GPUs for ``--device cuda``, every trial's request fits a node, the plugin folders
    `include_paths` import in the workers); UserError otherwise.
    Returns the GPUs that trials may ask for (0 with ``--device cpu`` or none in the cluster).
    Idempotent."""
    resources = start_ray(address, num_cpus, num_gpus)
    if address:
        check_shared_storage(
            [store.root] + ([Path(settings.cache_dir)] if settings.cache_dir else [])
        )
    gpus = 0.0 if device == "cpu" else resources.get("GPU", 0.0)
    if device.startswith("cuda") and not gpus:
        raise UserError(f"--device {device}: the Ray cluster has no GPU; use --device cpu or auto")
    check_requests_fit({spec.method for spec in specs}, gpus)
    check_plugins_import(include_paths)
    return gpus


def run_config(name: str, store: ResultStore, callback):
    """Tune's RunConfig for an experiment named `name` (a time stamp is added) whose files go
    under ``<results dir>/_ray``, followed by the driver's `callback`."""
    from ray import tune

    return tune.RunConfig(
        name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
        storage_path=str(store.root / RAY_SUBDIR),
        verbose=0,
        callbacks=[callback],
        # a trial whose worker or node died is retried once (elsewhere, if its node is gone); a
        # method's own exception never fails a trial: it becomes an error record
        failure_config=tune.FailureConfig(max_failures=1, fail_fast=False),
    )


class RayExecutor(Executor):
    """Runs as Ray Tune trials on a local Ray or the cluster at `address`.

    `device` is the sweep's request: ``cpu`` keeps every trial off the cluster's GPUs, ``auto``
    gives methods that ask for a GPU share one where the cluster has GPUs, ``cuda[:N]`` requires
    the cluster to have GPUs (Ray picks which). `include_paths` are plugin folders each trial
    imports.
    """

    name = "ray"

    def __init__(
        self,
        device: str = "auto",
        address: str | None = None,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        include_paths: tuple[str, ...] = (),
    ):
        self.device = device
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.include_paths = tuple(str(Path(p).absolute()) for p in include_paths)
        self._gpus: float | None = None  # what prepare_cluster found, once per sweep

    def cluster_gpus(self, batch: Batch) -> float:
        """The GPUs trials may ask for (``prepare_cluster``, once: Ray is started or reached and
        the runs of `batch` checked on the first call)."""
        if self._gpus is not None:
            return self._gpus
        self._gpus = prepare_cluster(
            batch.specs,
            batch.store,
            batch.settings,
            self.address,
            self.num_cpus,
            self.num_gpus,
            self.device,
            self.include_paths,
        )
        return self._gpus

    def prepare(self, batch: Batch) -> None:
        """Start or reach Ray and check that the runs fit it (see ``prepare_cluster``)."""
        if batch.specs:
            self.cluster_gpus(batch)

    def run(
        self, batch: Batch, on_start: OnStart, on_done: OnDone
    ) -> list[tuple[RunSpec, RunRecord]]:
        """Execute the runs as Tune trials (see Executor.run). A trial that dies without writing
        a record (killed for memory, a crashed worker) gets an error or oom record written here
        from Tune's error."""
        if not batch.specs:
            return []
        from ray import tune

        specs, store, settings = batch.specs, batch.store, batch.settings
        gpus = self.cluster_gpus(batch)
        trainable = tune.with_resources(
            _trial,
            lambda config: tune.PlacementGroupFactory(
                [trial_resources(config["spec"]["method"], gpus)]
            ),
        )
        progress = _Progress(store, on_start, on_done)
        tuner = tune.Tuner(
            trainable,
            param_space={
                "spec": tune.grid_search([spec.to_dict() for spec in specs]),
                "results_dir": str(store.root),
                "settings": settings.to_dict(),
                "include_paths": list(self.include_paths),
                "run_timeout": batch.run_timeout,
            },
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=run_config("sweep", store, progress.callback()),
        )
        for result in tuner.fit():
            spec = RunSpec(**result.config["spec"])
            if spec.run_id in progress.reported:
                continue
            # a trial that died (worker or node lost) without reporting its record
            error = result.error or RuntimeError("the trial ended without a record")
            record = lost_trial_record(spec, error)
            store.write_failure(spec, record)  # an ok record of an earlier run stays
            progress.done(spec, record)
        return progress.results


class _Progress:
    """The driver's view of the trials: calls `on_start` as a trial starts and `on_done` with
    the stored record as a trial reports it."""

    def __init__(self, store: ResultStore, on_start: OnStart, on_done: OnDone):
        self.store = store
        self.on_start = on_start
        self.on_done = on_done
        self.reported: set[str] = set()
        self.results: list[tuple[RunSpec, RunRecord]] = []

    def done(self, spec: RunSpec, record: RunRecord) -> None:
        """Count `spec` as finished with `record`."""
        self.reported.add(spec.run_id)
        self.results.append((spec, record))
        self.on_done(spec, record)

    def callback(self):
        """The Tune callback that feeds this progress (Tune calls it in the driver)."""
        from ray.tune import Callback

        class TrialProgress(Callback):
            # Tune pickles its run config (with the callbacks) into the experiment folder; the
            # driver's progress (display, locks) stays out of that copy
            def __init__(self, progress: _Progress):
                self.progress = progress

            def __getstate__(self):
                return {"progress": None}

            def on_trial_start(self, iteration, trials, trial, **info):
                self.progress.on_start(RunSpec(**trial.config["spec"]))

            def on_trial_result(self, iteration, trials, trial, result, **info):
                spec = RunSpec(**trial.config["spec"])
                if spec.run_id not in self.progress.reported and "record" in result:
                    record = RunRecord.from_dict(json.loads(result["record"]))
                    self.progress.done(spec, record)

        return TrialProgress(self)


def lost_trial_record(spec: RunSpec, error: BaseException) -> RunRecord:
    """The error (or oom) record of a trial that ended without writing one (its worker died)."""
    text = "".join(traceback.format_exception(error)) or "the trial ended without a record"
    lowered = text.lower()
    oom = "outofmemoryerror" in lowered or ("memory" in lowered and "kill" in lowered)
    record = RunRecord.start(spec, registry.methods.get(spec.method))
    record.fail(error, oom=oom, text=text, message=text.strip().splitlines()[-1])
    record.finished_at = now()
    return record
