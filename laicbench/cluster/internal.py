"""Label-free (internal) clustering metrics on one shared feature space: silhouette,
Davies-Bouldin and Calinski-Harabasz, from scikit-learn, and the generalization score (how well
a linear classifier learns a labelling: TURTLE's criterion, made method-agnostic).

Every method is scored in the same space, the run's L2-normalised test image features
(``unit_features``), so the numbers compare across methods (internal indices of different learned
spaces do not). Silhouette is quadratic in the number of points, so it uses a seeded subsample
(at most 5,000 points, as VLM4Cluster does) with the cosine distance. Each function takes the
normalised features, the labels and the run's seed, and returns None where the index is
undefined for the labelling (one cluster, or as many clusters as points).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

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


GENERALIZATION_FOLDS = 5
GENERALIZATION_MAX_POINTS = 20_000
GENERALIZATION_ALPHA = 1.0
GENERALIZATION = (
    "Cohen's kappa between a labelling and the out-of-fold predictions of ridge classifiers "
    f"(scikit-learn RidgeClassifier, alpha = {GENERALIZATION_ALPHA:g}) trained on the other folds "
    f"({GENERALIZATION_FOLDS} folds of a seeded permutation) of the L2-normalised test image "
    f"features; seeded subsample of at most {GENERALIZATION_MAX_POINTS:,} points"
)


def held_out_predictions(
    x: Any, labels: np.ndarray, folds: int, seed: int, classifier: Callable[[], Any]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(held-out rows, predicted labels) per fold: the rows of `x` in a permutation drawn with
    `seed`, cut into `folds` folds (``np.array_split``), each predicted by a fresh
    `classifier()` (a scikit-learn classifier, or one with its ``fit``/``predict``, such as
    ``TorchLogisticRegression`` on a tensor `x`) fitted to `labels` of the other folds; a
    training part with one label predicts that label."""
    order = np.random.default_rng(seed).permutation(len(x))
    for held_out in np.array_split(order, min(folds, len(x))):
        train = np.setdiff1d(order, held_out, assume_unique=True)
        if len(np.unique(labels[train])) < 2:
            yield held_out, np.full(len(held_out), labels[train][0])
            continue
        yield held_out, classifier().fit(x[train], labels[train]).predict(x[held_out])


def generalization_score(
    features: np.ndarray,
    labels: np.ndarray,
    seed: int,
    folds: int = GENERALIZATION_FOLDS,
    max_points: int = GENERALIZATION_MAX_POINTS,
) -> float | None:
    """How well a linear classifier learns `labels` from `features` (label-free: `labels` are a
    method's predicted clusters), in the spirit of TURTLE's generalization score: Cohen's kappa
    between `labels` and the out-of-fold predictions (``held_out_predictions``) of ridge
    classifiers on the L2-normalised rows (a seeded subsample of at most `max_points`).

    A ridge classifier (closed form) in place of TURTLE's logistic regression, so that the score
    costs seconds at ImageNet-1K's size; kappa in place of accuracy, so that a degenerate
    labelling (one huge cluster, which any classifier predicts) does not score high, as TURTLE's
    entropy term prevents for its own labellings. 1: perfectly learnable, 0: chance. None for
    fewer than two clusters."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.metrics import cohen_kappa_score

    x = np.asarray(features, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    labels = np.asarray(labels)
    if len(x) > max_points:
        sample = np.sort(np.random.default_rng(seed).choice(len(x), max_points, replace=False))
        x, labels = x[sample], labels[sample]
    if len(np.unique(labels)) < 2:
        return None
    predicted = np.empty_like(labels)
    per_fold = held_out_predictions(
        x, labels, folds, seed, lambda: RidgeClassifier(alpha=GENERALIZATION_ALPHA)
    )
    for held_out, guess in per_fold:
        predicted[held_out] = guess
    return float(cohen_kappa_score(labels, predicted))
