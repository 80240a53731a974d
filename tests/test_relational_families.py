"""ours-notrain on the relational generator families (laicbench.datasets.relational_families):
the ridge penalty chosen by GCV, the sharpened relations, and the targets against tac-notrain and
clip-kmeans, each family at a small size."""

from __future__ import annotations

import numpy as np
import pytest
from laicbench.datasets.relational_families import family
from laicbench.methods.clip_kmeans import ClipKMeans
from laicbench.methods.ours import RIDGE_GRID, OursNoTrain
from laicbench.methods.tac import TacNoTrain

from laicbench.api.features import FeatureBundle
from laicbench.cluster.metrics import cluster_accuracy
from laicbench.cluster.relational import RidgeRelations, gcv_curve

SMALL = {"n_train": 1500, "n_test": 600}
FEWER_RESTARTS = {"n_init": 5, "select_n_init": 3}  # the same for every method compared


def _unit(rng, n, d):
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _acc(method, setting, seed: int = 0) -> float:
    data = setting.draw()
    bundle = FeatureBundle(data, type(method).needs, "family", "cpu")
    return 100 * cluster_accuracy(
        data.labels_test, method.fit_predict(bundle, setting.n_classes, seed)
    )


@pytest.mark.parametrize("n_nouns", [5, 40])  # fewer nouns than dimensions, and more
def test_gcv_curve_is_the_explicit_generalized_cross_validation(n_nouns):
    rng = np.random.default_rng(0)
    x, t = _unit(rng, 30, 12), _unit(rng, n_nouns, 12)
    penalties = np.array([0.01, 0.3, 3.0])
    expected = []
    for lam in penalties:
        hat = t.T @ t @ np.linalg.inv(t.T @ t + lam * np.eye(12))  # x -> x H, in d dims
        residual = np.sum((x - x @ hat) ** 2) / (30 * 12)
        expected.append(residual / (1 - np.trace(hat) / 12) ** 2)
    np.testing.assert_allclose(gcv_curve(t, x, penalties), expected, rtol=1e-9)


def test_sharpened_relations_are_the_softmax_weighted_nouns():
    rng = np.random.default_rng(1)
    train, x, t = _unit(rng, 50, 12), _unit(rng, 20, 12), _unit(rng, 40, 12)
    rel = RidgeRelations.fit(t, 0.5)
    explicit_train = rel.relations(train)  # N x M, as the column scale avoids building it
    c = (rel.relations(x) - explicit_train.mean(axis=0)) / explicit_train.std(axis=0)
    z = (c - c.mean(axis=1, keepdims=True)) / c.std(axis=1, keepdims=True)
    p = np.exp(z / 0.3) / np.exp(z / 0.3).sum(axis=1, keepdims=True)
    expected = p @ t / np.linalg.norm(p @ t, axis=1, keepdims=True)
    np.testing.assert_allclose(rel.with_column_scale(train).sharpened(x, 0.3), expected, atol=1e-5)


def test_ridge_lambda_is_chosen_by_gcv_and_recorded():
    setting = family("nuisance-1.3", **SMALL)
    data = setting.draw()
    bundle = FeatureBundle(data, OursNoTrain.needs, "family", "cpu")
    method = OursNoTrain(n_init=3, select_n_init=3)
    method.fit_predict(bundle, setting.n_classes, 0)
    selection = method.artefacts_["selection"]
    assert selection["grid"] == list(RIDGE_GRID) and len(selection["curve"]) == len(RIDGE_GRID)
    assert selection["chosen"] == RIDGE_GRID[int(np.argmin(selection["curve"]))]
    assert method.artefacts_["resolved"]["ridge_lambda"] == selection["chosen"]
    fixed = OursNoTrain(ridge_lambda=7.0, n_init=3, select_n_init=3)
    fixed.fit_predict(bundle, setting.n_classes, 0)
    assert fixed.artefacts_["resolved"]["ridge_lambda"] == 7.0
    assert fixed.artefacts_["selection"].startswith("none: fixed")


# families where nouns name the classes: ours-notrain within 2 points of tac-notrain
@pytest.mark.parametrize(
    "name, changes",
    [
        ("nuisance-1.6", {}),
        ("loose-2-nouns", {}),
        ("style-nouns", {}),
        ("zipf-50", {"n_train": 2400, "n_test": 1000}),
    ],
)
def test_ours_notrain_keeps_up_with_tac_where_nouns_name_the_classes(name, changes):
    setting = family(name, **{**SMALL, **changes})
    ours = _acc(OursNoTrain(**FEWER_RESTARTS), setting)
    tac = _acc(TacNoTrain(**FEWER_RESTARTS), setting)
    assert ours >= tac - 2, (ours, tac)


def test_ours_notrain_stays_near_kmeans_where_no_noun_names_a_class():
    setting = family("no-class-nouns", **SMALL)
    ours = _acc(OursNoTrain(**FEWER_RESTARTS), setting)
    kmeans = _acc(ClipKMeans(n_init=5), setting)
    assert ours >= kmeans - 5, (ours, kmeans)


def test_plain_relation_rows_fall_to_the_nuisance_where_sharpened_ones_do_not():
    """The regression behind the sharpened representation: at nuisance 1.6 the plain relation
    rows cluster by style whatever the penalty, as image-only k-means does."""
    setting = family("nuisance-1.6", **SMALL)
    plain = _acc(OursNoTrain(representation="relation", **FEWER_RESTARTS), setting)
    sharpened = _acc(OursNoTrain(**FEWER_RESTARTS), setting)
    assert plain < 50 and sharpened > 90, (plain, sharpened)
