"""How long ``laicbench status`` and ``laicbench report`` take on many records (``laicbench bench
report``).

A results dir of N records is made from a few real runs: each method of the sweep runs once on
the demo for real, and its record and predictions are copied for every other seed (the metrics
of the copies are the real run's; what is measured is reading, checking and aggregating them).
Then ``status`` (every run's state, with today's input fingerprints) and ``report`` (tables and
figures) are timed on that folder, in this process.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from laicbench.run.config import SweepConfig
from laicbench.run.records import RunRecord

BENCH_METHODS = ("clip-kmeans", "tac-notrain", "ours-notrain", "spectral", "gradnorm-notrain")
DATASET = "demo"


def write_copies(config: SweepConfig) -> int:
    """Run the first seed of every method of `config` for real, then store a copy of its record
    and predictions for each of its other seeds; returns the number of records written."""
    from laicbench.run.plan import expand
    from laicbench.run.records import ResultStore
    from laicbench.run.runner import execute_run

    store = ResultStore(config.results_dir)
    firsts: dict[str, tuple[dict[str, Any], bytes]] = {}
    specs = expand(config)
    for spec in specs:
        if spec.method not in firsts:
            record = execute_run(spec, store, "cpu")
            if not record.ok:
                raise RuntimeError(f"bench run {spec.run_id} failed: {record.error}")
            firsts[spec.method] = (record.to_dict(), store.predictions_path(spec).read_bytes())
            continue
        data, predictions = firsts[spec.method]
        copy = RunRecord.from_dict(json.loads(json.dumps(data)))
        copy.run_id, copy.spec, copy.seed = spec.run_id, spec.to_dict(), spec.seed
        copy.predictions = {**(copy.predictions or {}), "file": store.predictions_path(spec).name}
        path = store.record_path(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        store.predictions_path(spec).write_bytes(predictions)
        path.write_text(copy.to_json())
    return len(specs)


def bench_report(records: int = 5_000, cells: int = 1) -> dict[str, Any]:
    """Time ``status`` and ``report`` on `records` records spread over `cells` methods of the
    demo (at most len(BENCH_METHODS); records / cells seeds each). Returns the sizes and
    seconds: making the records, the status count and the report."""
    from laicbench.report.build import build_report
    from laicbench.run.sweep import Sweep

    if not 1 <= cells <= len(BENCH_METHODS):
        raise ValueError(f"cells must be 1 to {len(BENCH_METHODS)}")
    seeds = max(1, records // cells)
    tmp = Path(tempfile.mkdtemp(prefix="laicbench-bench-report-"))
    try:
        config = SweepConfig(
            methods=list(BENCH_METHODS[:cells]),
            datasets=[DATASET],
            seeds=f"0-{seeds - 1}",
            results_dir=str(tmp / "runs"),
            executor="local",
        )
        t = time.perf_counter()
        written = write_copies(config)
        make_s = time.perf_counter() - t
        t = time.perf_counter()
        states: dict[str, int] = {}
        for _, state, _ in Sweep(config).states():
            states[state] = states.get(state, 0) + 1
        status_s = time.perf_counter() - t
        t = time.perf_counter()
        report = build_report(tmp / "runs", out=tmp / "report", reference=False)
        report_s = time.perf_counter() - t
        return {
            "records": written,
            "cells": cells,
            "seeds_per_cell": seeds,
            "make_records_s": make_s,
            "status_s": status_s,
            "status_states": states,
            "report_s": report_s,
            "report_runs": len(report.runs),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
