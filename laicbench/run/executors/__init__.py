"""Executors: where and how the runs of a sweep execute.

``LocalExecutor`` runs them one after another in this process; ``RayExecutor`` runs them in
parallel as Ray Tune trials, on this machine or a cluster. Both call ``runner.execute_run`` for
every run, so their records are the same.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from laicbench.api.settings import DataSettings
from laicbench.run.records import ResultStore, RunRecord
from laicbench.run.spec import RunSpec

OnStart = Callable[[RunSpec], None]
OnDone = Callable[[RunSpec, RunRecord], None]


@dataclass
class Batch:
    """The runs an executor is given: their specs, the store their records go to, the data
    settings their features are read with and the time limit of each run in seconds (None: no
    limit; ``laicbench.run.timeout``)."""

    specs: list[RunSpec]
    store: ResultStore
    settings: DataSettings
    run_timeout: float | None = None


class Executor(ABC):
    """Executes the runs of a sweep and stores one record per run."""

    name: str

    def prepare(self, batch: Batch) -> None:
        """Check, before any run starts, that the runs of `batch` can run here; UserError
        otherwise."""
        del batch

    @abstractmethod
    def run(
        self, batch: Batch, on_start: OnStart, on_done: OnDone
    ) -> list[tuple[RunSpec, RunRecord]]:
        """Execute the runs of `batch`, each leaving its record in the batch's store; call
        `on_start` as a run starts and `on_done` with its record as it ends. Returns (spec,
        record) pairs, in the order the runs ended."""


def make_executor(
    kind: str,
    device: str,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    include_paths: tuple[str, ...] = (),
) -> Executor:
    """The executor `kind` ("local" or "ray"). `device` is the sweep's resolved device for the
    local executor and its request (auto, cpu, cuda[:N]) for Ray, whose trials get their GPU
    from the cluster."""
    if kind == "local":
        from laicbench.run.executors.local import LocalExecutor

        return LocalExecutor(device)
    from laicbench.run.executors.ray import RayExecutor

    return RayExecutor(device, address, num_cpus, num_gpus, include_paths)
