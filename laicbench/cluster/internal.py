"""Label-free (internal) clustering metrics on one shared feature space: silhouette,
Davies-Bouldin and Calinski-Harabasz, from scikit-learn.

Every method is scored in the same space, the run's L2-normalised test image features
(``unit_features``), so the numbers compare across methods (internal indices of different learned
spaces do not). Silhouette is quadratic in the number of points, so it uses a seeded subsample
(at most 5,000 points, as VLM4Cluster does) with the cosine distance. Each function takes the
normalised features, the labels and the run's seed, and returns None where the index is
undefined for the labelling (one cluster, or as many clusters as points).
"""

from __future__ import annotations

import numpy as np

SILHOUETTE_MAX_POINTS = 5_000
SPACE = "L2-normalised test image features of the run's backbone"


def unit_features(features: np.ndarray) -> np.ndarray:
    """The rows of `features` L2-normalised, float32: the space every label-free metric uses."""
    x = np.asarray(features, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def silhouette(
    x: np.ndarray, labels: np.ndarray, seed: int, max_points: int = SILHOUETTE_MAX_POINTS
) -> float | None:
    """Mean silhouette (cosine distance) of `labels` on a subsample of at most `max_points` rows
    of `x`, drawn with `seed` (all rows when fewer)."""
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    sample = np.arange(len(x))
    if len(x) > max_points:
        sample = np.sort(np.random.default_rng(seed).choice(len(x), max_points, replace=False))
    if not _defined(labels[sample]):
        return None
    return float(silhouette_score(x[sample], labels[sample], metric="cosine"))


def davies_bouldin(x: np.ndarray, labels: np.ndarray, seed: int) -> float | None:
    """Davies-Bouldin index (Euclidean, all rows; lower is better); `seed` is unused."""
    from sklearn.metrics import davies_bouldin_score

    del seed
    return float(davies_bouldin_score(x, labels)) if _defined(np.asarray(labels)) else None


def calinski_harabasz(x: np.ndarray, labels: np.ndarray, seed: int) -> float | None:
    """Calinski-Harabasz index (Euclidean, all rows); `seed` is unused."""
    from sklearn.metrics import calinski_harabasz_score

    del seed
    return float(calinski_harabasz_score(x, labels)) if _defined(np.asarray(labels)) else None


def _defined(labels: np.ndarray) -> bool:
    """Whether internal indices are defined: 2 <= clusters <= points - 1."""
    return 2 <= len(np.unique(labels)) <= len(labels) - 1
