"""Mean ± std tables of stored records, per method x dataset."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

# The column order of LAIC papers' tables (TAC, the 2026 method), in the console and the report.
METRICS: tuple[str, ...] = ("nmi", "acc", "ari")


def variant(method: str, params: dict[str, Any]) -> str:
    """'' for a method's default parameters, else 'name=value, ...' of those that differ."""
    from laicbench.api import registry
    from laicbench.api.errors import UserError

    try:
        defaults = registry.methods.get(method)().get_params()
    except UserError:
        return ""
    return ", ".join(f"{k}={v}" for k, v in params.items() if defaults.get(k, v) != v)


def records_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per ok record: method, variant (non-default params), dataset, backbone, seed,
    oracle, acc, nmi, ari."""
    rows = [
        {
            "method": r["method"]["name"],
            "variant": variant(r["method"]["name"], r["method"].get("params", {})),
            "dataset": r["dataset"]["name"],
            "backbone": r["backbone"],
            "seed": r["seed"],
            "oracle": bool(r["method"].get("oracle", False)),
            **{m: r["metrics"][m] for m in METRICS},
        }
        for r in records
        if r.get("status") == "ok" and r.get("metrics")
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
