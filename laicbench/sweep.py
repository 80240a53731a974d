"""Expand a SweepConfig into runs, decide what to skip (resume), and run the rest in-process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from laicbench import registry
from laicbench.backbone import DEFAULT_BACKBONE
from laicbench.config import SweepConfig
from laicbench.dataset import BENCHMARKS, resolve_dataset
from laicbench.errors import UserError
from laicbench.records import ResultStore
from laicbench.runspec import RunSpec, parse_seeds
from laicbench.settings import DataSettings


def expand_methods(names: list[str]) -> list[str]:
    """Canonical method names; 'all' is every registered method in registry order."""
    out: list[str] = []
    for name in names:
        out.extend(
            registry.methods.names() if name == "all" else [registry.methods.canonical(name)]
        )
    return list(dict.fromkeys(out))


def expand_datasets(names: list[str]) -> list[str]:
    """Canonical dataset names; 'all' is the eight benchmarks."""
    out: list[str] = []
    for name in names:
        for item in BENCHMARKS if name == "all" else [name]:
            out.append(resolve_dataset(item).name)
    return list(dict.fromkeys(out))


def expand(config: SweepConfig) -> list[RunSpec]:
    """Every run of `config` (methods x datasets x seeds), validated; UserError on bad input."""
    if not config.methods:
        raise UserError("no methods given")
    if not config.datasets:
        raise UserError("no datasets given")
    try:
        seeds = parse_seeds(config.seeds)
    except ValueError as exc:
        raise UserError(f"--seeds: {exc}") from exc
    methods = expand_methods(config.methods)
    datasets = expand_datasets(config.datasets)
    for name in config.params:
        if registry.methods.canonical(name) not in methods:
            raise UserError(f"params given for method {name!r}, which this sweep does not run")
    params = {
        m: registry.methods.get(m).from_params(_params_for(config, m)).get_params() for m in methods
    }
    specs = []
    for dataset in datasets:
        ds = resolve_dataset(dataset)
        backbone = ds.backbone_for(config.backbone, DEFAULT_BACKBONE)
        for method in methods:
            for seed in seeds:
                specs.append(RunSpec(method, dataset, backbone, seed, params[method]))
    return specs


def check_datasets(specs: list[RunSpec], settings: DataSettings) -> None:
    """Fail with one UserError before any run when a dataset of `specs` is missing or incomplete."""
    for name in dict.fromkeys(spec.dataset for spec in specs):
        resolve_dataset(name, settings).check_available()


def _params_for(config: SweepConfig, method: str) -> dict[str, Any]:
    for name, values in config.params.items():
        if registry.methods.canonical(name) == method:
            return dict(values)
    return {}


def is_done(record: dict[str, Any] | None) -> bool:
    """A stored record counts as done when it is ok and made by the current method version."""
    if record is None or record.get("status") != "ok":
        return False
    method = registry.methods.get(record["method"]["name"])
    return record["method"].get("version") == method.version


@dataclass
class SweepPlan:
    """The runs to do now and the runs already done (with their records)."""

    todo: list[RunSpec] = field(default_factory=list)
    done: list[tuple[RunSpec, dict[str, Any]]] = field(default_factory=list)


def plan(specs: list[RunSpec], store: ResultStore, overwrite: bool = False) -> SweepPlan:
    """Split `specs` into runs to execute and runs whose ok record exists (unless `overwrite`)."""
    result = SweepPlan()
    for spec in specs:
        record = None if overwrite else store.read(spec)
        if is_done(record):
            result.done.append((spec, record))
        else:
            result.todo.append(spec)
    return result


def run_local(
    specs: list[RunSpec],
    store: ResultStore,
    device: str,
    settings: DataSettings,
    on_start: Callable[[RunSpec], None] = lambda spec: None,
    on_done: Callable[[RunSpec, dict[str, Any]], None] = lambda spec, record: None,
) -> list[tuple[RunSpec, dict[str, Any]]]:
    """Execute `specs` one after another in this process; return (spec, record) pairs."""
    from laicbench.runner import execute_run

    results = []
    for spec in specs:
        on_start(spec)
        record = execute_run(spec, store, device, settings)
        results.append((spec, record))
        on_done(spec, record)
    return results
