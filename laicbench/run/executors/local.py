"""The in-process executor: one run after another, for debugging and small sweeps."""

from __future__ import annotations

from laicbench.api.settings import DataSettings
from laicbench.run.executors import Executor, OnDone, OnStart
from laicbench.run.records import ResultStore, RunRecord
from laicbench.run.spec import RunSpec


class LocalExecutor(Executor):
    """Runs in this process, in order, on one resolved device (cpu, cuda[:N])."""

    name = "local"

    def __init__(self, device: str):
        self.device = device

    def run(
        self,
        specs: list[RunSpec],
        store: ResultStore,
        settings: DataSettings,
        on_start: OnStart,
        on_done: OnDone,
    ) -> list[tuple[RunSpec, RunRecord]]:
        """Execute `specs` one after another (see Executor.run)."""
        from laicbench.run.runner import execute_run

        results = []
        for spec in specs:
            on_start(spec)
            record = execute_run(spec, store, self.device, settings)
            results.append((spec, record))
            on_done(spec, record)
        return results
