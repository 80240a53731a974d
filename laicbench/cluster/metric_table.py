"""The one table of the scores a run gets: every metric's name (its key in the record), label,
function, direction, whether it needs the labels, display format and the report tables that show
it. Scoring (``laicbench.run.scoring``, the same in a run and in ``laicbench rescore``) computes
the metrics listed here, and the report derives its columns, labels and directions from here.

Adding a metric is one ``Metric`` entry plus its function (``(y_true, y_pred) -> fraction`` for a
metric against the labels, in ``laicbench.cluster.metrics``; ``(unit_features, labels, seed) ->
value or None`` for a label-free one, in ``laicbench.cluster.internal``), and a bump of
``laicbench.run.scoring.SCORING_VERSION`` so that ``laicbench rescore`` adds it to older records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from laicbench.cluster import internal, metrics


@dataclass(frozen=True)
class Metric:
    """One score of a run.

    `name` is its key in the record (``metrics`` for those against the labels, stored x100;
    ``internal_metrics`` for the label-free ones, stored as computed); `tables` names the report
    tables that show it beside the runs table, which shows every metric: "main" (the main table's
    columns, in this order), "intervals" (confidence intervals and cells.csv), "overclustering".
    """

    name: str
    label: str
    function: Callable[..., float | None]
    higher_is_better: bool
    label_free: bool
    digits: int
    description: str
    tables: frozenset[str] = frozenset()

    @property
    def heading(self) -> str:
        """The label with the direction of a label-free metric: 'Davies-Bouldin ↓'."""
        if not self.label_free:
            return self.label
        return f"{self.label} {'↑' if self.higher_is_better else '↓'}"

    def format(self, value: float | None) -> str:
        """`value` with the metric's decimals; '-' when missing or not finite."""
        if value is None or not np.isfinite(value):
            return "-"
        return f"{value:.{self.digits}f}"


METRICS: tuple[Metric, ...] = (
    Metric(
        name="nmi",
        label="NMI",
        function=metrics.normalized_mutual_info,
        higher_is_better=True,
        label_free=False,
        digits=2,
        description="normalised mutual information, arithmetic mean of the entropies",
        tables=frozenset({"main", "intervals", "overclustering"}),
    ),
    Metric(
        name="acc",
        label="ACC",
        function=metrics.cluster_accuracy,
        higher_is_better=True,
        label_free=False,
        digits=2,
        description="accuracy under the Hungarian matching of clusters to classes",
        tables=frozenset({"main", "intervals", "overclustering"}),
    ),
    Metric(
        name="ari",
        label="ARI",
        function=metrics.adjusted_rand_index,
        higher_is_better=True,
        label_free=False,
        digits=2,
        description="adjusted Rand index",
        tables=frozenset({"main", "intervals"}),
    ),
    Metric(
        name="ami",
        label="AMI",
        function=metrics.adjusted_mutual_info,
        higher_is_better=True,
        label_free=False,
        digits=2,
        description="adjusted mutual information, arithmetic normalisation",
        tables=frozenset({"intervals", "overclustering"}),
    ),
    Metric(
        name="balanced_acc",
        label="bal. ACC",
        function=metrics.balanced_accuracy,
        higher_is_better=True,
        label_free=False,
        digits=2,
        description="mean per-class recall under the Hungarian matching",
    ),
    Metric(
        name="m2o_acc",
        label="m2o ACC",
        function=metrics.many_to_one_accuracy,
        higher_is_better=True,
        label_free=False,
        digits=2,
        description="many-to-one accuracy: each cluster mapped to its majority class",
        tables=frozenset({"overclustering"}),
    ),
    Metric(
        name="silhouette",
        label="Silhouette",
        function=internal.silhouette,
        higher_is_better=True,
        label_free=True,
        digits=3,
        description="cosine distance, seeded subsample of at most "
        f"{internal.SILHOUETTE_MAX_POINTS:,} points",
    ),
    Metric(
        name="davies_bouldin",
        label="Davies-Bouldin",
        function=internal.davies_bouldin,
        higher_is_better=False,
        label_free=True,
        digits=3,
        description="Euclidean, all test images (lower is better)",
    ),
    Metric(
        name="calinski_harabasz",
        label="Calinski-Harabasz",
        function=internal.calinski_harabasz,
        higher_is_better=True,
        label_free=True,
        digits=1,
        description="Euclidean, all test images",
    ),
)
# the metric that ranks methods where one number must (average ranks, label-free selection, the
# shift table)
PRIMARY = "acc"


def metric(name: str) -> Metric:
    """The metric called `name` (KeyError when there is none)."""
    for entry in METRICS:
        if entry.name == name:
            return entry
    raise KeyError(name)


def shown_in(table: str) -> tuple[Metric, ...]:
    """The metrics report table `table` shows ("main", "intervals", "overclustering"), in
    table order."""
    return tuple(m for m in METRICS if table in m.tables)


LABEL_METRICS = tuple(m for m in METRICS if not m.label_free)
LABEL_FREE_METRICS = tuple(m for m in METRICS if m.label_free)


def label_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Every metric against the labels of `y_pred` vs `y_true`, each x100."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"labels of shape {y_true.shape} vs predictions of shape {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("cannot score an empty labelling")
    return {m.name: 100.0 * m.function(y_true, y_pred) for m in LABEL_METRICS}


def label_free_scores(
    features: np.ndarray, labels: np.ndarray, seed: int
) -> dict[str, float | None]:
    """Every label-free metric of `labels` on the L2-normalised rows of `features` (seeded with
    `seed`); None where a metric is undefined for the labelling."""
    x = internal.unit_features(features)
    return {m.name: m.function(x, labels, seed) for m in LABEL_FREE_METRICS}


def label_free_description() -> dict[str, Any]:
    """How the label-free metrics were computed, stored in each record's ``scoring.internal``."""
    return {"space": internal.SPACE, **{m.name: m.description for m in LABEL_FREE_METRICS}}
