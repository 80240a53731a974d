"""Clustering metrics: Hungarian-matched accuracy (ACC), NMI and ARI, reported x100."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def contingency(
    y_true: np.ndarray, y_pred: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (classes, clusters, counts) with counts[i, j] = #samples of class i in cluster j."""
    classes, true_idx = np.unique(np.asarray(y_true), return_inverse=True)
    clusters, pred_idx = np.unique(np.asarray(y_pred), return_inverse=True)
    counts = np.zeros((len(classes), len(clusters)), dtype=np.int64)
    np.add.at(counts, (true_idx.ravel(), pred_idx.ravel()), 1)
    return classes, clusters, counts


def hungarian_match(y_true: np.ndarray, y_pred: np.ndarray) -> dict[int, int]:
    """The one-to-one cluster -> class map that maximises the number of matched samples.

    With more clusters than classes some clusters stay unmatched (absent from the map); with fewer,
    some classes do. Uses scipy's linear_sum_assignment on the (rectangular) contingency matrix.
    """
    classes, clusters, counts = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return {int(clusters[c]): int(classes[r]) for r, c in zip(rows, cols, strict=True)}


def cluster_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of samples whose cluster maps to their class under the Hungarian matching.

    Samples in unmatched clusters count as errors.
    """
    y_true = np.asarray(y_true)
    if y_true.size == 0:
        raise ValueError("cluster_accuracy of an empty labelling")
    _, _, counts = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / y_true.size)


def evaluate(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """ACC, NMI (arithmetic) and ARI of `y_pred` against `y_true`, each x100."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"labels of shape {y_true.shape} vs predictions of shape {y_pred.shape}")
    return {
        "acc": 100.0 * cluster_accuracy(y_true, y_pred),
        "nmi": 100.0 * float(normalized_mutual_info_score(y_true, y_pred)),
        "ari": 100.0 * float(adjusted_rand_score(y_true, y_pred)),
    }
