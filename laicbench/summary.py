"""Mean ± std tables of stored records, per method x dataset."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

METRICS = ("acc", "nmi", "ari")


def records_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per ok record: method, dataset, backbone, seed, oracle, acc, nmi, ari."""
    rows = [
        {
            "method": r["method"]["name"],
            "dataset": r["dataset"]["name"],
            "backbone": r["backbone"],
            "seed": r["seed"],
            "oracle": bool(r["method"].get("oracle", False)),
            **{m: r["metrics"][m] for m in METRICS},
        }
        for r in records
        if r.get("status") == "ok" and r.get("metrics")
    ]
    columns = ["method", "dataset", "backbone", "seed", "oracle", *METRICS]
    return pd.DataFrame(rows, columns=columns)


def mean_std_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (method, dataset): n seeds and mean/std (sample std, 0 for one seed) of each metric."""
    grouped = frame.groupby(["method", "dataset"], sort=False)
    out = grouped[list(METRICS)].agg(["mean", "std"]).fillna(0.0)
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out.insert(0, "n", grouped.size())
    out.insert(1, "oracle", grouped["oracle"].first())
    return out.reset_index()


def format_mean_std(mean: float, std: float) -> str:
    """'92.31 ± 0.42'."""
    return f"{mean:.2f} ± {std:.2f}"
