"""What a tuning search optimises: a score of one run, computed from its stored predictions on the
test split and the run's test image features, never from the test labels; and the oracle's
test ACC, which exists only to measure how much tuning could gain (its studies are marked and
never ranked).

Every label-free objective is computed in the space the label-free metrics of the records use
(the L2-normalised test image features of the run's backbone), so it compares across methods.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laicbench.api.errors import UserError, did_you_mean
from laicbench.cluster.internal import GENERALIZATION, SPACE, generalization_score
from laicbench.cluster.metric_table import LABEL_FREE_METRICS, label_free_scores
from laicbench.run.records import RunRecord, predictions_path

ORACLE = "oracle"
DEFAULT_OBJECTIVE = "generalization"


@dataclass(frozen=True)
class Objective:
    """One objective: its name, whether higher (``max``) or lower (``min``) is better, whether
    it is label-free (the oracle is not) and its definition (stored in each study record)."""

    name: str
    mode: str
    label_free: bool
    definition: str
    metric: str  # the record's internal metric, "generalization" or "acc"

    def value(
        self, record: RunRecord, record_path: Path, test_features: Callable[[], np.ndarray]
    ) -> float:
        """The objective of the ok run `record` stored at `record_path`; `test_features()`
        gives the run's test image features (called only when the record lacks the value).
        NaN when undefined (fewer than two clusters found)."""
        if self.metric == "acc":
            return _number((record.metrics or {}).get("acc"))
        if self.metric == "generalization":
            return _number(generalization_score(test_features(), _y_pred(record_path), record.seed))
        stored = (record.internal_metrics or {}).get(self.metric)
        if stored is None:  # a record scored before the label-free metrics existed
            metrics = label_free_scores(test_features(), _y_pred(record_path), record.seed)
            stored = metrics[self.metric]
        return _number(stored)

    def better(self, a: float, b: float) -> bool:
        """Whether value `a` is strictly better than `b`."""
        return a > b if self.mode == "max" else a < b


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _y_pred(record_path: Path) -> np.ndarray:
    """The run's predicted test labels, the one array of its predictions file read here (the
    file also holds the test labels, which no objective touches)."""
    with np.load(predictions_path(record_path)) as data:
        return data["y_pred"]


# the label-free metrics of the records (the metric table), under their names with hyphens
OBJECTIVES: dict[str, Objective] = {
    "generalization": Objective(
        "generalization", "max", True, f"generalization score: {GENERALIZATION}", "generalization"
    ),
    **{
        m.name.replace("_", "-"): Objective(
            m.name.replace("_", "-"),
            "max" if m.higher_is_better else "min",
            True,
            f"{m.label} on the {SPACE}, {m.description}",
            m.name,
        )
        for m in LABEL_FREE_METRICS
    },
    ORACLE: Objective(
        ORACLE,
        "max",
        False,
        "test ACC (Hungarian-matched accuracy against the test labels): an oracle that "
        "measures the headroom of tuning; never ranked",
        "acc",
    ),
}


def get_objective(name: str) -> Objective:
    """The objective called `name`; UserError naming the known ones otherwise."""
    key = name.strip().lower().replace("_", "-")
    if key not in OBJECTIVES:
        raise UserError(
            f"--objective {name!r}: unknown{did_you_mean(key, list(OBJECTIVES))}; "
            f"objectives: {', '.join(OBJECTIVES)}"
        )
    return OBJECTIVES[key]
