"""Sweep configuration: a TOML file, overridden field by field by command-line flags."""

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

DEFAULT_RESULTS_DIR = "results/runs"


@dataclass
class SweepConfig:
    """What ``laicbench run`` runs. Lists are comma-separated strings on the command line."""

    methods: list[str] = field(default_factory=lambda: ["all"])
    datasets: list[str] = field(default_factory=lambda: ["demo"])
    seeds: str = "0-2"
    backbone: str | None = None
    results_dir: str = DEFAULT_RESULTS_DIR
    device: str = "auto"
    overwrite: bool = False
    executor: str = field(default_factory=lambda: os.environ.get("LAICBENCH_EXECUTOR", "ray"))
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    grid: dict[str, list[Any] | str] = field(default_factory=dict)


def split_list(value: str | list[str]) -> list[str]:
    """'a, b' or ['a', 'b'] -> ['a', 'b'] (empty items dropped)."""
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return [item.strip() for item in items if item.strip()]


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
    known = {f.name for f in fields(SweepConfig)}
    for key, value in raw.items():
        if key not in known:
            raise UserError(f"--config {path}: unknown key {key!r}{did_you_mean(key, known)}")
        if key in ("methods", "datasets"):
            if not isinstance(value, (str, list)):
                raise UserError(f"--config {path}: {key} must be a string or a list of strings")
            value = split_list(value)
        elif key == "seeds":
            value = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
        elif key == "params":
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise UserError(
                    f"--config {path}: params must be tables, e.g. [params.clip-kmeans]"
                )
        elif key == "grid":
            if not isinstance(value, dict) or not all(
                isinstance(v, (list, str)) for v in value.values()
            ):
                raise UserError(
                    f"--config {path}: grid must be a table of lists, e.g. [grid] "
                    '"ours.eta" = [0.7, 0.9]'
                )
        elif key == "overwrite" and not isinstance(value, bool):
            raise UserError(f"--config {path}: overwrite must be true or false")
        elif key in ("backbone", "results_dir", "device", "executor") and not isinstance(
            value, str
        ):
            raise UserError(f"--config {path}: {key} must be a string")
        setattr(config, key, value)
    return config
