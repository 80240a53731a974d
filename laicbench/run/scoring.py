"""Scoring of one run's predictions, the same in a run and in ``laicbench rescore``: the metrics
against the labels, the cluster-size distribution and the label-free metrics on the shared image
features. Methods never see any of it."""

from __future__ import annotations

from typing import Any

import numpy as np

from laicbench.cluster.metric_table import label_free_description, label_free_scores, label_scores
from laicbench.cluster.metrics import NMI_AVERAGE_METHOD, cluster_sizes
from laicbench.run.records import RunRecord

# 1: acc, nmi, ari. 2: + ami, balanced_acc, m2o_acc, cluster sizes, internal metrics.
SCORING_VERSION = 2


def score(
    record: RunRecord,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    image_test: np.ndarray | None,
    n_clusters: int,
) -> None:
    """Fill `record`'s metrics, cluster_sizes, n_clusters_found and scoring from the test labels
    and predictions, and its internal_metrics from the test image features (seeded with the
    run's seed); without features (None) the internal metrics stay unset. The metrics are those
    of ``laicbench.cluster.metric_table``."""
    record.metrics = label_scores(y_true, y_pred)
    sizes = cluster_sizes(y_pred, n_clusters)
    record.n_clusters_found = int(sizes["found"])
    record.cluster_sizes = {k: v for k, v in sizes.items() if k != "found"}
    scoring: dict[str, Any] = {
        "version": SCORING_VERSION,
        "nmi_average_method": NMI_AVERAGE_METHOD,
        "ami_average_method": NMI_AVERAGE_METHOD,
    }
    if image_test is not None:
        record.internal_metrics = label_free_scores(image_test, y_pred, record.seed)
        scoring["internal"] = label_free_description()
    record.scoring = scoring


def scoring_version(record: RunRecord) -> int:
    """The scoring version of a stored record (1 for records older than the field)."""
    return int((record.scoring or {}).get("version", 1))


def has_internal_metrics(record: RunRecord) -> bool:
    """Whether the record holds the label-free metrics."""
    return record.internal_metrics is not None
