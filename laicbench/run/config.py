"""The sweep configuration: one type with a field for every flag of ``laicbench run``.

A TOML file (``--config``) takes the same fields, spelled as the flags with underscores
(``--data-root`` is ``data_root``); flags given on the command line override the file's values,
field by field. The Python API (``laicbench.run_sweep``) takes the same object.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from laicbench.api.errors import UserError, did_you_mean
from laicbench.api.settings import DataSettings

DEFAULT_RESULTS_DIR = "results/runs"
EXECUTORS = ("ray", "local")
# a sweep of more runs than this is refused before it is expanded (--max-runs raises it): at
# about a second per run it is already more than a day of work, and a bigger one is a typo
DEFAULT_MAX_RUNS = 100_000
# over-clustering asks for k_factor x K clusters: beyond this, more clusters than images
MAX_K_FACTOR = 1_000


@dataclass
class SweepConfig:
    """What a sweep runs, where its data and records live, and how it executes.

    Selection: ``methods`` (names, aliases, ``all``, or ``default``: every method not tagged
    ``heavy``) and ``datasets`` (names, aliases, or a suite such as ``all``),
    ``seeds`` (``0-2``, ``0,3,5``), ``backbone`` (a list; None: ViT-B-32:openai, or a simulated
    dataset's own), ``train_on`` (the shift track: the dataset whose train split methods that
    train learn on for the test-only shift sets, ``imagenet`` = ``imagenet:all``, VLM4Cluster's
    1,000-way protocol, or ``imagenet:subset``; None: the set itself), ``nouns_from`` (where
    training-free methods of the shift track select their nouns: ``source``, the default, or
    ``target``),
    ``params`` ({method: {param: value}}), ``grid`` ({"method.param": [values]}) and
    ``k_factor`` (over-clustering: every method is asked for k_factor x K clusters), ``attack``
    and ``attack_params`` (the adversarial track: an attack, ``pgd`` or ``anyattack``, perturbs
    every image dataset's test images before they are encoded; None or ``none``: clean). Records:
    ``results_dir``, ``overwrite``. Data: ``data_root``, ``download``, ``cache_dir``,
    ``precision``, ``vocabulary``, ``batch_size``, ``workers`` (DataSettings; None: its
    default). Execution: ``device``, ``executor`` (ray or local; default $LAICBENCH_EXECUTOR or
    ray), and for Ray ``address``, ``num_cpus``, ``num_gpus``; ``include_path``: folders of
    plugin files, imported by every process of the sweep. Limits: ``run_timeout`` (seconds one
    run may take before it is stopped and recorded as a ``timeout``; None: no limit) and
    ``max_runs`` (the largest sweep expanded; a bigger grid is refused before expansion).
    """

    methods: list[str] = field(default_factory=lambda: ["default"])
    datasets: list[str] = field(default_factory=lambda: ["demo"])
    seeds: str = "0-2"
    backbone: list[str] | None = None
    train_on: str | None = None
    nouns_from: str | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    grid: dict[str, list[Any] | str] = field(default_factory=dict)
    k_factor: int = 1
    attack: str | None = None
    attack_params: dict[str, Any] = field(default_factory=dict)
    results_dir: str = DEFAULT_RESULTS_DIR
    overwrite: bool = False
    data_root: str | None = None
    download: bool = False
    cache_dir: str | None = None
    precision: str = "auto"
    vocabulary: str | None = None
    batch_size: int | None = None
    workers: int | None = None
    device: str = "auto"
    executor: str = field(default_factory=lambda: os.environ.get("LAICBENCH_EXECUTOR", "ray"))
    address: str | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    include_path: list[str] = field(default_factory=list)
    run_timeout: float | None = None
    max_runs: int = DEFAULT_MAX_RUNS
    # the config file the params came from (named in messages about them); set by load_config
    params_from: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for f in fields(self):  # the Python API gets the same forms and checks as a TOML file
            setattr(self, f.name, config_value(f.name, getattr(self, f.name), "SweepConfig"))

    def data_settings(self) -> DataSettings:
        """The DataSettings of the data fields (defaults for those left at None); UserError
        for a batch size below 1 or a negative worker count."""
        if self.batch_size is not None and self.batch_size < 1:
            raise UserError("--batch-size must be at least 1")
        if self.workers is not None and self.workers < 0:
            raise UserError("--workers must be 0 (load in the main process) or more")
        given = {
            "data_root": self.data_root,
            "download": self.download,
            "cache_dir": self.cache_dir,
            "precision": self.precision,
            "vocabulary": self.vocabulary,
            "batch_size": self.batch_size,
            "num_workers": self.workers,
        }
        return DataSettings(**{k: v for k, v in given.items() if v is not None})

    def check(self) -> None:
        """UserError for a value no sweep can take (an unknown executor or precision)."""
        if self.executor not in EXECUTORS:
            raise UserError(f"executor {self.executor!r}: expected ray or local")
        if self.precision not in PRECISIONS:
            raise UserError(f"precision {self.precision!r}: expected one of {PRECISIONS}")


PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_LISTS = ("methods", "datasets", "include_path")
_STRINGS = ("results_dir", "precision", "device", "executor")
_OPTIONAL_STRINGS = (
    "train_on",
    "nouns_from",
    "attack",
    "data_root",
    "cache_dir",
    "vocabulary",
    "address",
)
_BOOLS = ("overwrite", "download")
_OPTIONAL_INTS = ("batch_size", "workers", "num_cpus", "num_gpus")


def split_list(value: str | list[str]) -> list[str]:
    """'a, b' or ['a', 'b'] -> ['a', 'b'] (empty items dropped)."""
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return [item.strip() for item in items if item.strip()]


def config_value(key: str, value: Any, where: str) -> Any:
    """`value` of field `key` in the form SweepConfig holds; UserError (prefixed by `where`)
    when it has the wrong type."""
    if value is None and key in (*_OPTIONAL_STRINGS, *_OPTIONAL_INTS, "backbone", "run_timeout"):
        return None
    if key in (*_LISTS, "backbone"):
        if not isinstance(value, (str, list)):
            raise UserError(f"{where}: {key} must be a string or a list of strings")
        return split_list(value)
    if key == "seeds":
        return ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if key == "params":
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise UserError(f"{where}: params must be tables, e.g. [params.clip-kmeans]")
    elif key == "attack_params":
        if not isinstance(value, dict):
            raise UserError(
                f'{where}: attack_params must be a table, e.g. [attack_params] eps = "8/255"'
            )
    elif key == "grid":
        if not isinstance(value, dict) or not all(
            isinstance(v, (list, str)) for v in value.values()
        ):
            raise UserError(
                f'{where}: grid must be a table of lists, e.g. [grid] "ours.eta" = [0.7, 0.9]'
            )
    elif key in _BOOLS and not isinstance(value, bool):
        raise UserError(f"{where}: {key} must be true or false")
    elif key in _STRINGS + _OPTIONAL_STRINGS and not isinstance(value, str):
        raise UserError(f"{where}: {key} must be a string")
    elif key == "k_factor" and (
        not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_K_FACTOR
    ):
        raise UserError(
            f"{where}: k_factor must be a whole number from 1 to {MAX_K_FACTOR} (e.g. 2 or 5), "
            f"not {value!r}"
        )
    elif key == "run_timeout" and (
        not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0
    ):
        raise UserError(f"{where}: run_timeout must be a number of seconds above 0 (e.g. 3600)")
    elif key == "max_runs" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise UserError(f"{where}: max_runs must be a whole number of at least 1")
    elif key in _OPTIONAL_INTS and (not isinstance(value, int) or isinstance(value, bool)):
        raise UserError(f"{where}: {key} must be an integer")
    return value


def load_config(path: str | Path | None) -> SweepConfig:
    """The SweepConfig of a TOML file (defaults for absent keys); UserError on any problem."""
    config = SweepConfig()
    if path is None:
        return config
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"--config {path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise UserError(
            f"--config {path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"--config {path}: invalid TOML ({exc})") from exc
    known = {f.name for f in fields(SweepConfig)} - {"params_from"}
    for key, value in raw.items():
        if key not in known:
            raise UserError(f"--config {path}: unknown key {key!r}{did_you_mean(key, known)}")
        value = config_value(key, value, f"--config {path}")
        if key == "include_path":  # plugin folders are relative to the file that names them
            value = [str(path.parent / folder) for folder in value]
        setattr(config, key, value)
    if config.params:
        config.params_from = str(path)
    return config
