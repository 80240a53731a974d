"""Clustering metrics: Hungarian-matched accuracy (ACC), NMI and ARI, reported x100.

NMI and ARI are computed here from the contingency table (the same definitions and edge cases as
scikit-learn's, which the tests compare against) rather than imported from scikit-learn: every
Ray trial process would otherwise spend about a second importing it.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


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
    if np.asarray(y_true).size == 0:
        raise ValueError("cluster_accuracy of an empty labelling")
    return _accuracy_from_counts(contingency(y_true, y_pred)[2])


def normalized_mutual_info(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mutual information over the arithmetic mean of the two entropies, in [0, 1].

    Two labellings with one group each score 1; if either has one group and the other more, 0.
    """
    return _nmi_from_counts(contingency(y_true, y_pred)[2])


def adjusted_rand_index(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Rand index over sample pairs, adjusted for chance (Hubert and Arabie), in [-0.5, 1].

    Two labellings that put every pair the same way (together or apart) score 1.
    """
    return _ari_from_counts(contingency(y_true, y_pred)[2])


def evaluate(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """ACC, NMI (arithmetic) and ARI of `y_pred` against `y_true`, each x100."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"labels of shape {y_true.shape} vs predictions of shape {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("cannot score an empty labelling")
    counts = contingency(y_true, y_pred)[2]  # once for all three metrics
    return {
        "acc": 100.0 * _accuracy_from_counts(counts),
        "nmi": 100.0 * _nmi_from_counts(counts),
        "ari": 100.0 * _ari_from_counts(counts),
    }


def _accuracy_from_counts(counts: np.ndarray) -> float:
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / counts.sum())


def _entropy(counts: np.ndarray) -> float:
    """Shannon entropy (nats) of the distribution given by non-negative `counts`."""
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _nmi_from_counts(counts: np.ndarray) -> float:
    if counts.shape[0] == counts.shape[1] == 1:
        return 1.0
    n = counts.sum()
    rows, cols = counts.sum(axis=1), counts.sum(axis=0)
    i, j = np.nonzero(counts)
    n_ij = counts[i, j].astype(np.float64)
    mutual_info = float((n_ij / n * np.log(n_ij * n / (rows[i] * cols[j]))).sum())
    if mutual_info <= 0.0:
        return 0.0
    mean_entropy = (_entropy(rows) + _entropy(cols)) / 2
    return mutual_info / max(mean_entropy, np.finfo(np.float64).eps)


def _pairs_together(sizes: np.ndarray) -> int:
    """Number of sample pairs that share a group, given the groups' sizes (a Python int)."""
    return int((sizes * (sizes - 1)).sum()) // 2


def _ari_from_counts(counts: np.ndarray) -> float:
    n = int(counts.sum())
    # Python ints: on 1.28M samples the product of the pair counts overflows int64
    together_both = _pairs_together(counts)
    together_true = _pairs_together(counts.sum(axis=1))
    together_pred = _pairs_together(counts.sum(axis=0))
    pairs = n * (n - 1) // 2
    expected = together_true * together_pred / pairs if pairs else 0.0
    maximum = (together_true + together_pred) / 2
    if maximum == expected:
        return 1.0
    return float((together_both - expected) / (maximum - expected))
