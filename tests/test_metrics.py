"""Hungarian-matched accuracy, NMI and ARI (laicbench.cluster.metrics)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from laicbench.cluster.metrics import (
    adjusted_rand_index,
    cluster_accuracy,
    evaluate,
    hungarian_match,
    normalized_mutual_info,
)


def brute_force_acc(y_true, y_pred) -> float:
    """Best accuracy over every one-to-one cluster -> class assignment (small cases only)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    best = 0
    if len(clusters) <= len(classes):
        assignments = (
            dict(zip(clusters, perm, strict=True))
            for perm in itertools.permutations(classes, len(clusters))
        )
    else:
        assignments = (
            dict(zip(chosen, classes, strict=True))
            for chosen in itertools.permutations(clusters, len(classes))
        )
    for mapping in assignments:
        correct = sum(1 for t, p in zip(y_true, y_pred, strict=True) if mapping.get(p) == t)
        best = max(best, correct)
    return best / len(y_true)


def test_permuted_perfect_labelling_scores_100():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [1, 1, 0, 0, 2, 2]
    scores = evaluate(y_true, y_pred)
    assert scores["acc"] == pytest.approx(100.0)
    assert scores["nmi"] == pytest.approx(100.0)
    assert scores["ari"] == pytest.approx(100.0)


def test_one_error_in_six():
    # clusters 1->0, 0->1, 2->2; the last sample (class 2) sits in cluster 0: 5 of 6 correct
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [1, 1, 0, 0, 2, 0]
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(5 / 6)
    assert evaluate(y_true, y_pred)["acc"] == pytest.approx(100 * 5 / 6)


def test_two_errors_in_eight():
    # class 0: clusters 3,3,3,5 ; class 1: clusters 5,5,3,5 -> 3->0, 5->1: 3 + 3 = 6 of 8
    y_true = [0, 0, 0, 0, 1, 1, 1, 1]
    y_pred = [3, 3, 3, 5, 5, 5, 3, 5]
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(6 / 8)


def test_more_clusters_than_classes():
    # class 0 is split over clusters 0 (2 samples) and 1 (1 sample); class 1 is cluster 2.
    # Best match 0->0, 2->1 covers 5 samples; cluster 1 stays unmatched, its sample is an error.
    y_true = [0, 0, 0, 1, 1, 1]
    y_pred = [0, 0, 1, 2, 2, 2]
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(5 / 6)
    mapping = hungarian_match(y_true, y_pred)
    assert mapping == {0: 0, 2: 1}


def test_fewer_clusters_than_classes():
    # classes 0 and 1 share cluster 0; class 2 is cluster 1. Only one of classes 0/1 can be
    # matched: 2 + 2 = 4 of 6.
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 0, 1, 1]
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    mapping = hungarian_match(y_true, y_pred)
    assert len(mapping) == 2
    assert mapping[1] == 2
    assert mapping[0] in (0, 1)


def test_single_cluster_for_everything():
    y_true = [0, 0, 0, 1, 2, 2]
    y_pred = [4, 4, 4, 4, 4, 4]
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(3 / 6)


def test_more_clusters_than_classes_with_a_negative_class_id():
    # Same structure as [5, 5, 0, 0] vs [0, 1, 2, 2]: two of the three clusters can be matched,
    # so one sample of the first class is an error whatever the class is called: 3 of 4.
    y_pred = [0, 1, 2, 2]
    assert cluster_accuracy([5, 5, 0, 0], y_pred) == pytest.approx(3 / 4)
    assert cluster_accuracy([-1, -1, 0, 0], y_pred) == pytest.approx(3 / 4)


@pytest.mark.parametrize("seed", range(6))
def test_acc_equals_brute_force_over_assignments(seed):
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 5))
    n_clusters = int(rng.integers(2, 6))
    y_true = rng.integers(n_classes, size=30)
    y_pred = rng.integers(n_clusters, size=30)
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(brute_force_acc(y_true, y_pred))


def _noisy_labelling(seed: int, n: int = 300, n_classes: int = 5, n_clusters: int = 5):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(n_classes, size=n)
    y_pred = y_true % n_clusters
    flip = rng.random(n) < 0.3
    y_pred[flip] = rng.integers(n_clusters, size=int(flip.sum()))
    return y_true, y_pred


@pytest.mark.parametrize(
    "relabel",
    [
        {0: 3, 1: 0, 2: 4, 3: 1, 4: 2},  # a permutation of the ids
        {0: 7, 1: 42, 2: 3, 3: 100, 4: 9},  # non-contiguous ids
        {0: 42, 1: 7, 2: -1, 3: 1000, 4: 5},  # including a negative id
    ],
)
@pytest.mark.parametrize("n_clusters", [5, 3, 7])
def test_metrics_invariant_to_relabelling_predictions(relabel, n_clusters):
    y_true, y_pred = _noisy_labelling(seed=n_clusters, n_clusters=n_clusters)
    relabel = {**relabel, 5: 55, 6: 66}
    renamed = np.array([relabel[int(p)] for p in y_pred])
    base, moved = evaluate(y_true, y_pred), evaluate(y_true, renamed)
    for metric in ("acc", "nmi", "ari"):
        assert moved[metric] == pytest.approx(base[metric], abs=1e-9)
    assert 0 < base["acc"] < 100  # a non-trivial case


@pytest.mark.parametrize(
    "relabel",
    [
        {0: 4, 1: 3, 2: 2, 3: 1, 4: 0},
        {0: 7, 1: 42, 2: 3, 3: 100, 4: 9},
        {0: -1, 1: 42, 2: 7, 3: 1000, 4: 5},
    ],
)
@pytest.mark.parametrize("n_clusters", [5, 3, 7])
def test_acc_invariant_to_relabelling_classes(relabel, n_clusters):
    y_true, y_pred = _noisy_labelling(seed=10 + n_clusters, n_clusters=n_clusters)
    renamed = np.array([relabel[int(t)] for t in y_true])
    assert cluster_accuracy(renamed, y_pred) == pytest.approx(cluster_accuracy(y_true, y_pred))


@pytest.mark.parametrize("seed", range(3))
def test_evaluate_is_x100_and_matches_sklearn(seed):
    y_true, y_pred = _noisy_labelling(seed=seed, n_clusters=6)
    scores = evaluate(y_true, y_pred)
    assert set(scores) == {"acc", "nmi", "ari"}
    assert scores["acc"] == pytest.approx(100 * cluster_accuracy(y_true, y_pred))
    assert scores["nmi"] == pytest.approx(100 * normalized_mutual_info_score(y_true, y_pred))
    assert scores["ari"] == pytest.approx(100 * adjusted_rand_score(y_true, y_pred))
    assert 1 < scores["acc"] <= 100
    assert 1 < scores["nmi"] <= 100
    assert all(isinstance(v, float) for v in scores.values())


EDGE_LABELLINGS = [
    ([0, 0, 0, 0], [0, 0, 0, 0]),  # one group each
    ([0, 0, 0, 0], [0, 1, 2, 3]),  # one group vs singletons
    ([0, 1, 2, 3], [0, 1, 2, 3]),  # singletons both
    ([0, 1, 2, 3], [5, 5, 5, 5]),
    ([0, 0, 1, 1], [1, 1, 0, 0]),
    ([7], [3]),  # one sample: no pairs
    ([0, 1], [0, 0]),
    ([1, 1, 1], [0, 1, 0]),
]


def _assert_nmi_and_ari_like_sklearn(y_true, y_pred) -> None:
    assert normalized_mutual_info(y_true, y_pred) == pytest.approx(
        normalized_mutual_info_score(y_true, y_pred), abs=1e-12
    )
    assert adjusted_rand_index(y_true, y_pred) == pytest.approx(
        adjusted_rand_score(y_true, y_pred), abs=1e-12
    )


@pytest.mark.parametrize(("y_true", "y_pred"), EDGE_LABELLINGS)
def test_nmi_and_ari_edge_cases_match_sklearn(y_true, y_pred):
    _assert_nmi_and_ari_like_sklearn(y_true, y_pred)


def test_nmi_and_ari_match_sklearn_on_random_labellings():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 400))
        y_true = rng.integers(0, int(rng.integers(1, 15)), n)
        y_pred = rng.integers(0, int(rng.integers(1, 15)), n) * 3 - 4
        if rng.random() < 0.5:  # correlated: mostly a relabelled copy of y_true
            y_pred = np.where(rng.random(n) < 0.2, y_pred, y_true * 2 + 1)
        _assert_nmi_and_ari_like_sklearn(y_true, y_pred)


def test_ari_exact_at_imagenet_size():
    # 1.28M samples: the pair counts' products exceed int64
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 1000, 1_281_167)
    y_pred = np.where(rng.random(y_true.size) < 0.3, rng.integers(0, 1000, y_true.size), y_true)
    assert adjusted_rand_index(y_true, y_pred) == pytest.approx(
        adjusted_rand_score(y_true, y_pred), abs=1e-12
    )
    assert 0.4 < adjusted_rand_index(y_true, y_pred) < 0.6


def test_evaluate_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        evaluate([0, 1, 1], [0, 1])


def test_cluster_accuracy_rejects_empty_labelling():
    with pytest.raises(ValueError):
        cluster_accuracy([], [])


@pytest.mark.parametrize("n_clusters", [3, 5, 8])
def test_hungarian_match_is_one_to_one(n_clusters):
    y_true, y_pred = _noisy_labelling(seed=20 + n_clusters, n_clusters=n_clusters)
    y_pred = y_pred * 10 + 3  # non-contiguous cluster ids
    mapping = hungarian_match(y_true, y_pred)
    assert len(mapping) == min(5, n_clusters)
    assert len(set(mapping.values())) == len(mapping)  # injective
    assert set(mapping) <= set(np.unique(y_pred).tolist())
    assert set(mapping.values()) <= set(np.unique(y_true).tolist())
    assert all(isinstance(k, int) and isinstance(v, int) for k, v in mapping.items())
    # the map achieves the reported accuracy
    correct = sum(mapping.get(int(p)) == t for t, p in zip(y_true, y_pred, strict=True))
    assert correct / len(y_true) == pytest.approx(cluster_accuracy(y_true, y_pred))


def test_hungarian_match_inverts_a_permutation():
    y_true = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    perm = {0: 2, 1: 3, 2: 0, 3: 1}
    y_pred = np.array([perm[t] for t in y_true])
    assert hungarian_match(y_true, y_pred) == {c: t for t, c in perm.items()}
