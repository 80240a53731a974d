"""Clustering metrics against the labels, reported x100: Hungarian-matched accuracy (ACC), NMI
(arithmetic mean normalisation, as scikit-learn's default, TAC and VLM4Cluster), ARI, AMI,
balanced accuracy (mean per-class recall under the Hungarian matching, as TURTLE reports) and
many-to-one accuracy (each cluster mapped to its majority class, as TEMI reports for
over-clustering); and the cluster-size distribution of a labelling.

ACC, NMI, ARI and the accuracies are computed here from one contingency table (the same
definitions and edge cases as scikit-learn's, which the tests compare against); AMI, whose
expected mutual information scikit-learn computes in compiled code, comes from scikit-learn.
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


# How the normalised scores are normalised; stored with every record's scores.
NMI_AVERAGE_METHOD = "arithmetic"


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


def adjusted_mutual_info(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mutual information adjusted for chance, normalised by the arithmetic mean of the
    entropies (scikit-learn's, which computes the expected mutual information in compiled
    code)."""
    from sklearn.metrics import adjusted_mutual_info_score

    return float(adjusted_mutual_info_score(y_true, y_pred, average_method=NMI_AVERAGE_METHOD))


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over classes of the fraction of the class's samples in the cluster matched to it
    (Hungarian matching as ``cluster_accuracy``; a class left unmatched scores 0)."""
    return _balanced_accuracy_from_counts(contingency(y_true, y_pred)[2])


def many_to_one_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of samples whose cluster's majority class is their class (several clusters may
    map to one class: the over-clustering score)."""
    return _many_to_one_from_counts(contingency(y_true, y_pred)[2])


def cluster_sizes(y_pred: np.ndarray, n_clusters: int) -> dict[str, float]:
    """The size distribution of a labelling asked for `n_clusters` clusters: clusters found, the
    largest and smallest non-empty cluster's share of the samples, and the entropy of the sizes
    normalised by log(n_clusters) (1: all clusters equal; 0 when n_clusters is 1)."""
    sizes = np.unique(np.asarray(y_pred), return_counts=True)[1]
    shares = sizes / sizes.sum()
    return {
        "found": int(len(sizes)),
        "largest_share": float(shares.max()),
        "smallest_share": float(shares.min()),
        "size_entropy": _entropy(sizes) / np.log(n_clusters) if n_clusters > 1 else 0.0,
    }


def _balanced_accuracy_from_counts(counts: np.ndarray) -> float:
    rows, cols = linear_sum_assignment(counts, maximize=True)
    recall = np.zeros(counts.shape[0])
    recall[rows] = counts[rows, cols] / counts.sum(axis=1)[rows]
    return float(recall.mean())


def _many_to_one_from_counts(counts: np.ndarray) -> float:
    return float(counts.max(axis=0).sum() / counts.sum())


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
