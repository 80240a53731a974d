"""From records to numbers: the one aggregation that the CLI's summary and the report's tables
share (one row per run, mean ± std per group), and the one rule for a method's default point."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from laicbench.api import registry
from laicbench.cluster.metric_table import shown_in
from laicbench.files import canonical_json
from laicbench.run.records import RunRecord

# The main table's metrics (the column order of LAIC papers' tables: TAC, the 2026 method), in
# the console and the report.
METRICS: tuple[str, ...] = tuple(m.name for m in shown_in("main"))


def default_params(method: str) -> dict[str, Any] | None:
    """The registered method's default parameters (``cls().get_params()``), or None when the
    method is unknown or cannot be built without arguments."""
    try:
        return registry.methods.get(method)().get_params()
    except Exception:  # noqa: BLE001 - a plugin without defaults simply has no default point
        return None


def same_params(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two parameter dicts are equal, an int equal to a float counting as equal (a grid
    value '1' and a default 1.0 are the same point)."""
    return canonical_json(_numbers_as_floats(a)) == canonical_json(_numbers_as_floats(b))


def _numbers_as_floats(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _numbers_as_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_numbers_as_floats(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def variant(method: str, params: dict[str, Any]) -> str:
    """'' for a method's default parameters, else 'name=value, ...' of those that differ (an
    int equal to a float counting as equal, as in ``same_params``)."""
    defaults = default_params(method)
    if defaults is None:
        return ""
    return ", ".join(
        f"{k}={v}"
        for k, v in params.items()
        if k in defaults and not same_params({k: v}, {k: defaults[k]})
    )


def records_frame(records: Iterable[RunRecord]) -> pd.DataFrame:
    """One row per ok record: method, variant (non-default params), dataset, backbone, seed,
    oracle and the METRICS."""
    rows = [
        {
            "method": r.method.name,
            "variant": variant(r.method.name, r.method.params),
            "dataset": r.dataset.name,
            "backbone": r.backbone,
            "seed": r.seed,
            "oracle": r.method.oracle,
            **{m: r.metrics[m] for m in METRICS},
        }
        for r in records
        if r.ok and r.metrics
    ]
    columns = ["method", "variant", "dataset", "backbone", "seed", "oracle", *METRICS]
    return pd.DataFrame(rows, columns=columns)


def mean_std_table(
    frame: pd.DataFrame, by: tuple[str, ...] = ("method", "dataset")
) -> pd.DataFrame:
    """Per group of `by` columns: n seeds and mean/std (sample std, 0 for one seed) of each
    metric."""
    grouped = frame.groupby(list(by), sort=False)
    out = grouped[list(METRICS)].agg(["mean", "std"]).fillna(0.0)
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out.insert(0, "n", grouped.size())
    out.insert(1, "oracle", grouped["oracle"].first())
    return out.reset_index()


def format_mean_std(mean: float, std: float) -> str:
    """'92.31 ± 0.42'."""
    return f"{mean:.2f} ± {std:.2f}"
