"""The in-process executor: one run after another, for debugging and small sweeps."""

from __future__ import annotations

from laicbench.run.executors import Batch, Executor, OnDone, OnStart
from laicbench.run.records import RunRecord
from laicbench.run.spec import RunSpec


class LocalExecutor(Executor):
    """Runs in this process, in order, on one resolved device (cpu, cuda[:N])."""

    name = "local"

    def __init__(self, device: str):
        self.device = device

    def run(
        self, batch: Batch, on_start: OnStart, on_done: OnDone
    ) -> list[tuple[RunSpec, RunRecord]]:
        """Execute the runs one after another (see Executor.run)."""
        from laicbench.run.runner import execute_run

        results = []
        for spec in batch.specs:
            on_start(spec)
            record = execute_run(
                spec, batch.store, self.device, batch.settings, timeout=batch.run_timeout
            )
            results.append((spec, record))
            on_done(spec, record)
        return results
