"""Expand a SweepConfig into runs, check their inputs, and decide what to skip (resume)."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from laicbench.api import registry
from laicbench.api.backbone_spec import DEFAULT_BACKBONE
from laicbench.api.dataset import suite_members
from laicbench.api.errors import UserError
from laicbench.api.settings import DataSettings
from laicbench.data.resolve import resolve_dataset
from laicbench.files import canonical_json
from laicbench.run.config import SweepConfig
from laicbench.run.records import ResultStore, RunRecord, predictions_intact
from laicbench.run.spec import ALL_CLASSES, TRAIN_CLASSES, RunSpec, parse_seeds

DEFAULT_METHODS = "default"
# --nouns-from: where training-free methods of the shift track select their nouns
NOUNS_FROM = ("source", "target")


def expand_methods(names: list[str]) -> list[str]:
    """Canonical method names in registry order for 'all' (every registered method) and
    'default' (those not tagged ``heavy``: the default sweep, which stays a few minutes on a
    CPU); other names are resolved (aliases)."""
    out: list[str] = []
    for name in names:
        if name in ("all", DEFAULT_METHODS):
            everything = registry.methods.entries()
            out.extend(e.name for e in everything if name == "all" or "heavy" not in e.obj.tags)
        else:
            out.append(registry.methods.canonical(name))
    return list(dict.fromkeys(out))


def expand_datasets(names: list[str]) -> list[str]:
    """Canonical dataset names; a suite name (``all``: the eight benchmarks, or any suite the
    dataset plugins declare) stands for its datasets in suite order."""
    out: list[str] = []
    for name in names:
        members = suite_members(name) if not name.endswith(".npz") else None
        for item in members or [name]:
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
    if config.nouns_from is not None and config.nouns_from not in NOUNS_FROM:
        raise UserError(
            f"--nouns-from {config.nouns_from}: expected one of {', '.join(NOUNS_FROM)}"
        )
    if config.nouns_from is not None and config.train_on is None:
        raise UserError("--nouns-from is a choice of the shift track: give --train-on too")
    grids = parse_grid(config.grid, methods)
    params = {m: _param_points(m, _params_for(config, m), grids.get(m, {})) for m in methods}
    specs = []
    for dataset in datasets:
        ds = resolve_dataset(dataset)
        backbones = dict.fromkeys(
            ds.backbone_for(b, DEFAULT_BACKBONE) for b in config.backbone or [None]
        )
        for backbone in backbones:
            for method in methods:
                train_on = _train_on(config.train_on, ds, method, config.nouns_from)
                for point in params[method]:
                    for seed in seeds:
                        specs.append(
                            RunSpec(
                                method, dataset, backbone, seed, point, config.k_factor, train_on
                            )
                        )
    return specs


def _train_on(
    train_on: str | None, dataset, method: str, nouns_from: str | None = None
) -> str | None:
    """The `train_on` of a run of `method` on `dataset` (``SOURCE:all`` or ``SOURCE:subset``):
    set only for test-only datasets, and for methods that learn or, unless `nouns_from` is
    "target", training-free methods that read the noun bank (they select their nouns on the
    train split: VLM4Cluster selects them on ImageNet's train images); None for the other
    training-free methods, which simply cluster the set. UserError when the dataset cannot learn
    from that source."""
    if train_on is None or not dataset.test_only:
        return None
    from laicbench.api.features import Need

    cls = registry.methods.get(method)
    if "training-free" in cls.tags and (Need.NOUNS not in cls.needs or nouns_from == "target"):
        return None
    source, _, classes = train_on.partition(":")
    classes = classes or ALL_CLASSES
    if classes not in TRAIN_CLASSES:
        raise UserError(
            f"--train-on {train_on}: expected {source}, {source}:{ALL_CLASSES} or "
            f"{source}:{TRAIN_CLASSES[1]}"
        )
    if resolve_dataset(source).name != source or dataset.source_classes(source) is None:
        raise UserError(
            f"--train-on {train_on}: {dataset.name} cannot be paired with {source!r}'s train "
            f"split (it pairs with {dataset.shift_source or 'no dataset'})"
        )
    return f"{source}:{classes}"


def parse_value(text: str) -> Any:
    """A grid value: a TOML literal (1, 0.5, true, "x") or else the plain string."""
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def parse_grid(
    grid: dict[str, list[Any] | str], methods: list[str]
) -> dict[str, dict[str, list[Any]]]:
    """{'method.param': values} -> {canonical method: {param: values}}; UserError when bad."""
    out: dict[str, dict[str, list[Any]]] = {}
    for key, values in grid.items():
        method, sep, param = key.partition(".")
        if not sep or not param:
            raise UserError(f"--grid {key}: expected METHOD.PARAM=V1,V2,...")
        canonical = registry.methods.canonical(method)
        if canonical not in methods:
            raise UserError(f"--grid {key}: method {method!r} is not in this sweep")
        if isinstance(values, str):
            values = [parse_value(v) for v in values.split(",") if v.strip()]
        if not values:
            raise UserError(f"--grid {key}: no values")
        out.setdefault(canonical, {})[param] = list(values)
    return out


def _param_points(
    method: str, base: dict[str, Any], grid: dict[str, list[Any]]
) -> list[dict[str, Any]]:
    """Full parameter dicts of `method`: `base` overrides, times the grid's product; points
    that are equal once canonicalised (``3`` and ``3.0`` for a float) are one point."""
    cls = registry.methods.get(method)
    names = list(grid)
    points = (
        cls.from_params({**base, **dict(zip(names, values, strict=True))}).get_params()
        for values in itertools.product(*(grid[n] for n in names))
    )
    return list({canonical_json(p): p for p in points}.values())


def check_datasets(specs: list[RunSpec], settings: DataSettings) -> None:
    """Fail with one UserError before any run when a dataset of `specs` is missing or incomplete,
    or cannot give a method of `specs` an input it declares in its ``needs``."""
    for name in dict.fromkeys(name for spec in specs for name in spec.datasets):
        resolve_dataset(name, settings).check_available()
    for method, dataset in dict.fromkeys((spec.method, spec.dataset) for spec in specs):
        for need in sorted(registry.methods.get(method).needs, key=lambda n: n.value):
            reason = resolve_dataset(dataset, settings).lacks(need)
            if reason:
                raise UserError(
                    f"method {method!r} needs {need.value}, which dataset {dataset} cannot give: "
                    f"{reason}; drop {method!r} from --methods for this dataset"
                )


def prepare_features(specs: list[RunSpec], device: str, settings: DataSettings) -> None:
    """Extract (or verify cached) features of every (dataset, backbone) of `specs`, the noun
    features (their template ensemble and, for methods that read them, the per-template ones)
    when a method needs them and the image features under the other backbones a method reads
    (``runner.run_spaces``), so that parallel trials only read the cache. UserError before any
    run when a dataset cannot give those other backbones."""
    from laicbench.api.features import Need
    from laicbench.data.image_dataset import ImageDataset
    from laicbench.run.runner import run_spaces

    text_needs = {Need.NOUNS, Need.NOUN_TEMPLATES}
    pairs: dict[tuple[str, str], set[Need]] = {}
    for spec in specs:
        needs = registry.methods.get(spec.method).needs & text_needs
        for dataset in spec.datasets:
            pairs.setdefault((dataset, spec.backbone), set()).update(needs)
        for backbone in run_spaces(spec, settings):
            for dataset in spec.datasets:
                pairs.setdefault((dataset, backbone), set())
    for (dataset, backbone), needs in pairs.items():
        ds = resolve_dataset(dataset, settings)
        if isinstance(ds, ImageDataset):
            data = ds.load(backbone, device, settings)
            if Need.NOUNS in needs:
                _ = data.noun_features
            if Need.NOUN_TEMPLATES in needs:
                _ = data.noun_template_features


def _params_for(config: SweepConfig, method: str) -> dict[str, Any]:
    for name, values in config.params.items():
        if registry.methods.canonical(name) == method:
            return dict(values)
    return {}


def run_state(record: RunRecord | None, inputs: dict[str, Any] | None = None) -> str:
    """'missing', 'failed' (error or oom), 'outdated' (older method version, or inputs that differ
    from `inputs` when given) or 'done'."""
    return run_state_why(record, inputs)[0]


def run_state_why(
    record: RunRecord | None, inputs: dict[str, Any] | None = None
) -> tuple[str, str]:
    """(state as in ``run_state``, why: '' for done and missing, else a short reason)."""
    if record is None:
        return "missing", ""
    if not record.ok:
        return "failed", record.status
    current = registry.methods.get(record.method.name).version
    if record.method.version != current:
        return "outdated", f"method version {record.method.version} -> {current}"
    stored = record.inputs
    if inputs is not None and stored is not None and stored != inputs:
        changed = sorted(k for k in {*inputs, *stored} if inputs.get(k) != stored.get(k))
        return "outdated", "inputs changed: " + ", ".join(changed)
    return "done", ""


@dataclass
class SweepPlan:
    """The runs to do now and the runs already done (with their records)."""

    todo: list[RunSpec] = field(default_factory=list)
    done: list[tuple[RunSpec, RunRecord]] = field(default_factory=list)


class InputFingerprints:
    """The inputs fingerprint of each run (``runner.run_inputs``), computed once per dataset,
    backbone, device, needs and other backbones read (``Method.extra_backbones``)."""

    def __init__(self, device: str, settings: DataSettings):
        self.device = device
        self.settings = settings.extracting_on(device)  # as execute_run resolves it
        self._memo: dict[tuple, dict[str, Any]] = {}

    def __call__(self, spec: RunSpec) -> dict[str, Any] | None:
        """The fingerprint `spec` would store if it ran now; None when it cannot be computed
        (the dataset is gone: then nothing is compared, and running reports what is missing)."""
        method = registry.methods.get(spec.method)
        device = method.resources.device_for(self.device)
        key = (spec.dataset, spec.train_on, spec.backbone, device, method.needs)
        extra = method.extra_backbones(spec.params)
        if extra:  # the fingerprint names the other backbones' features too
            key = (*key, tuple(extra))
        if key not in self._memo:
            from laicbench.run.runner import run_inputs

            try:
                self._memo[key] = run_inputs(spec, device, self.settings)
            except UserError:
                self._memo[key] = None
        return self._memo[key]


def stored_state(
    spec: RunSpec,
    store: ResultStore,
    fingerprints: Callable[[RunSpec], dict[str, Any] | None] | None,
) -> tuple[str, str, RunRecord | None]:
    """(state, why, record) of `spec` in `store`: a done record whose inputs differ from today's
    (`fingerprints`) is outdated, and one whose predictions file is missing or damaged is
    'damaged'."""
    record = store.read(spec)
    inputs = fingerprints(spec) if fingerprints is not None and record is not None else None
    state, why = run_state_why(record, inputs)
    if state == "done" and not predictions_intact(store.record_path(spec), record):
        return "damaged", "predictions file missing or damaged", record
    return state, why, record


def plan(
    specs: list[RunSpec],
    store: ResultStore,
    overwrite: bool = False,
    fingerprints: Callable[[RunSpec], dict[str, Any] | None] | None = None,
) -> SweepPlan:
    """Split `specs` into runs to execute and runs whose ok record exists (unless `overwrite`),
    is of the current method version, has intact predictions and, with `fingerprints`, was made
    from the same inputs."""
    result = SweepPlan()
    for spec in specs:
        if overwrite:
            result.todo.append(spec)
            continue
        state, _, record = stored_state(spec, store, fingerprints)
        if state == "done":
            result.done.append((spec, record))
        else:
            result.todo.append(spec)
    return result
