"""Label-free (internal) clustering metrics on one shared feature space: silhouette,
Davies-Bouldin and Calinski-Harabasz, from scikit-learn.

Every method is scored in the same space, the run's L2-normalised test image features, so the
numbers compare across methods (internal indices of different learned spaces do not). Silhouette
is quadratic in the number of points, so it uses a seeded subsample (at most 5,000 points, as
VLM4Cluster does) with the cosine distance.
"""

from __future__ import annotations

import numpy as np

SILHOUETTE_MAX_POINTS = 5_000
DESCRIPTION = {
    "space": "L2-normalised test image features of the run's backbone",
    "silhouette": f"cosine distance, seeded subsample of at most {SILHOUETTE_MAX_POINTS:,} points",
    "davies_bouldin": "Euclidean, all test images (lower is better)",
    "calinski_harabasz": "Euclidean, all test images",
}
# Whether a higher value of each metric means a better clustering.
HIGHER_IS_BETTER = {"silhouette": True, "davies_bouldin": False, "calinski_harabasz": True}


def internal_metrics(
    features: np.ndarray, labels: np.ndarray, seed: int, max_points: int = SILHOUETTE_MAX_POINTS
) -> dict[str, float | None]:
    """Silhouette (cosine, on a subsample of at most `max_points` drawn with `seed`),
    Davies-Bouldin and Calinski-Harabasz of `labels` on the rows of `features` (L2-normalised
    here). A metric that is undefined for the labelling (one cluster, or as many clusters as
    points) is None."""
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    x = np.asarray(features, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    labels = np.asarray(labels)
    out: dict[str, float | None] = dict.fromkeys(HIGHER_IS_BETTER)
    if _defined(labels):
        out["davies_bouldin"] = float(davies_bouldin_score(x, labels))
        out["calinski_harabasz"] = float(calinski_harabasz_score(x, labels))
    sample = np.arange(len(x))
    if len(x) > max_points:
        sample = np.sort(np.random.default_rng(seed).choice(len(x), max_points, replace=False))
    if _defined(labels[sample]):
        out["silhouette"] = float(silhouette_score(x[sample], labels[sample], metric="cosine"))
    return out


def _defined(labels: np.ndarray) -> bool:
    """Whether internal indices are defined: 2 <= clusters <= points - 1."""
    return 2 <= len(np.unique(labels)) <= len(labels) - 1
