"""Expand a SweepConfig into runs, check their inputs, and decide what to skip (resume)."""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from laicbench.api import registry
from laicbench.api.backbone_spec import DEFAULT_BACKBONE
from laicbench.api.dataset import suite_members
from laicbench.api.errors import UserError
from laicbench.api.features import Need
from laicbench.api.method import method_source_sha256
from laicbench.api.settings import AttackSpec, DataSettings
from laicbench.data.attacks import resolve_attack
from laicbench.data.resolve import resolve_dataset
from laicbench.files import canonical_json
from laicbench.run.config import SweepConfig
from laicbench.run.records import RecordError, ResultStore, RunRecord, predictions_intact
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
            where = f" (in [params.{name}] of --config {config.params_from})"
            raise UserError(
                f"params given for method {name!r}{where if config.params_from else ''}, which "
                f"this sweep does not run; add it to --methods or remove its params"
            )
    if config.nouns_from is not None and config.nouns_from not in NOUNS_FROM:
        raise UserError(
            f"--nouns-from {config.nouns_from}: expected one of {', '.join(NOUNS_FROM)}"
        )
    if config.nouns_from is not None and config.train_on is None:
        raise UserError("--nouns-from is a choice of the shift track: give --train-on too")
    if config.train_on is not None and not any(resolve_dataset(d).test_only for d in datasets):
        raise UserError(
            f"--train-on {config.train_on} cannot apply: no dataset of this sweep is a test-only "
            "set (the ImageNet shift sets), and the others learn on their own train split; "
            "drop it"
        )
    grids = parse_grid(config.grid, methods)
    check_sweep_size(config, methods, datasets, len(seeds), grids)
    params = {m: _param_points(m, _params_for(config, m), grids.get(m, {})) for m in methods}
    attack = resolve_attack(config.attack, config.attack_params)
    if attack is not None:
        from laicbench.data.image_dataset import ImageDataset
    specs = []
    for dataset in datasets:
        ds = resolve_dataset(dataset)
        if attack is not None and not isinstance(ds, ImageDataset):
            raise UserError(
                f"--attack {attack.name}: dataset {dataset} has no images to perturb (simulated "
                "or precomputed features); the adversarial track runs on image datasets only"
            )
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
                                method,
                                dataset,
                                backbone,
                                seed,
                                point,
                                config.k_factor,
                                train_on,
                                attack,
                            )
                        )
    return specs


def check_sweep_size(
    config: SweepConfig,
    methods: list[str],
    datasets: list[str],
    n_seeds: int,
    grids: dict[str, dict[str, list[Any]]],
) -> None:
    """UserError (one line) when the sweep would have more than ``config.max_runs`` runs,
    counted as datasets x backbones x (grid points summed over methods) x seeds before anything
    is expanded (points equal once canonicalised may make the real count smaller)."""
    points = sum(math.prod(len(v) for v in grids.get(m, {}).values()) for m in methods)
    backbones = len(config.backbone or [None])
    total = len(datasets) * backbones * points * n_seeds
    if total > config.max_runs:
        raise UserError(
            f"this sweep would have {total:,} runs ({len(datasets)} dataset(s) x {backbones} "
            f"backbone(s) x {points:,} method/parameter point(s) x {n_seeds:,} seed(s)), more "
            f"than --max-runs {config.max_runs:,}; narrow --grid, --seeds or --datasets, or "
            "raise --max-runs"
        )


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
    checked = set()
    for spec in specs:
        method, dataset = spec.method, spec.dataset
        needs = registry.methods.get(method).run_needs(spec.params)
        if (method, dataset, needs) in checked:
            continue
        checked.add((method, dataset, needs))
        if Need.IMAGE_TOWER in needs and spec.attack is not None:
            raise UserError(
                f"method {method!r} with these parameters fine-tunes the image tower on the "
                "clean images, which an attack would bypass; run it without --attack"
            )
        for need in sorted(needs, key=lambda n: n.value):
            reason = resolve_dataset(dataset, settings).lacks(need)
            if reason:
                raise UserError(
                    f"method {method!r} needs {need.value}, which dataset {dataset} cannot give: "
                    f"{reason}; drop {method!r} from --methods for this dataset"
                )


def check_settings_read(specs: list[RunSpec], settings: DataSettings) -> None:
    """UserError (one line) when `settings` set ``--precision`` or ``--vocabulary`` (flag or
    config) and no dataset of `specs` computes features with it (``Dataset.settings_read``: the
    simulated demo and features files carry their features): a flag that cannot apply is
    refused rather than silently ignored, since it would change neither the runs' identity nor
    their results."""
    given = {
        "precision": f"--precision {settings.precision}" if settings.precision != "auto" else "",
        "vocabulary": f"--vocabulary {settings.vocabulary}" if settings.vocabulary else "",
    }
    for setting, flag in given.items():
        if not flag:
            continue
        if not any(
            setting
            in resolve_dataset(name, settings).settings_read(
                registry.methods.get(spec.method).needs
            )
            for spec in specs
            for name in spec.datasets
        ):
            raise UserError(
                f"{flag} (flag or config) cannot apply: no dataset of this sweep computes "
                "features (the demo datasets and features files carry their own); drop it"
            )


def prepare_features(specs: list[RunSpec], device: str, settings: DataSettings) -> None:
    """Extract (or verify cached) features of every (dataset, backbone, attack) of `specs`, the noun
    features (their template ensemble and, for methods that read them, the per-template ones)
    when a method needs them and the image features under the other backbones a method reads
    (``runner.run_spaces``), so that parallel trials only read the cache. UserError before any
    run when a dataset cannot give those other backbones."""
    from laicbench.api.features import Need
    from laicbench.data.image_dataset import ImageDataset
    from laicbench.run.inputs import run_spaces

    text_needs = {Need.NOUNS, Need.NOUN_TEMPLATES}
    pairs: dict[tuple[str, str, AttackSpec | None], set[Need]] = {}
    for spec in specs:
        needs = registry.methods.get(spec.method).needs & text_needs
        for i, dataset in enumerate(spec.datasets):  # the attack is on the run's own dataset
            attack = spec.attack if i == 0 else None
            pairs.setdefault((dataset, spec.backbone, attack), set()).update(needs)
        for backbone in run_spaces(spec, settings):
            for dataset in spec.datasets:
                pairs.setdefault((dataset, backbone, None), set())
    for (dataset, backbone, attack), needs in pairs.items():
        ds = resolve_dataset(dataset, settings)
        if isinstance(ds, ImageDataset):
            data = ds.load(backbone, device, replace(settings, attack=attack))
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
    """'missing', 'failed' (error or oom), 'outdated' (another method version; the same version
    made from other method source, ``method_source_sha256``; or inputs that differ from
    `inputs` when given) or 'done'. The one rule of run identity beyond the run id, shared by
    run (resume), status and report."""
    return run_state_why(record, inputs)[0]


def run_state_why(
    record: RunRecord | None, inputs: dict[str, Any] | None = None
) -> tuple[str, str]:
    """(state as in ``run_state``, why: '' for done and missing, else a short reason)."""
    if record is None:
        return "missing", ""
    if not record.ok:
        return "failed", record.status
    method_cls = registry.methods.get(record.method.name)
    current = method_cls.version
    if record.method.version != current:
        return "outdated", f"method version {record.method.version} -> {current}"
    stored_source = record.method.source_sha256
    if stored_source is not None and stored_source != method_source_sha256(method_cls):
        return "outdated", "method source changed (same version)"
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
    unusable: list[str] = field(default_factory=list)  # record files to rerun, and why


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
        key = (spec.dataset, spec.train_on, spec.backbone, device, method.needs, spec.attack)
        extra = method.extra_backbones(spec.params)
        if extra:  # the fingerprint names the other backbones' features too
            key = (*key, tuple(extra))
        if key not in self._memo:
            from laicbench.run.inputs import run_inputs

            try:
                self._memo[key] = run_inputs(spec, device, self.settings)
            except UserError:
                self._memo[key] = None
        return self._memo[key]


class TodayInputs:
    """For the report, which computes no features and loads no model: the inputs fingerprint
    each stored record's run would have today. Where the fingerprint needs no model (features
    files, simulated datasets) it is the one ``status`` computes (``InputFingerprints``); for
    image datasets (weights, precision, sample lists: known only with the data flags and a
    model) it is, key by key, the newest value the records of the same dataset, backbone and
    training source stored, so that a column never mixes runs of two inputs unmarked."""

    def __init__(self, records: list[RunRecord]):
        self._fingerprints = InputFingerprints("cpu", DataSettings())
        self._computable: dict[str, bool] = {}
        self._newest: dict[tuple, dict[str, Any]] = {}
        for record in sorted(records, key=lambda r: r.finished_at or ""):
            if record.ok and record.inputs is not None:
                _deep_update(self._newest.setdefault(self._group(record), {}), record.inputs)

    @staticmethod
    def _group(record: RunRecord) -> tuple:
        return (record.dataset.name, record.backbone, record.train_on)

    def _can_compute(self, dataset: str) -> bool:
        if dataset not in self._computable:
            from laicbench.data.image_dataset import ImageDataset

            try:
                self._computable[dataset] = not isinstance(resolve_dataset(dataset), ImageDataset)
            except UserError:  # gone, or a plugin not importable here
                self._computable[dataset] = False
        return self._computable[dataset]

    def __call__(self, record: RunRecord) -> dict[str, Any] | None:
        """Today's inputs of `record`'s run (None: nothing to compare)."""
        if not record.ok or record.inputs is None or not record.spec:
            return None
        try:
            spec = RunSpec(**record.spec)
        except TypeError:
            return None
        if all(self._can_compute(name) for name in spec.datasets):
            today = self._fingerprints(spec)
            if today is not None:
                return today
        return _project(self._newest.get(self._group(record), {}), record.inputs)


def _deep_update(target: dict[str, Any], values: dict[str, Any]) -> None:
    """Update `target` with `values`, mappings key by key (the inputs under each other backbone
    of ``spaces`` separately, since methods read different ones)."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)  # never shared with a record's own inputs


def _project(newest: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """`stored` with each value (mappings key by key) replaced by the `newest` one, where any."""
    out: dict[str, Any] = {}
    for key, value in stored.items():
        if key not in newest:
            out[key] = value
        elif isinstance(value, dict) and isinstance(newest[key], dict):
            out[key] = _project(newest[key], value)
        else:
            out[key] = newest[key]
    return out


def stored_state(
    spec: RunSpec,
    store: ResultStore,
    fingerprints: Callable[[RunSpec], dict[str, Any] | None] | None,
) -> tuple[str, str, RunRecord | None]:
    """(state, why, record) of `spec` in `store`: a done record whose inputs differ from today's
    (`fingerprints`) is outdated, and one whose predictions file is missing or damaged, or a
    record file that cannot be used (``RecordError``, named in `why`; a folder in its place), is
    'damaged'."""
    path = store.record_path(spec)
    if path.is_dir():
        why = f"unusable record {path}: unreadable (its record is a folder; a rerun moves it aside)"
        return "damaged", why, None
    try:
        record = store.load(spec)
    except RecordError as exc:  # named, and rerun like damaged predictions
        return "damaged", f"unusable record {exc}", None
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
            # a record of a newer release is never replaced (NewerRecordError); an unusable one
            # is, by the rerun
            with contextlib.suppress(RecordError):
                store.load(spec)
            result.todo.append(spec)
            continue
        state, why, record = stored_state(spec, store, fingerprints)
        if state == "done":
            result.done.append((spec, record))
        else:
            result.todo.append(spec)
            if state == "damaged" and record is None:
                result.unusable.append(why)
    return result
