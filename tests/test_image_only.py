"""The image-only baselines: each central computation against its formula written out here, an
accuracy floor where the image features alone separate the classes, and their label-free
selection rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from laicbench.methods.scan import scan_loss
from laicbench.methods.temi import temi_loss
from laicbench.methods.turtle import generalization_score, turtle_loss

from laicbench.api.features import DatasetFeatures, FeatureBundle
from laicbench.api.registry import methods
from laicbench.cluster.knn import knn_graph
from laicbench.cluster.metrics import cluster_accuracy


def _blobs(seed: int = 0, k: int = 4, dim: int = 16, n_train: int = 400, n_test: int = 200):
    """Features where the image features alone separate `k` classes (unit-norm centres, small
    noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def split(n):
        labels = np.arange(n) % k
        x = centres[labels] + 0.15 * rng.standard_normal((n, dim))
        return x.astype(np.float32), labels

    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    return DatasetFeatures(x_train, x_test, y_train, y_test, [f"c{i}" for i in range(k)])


def _acc(name: str, params: dict, seed: int = 0) -> float:
    data = _blobs(seed)
    method = methods.get(name).from_params(params)
    labels = method.fit_predict(FeatureBundle(data, frozenset(), "blobs", "cpu"), 4, seed)
    return 100 * cluster_accuracy(data.labels_test, np.asarray(labels))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("spectral", {}),
        pytest.param(
            "umap-ward", {"n_neighbors": 15, "n_components": 5}, marks=pytest.mark.slow
        ),  # UMAP's compilation: 25 s
        ("scan", {"epochs": 30, "batch_size": 128}),
        # the official learning rates are for tens of thousands of images: larger ones here
        ("temi", {"epochs": 40, "batch_size": 64, "n_heads": 2, "warmup_epochs": 2, "lr": 1e-2}),
        ("turtle", {"iterations": 300, "outer_lr": 1e-2, "inner_lr": 1e-2}),
    ],
)
def test_separable_features_are_clustered(name, params):
    assert _acc(name, params) >= 95.0


def test_scan_loss_is_its_formula():
    p = torch.tensor([[[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]])
    q = torch.tensor([[[0.8, 0.2], [0.1, 0.9], [0.6, 0.4]]])
    dots = [0.9 * 0.8 + 0.1 * 0.2, 0.2 * 0.1 + 0.8 * 0.9, 0.5 * 0.6 + 0.5 * 0.4]
    mean = [(0.9 + 0.2 + 0.5) / 3, (0.1 + 0.8 + 0.5) / 3]
    entropy = -sum(m * np.log(m) for m in mean)
    expected = -np.mean(np.log(dots)) - 5.0 * entropy
    assert scan_loss(p, q, 5.0).item() == pytest.approx(expected, rel=1e-6)


def test_temi_loss_is_its_formula():
    rng = np.random.default_rng(0)

    def probs(shape):
        x = rng.random(shape)
        return x / x.sum(axis=-1, keepdims=True)

    heads, n, k, beta = 2, 3, 4, 0.6
    s0, s1, t0, t1 = (probs((heads, n, k)) for _ in range(4))
    marginal = probs((heads, k))
    expected = np.zeros(heads)
    for h in range(heads):
        for i in range(n):
            w = np.mean([np.dot(t0[g, i], t1[g, i]) for g in range(heads)])
            a = np.log(np.sum((s0[h, i] * t1[h, i]) ** beta / marginal[h]))
            b = np.log(np.sum((s1[h, i] * t0[h, i]) ** beta / marginal[h]))
            expected[h] += -w * (a + b) / 2 / n
    tensors = [torch.tensor(a) for a in (s0, s1, t0, t1)]
    got = temi_loss(tensors[:2], tensors[2:], torch.tensor(marginal), beta)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)


def test_turtle_outer_loss_is_its_formula():
    tau = torch.tensor([[0.7, 0.3], [0.4, 0.6]], requires_grad=True)
    logits = torch.tensor([[2.0, 0.0], [0.5, 1.5]])
    log_soft = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    ce = (
        -(0.7 * log_soft[0, 0] + 0.3 * log_soft[0, 1] + 0.4 * log_soft[1, 0] + 0.6 * log_soft[1, 1])
        / 2
    )
    mean = [0.55, 0.45]
    entropy = -sum(m * np.log(m) for m in mean)
    loss, parts = turtle_loss(tau, logits, 10.0)
    assert loss.item() == pytest.approx(ce.item() - 10.0 * entropy, rel=1e-6)
    assert float(parts["entropy"]) == pytest.approx(entropy, rel=1e-6)
    loss.backward()
    assert tau.grad is not None and tau.grad.abs().sum() > 0  # the encoder learns through tau


def test_turtle_generalization_score_separates_learnable_from_random_labels():
    data = _blobs()
    learnable = generalization_score(data.image_train, data.labels_train, 5, 0)
    random = generalization_score(
        data.image_train, np.random.default_rng(1).integers(4, size=400), 5, 0
    )
    assert learnable > 0.95 and random < 0.45


def test_turtle_logistic_regression_predicts_as_scikit_learns():
    """Same objective (C = 1) and stopping rule: the torch solver's held-out predictions are
    scikit-learn's, on learnable and on partly redrawn labels."""
    from sklearn.linear_model import LogisticRegression

    from laicbench.cluster.logistic import TorchLogisticRegression

    data = _blobs(k=5, dim=32)
    rng = np.random.default_rng(2)
    noisy = np.where(rng.random(400) < 0.3, rng.integers(5, size=400), data.labels_train)
    x = data.image_train + 0.5 * rng.standard_normal(data.image_train.shape).astype(np.float32)
    for labels in (data.labels_train, noisy):
        ours = TorchLogisticRegression().fit(torch.as_tensor(x[:300]), labels[:300])
        theirs = LogisticRegression(C=1.0, max_iter=1000).fit(x[:300], labels[:300])
        agree = np.mean(ours.predict(x[300:]) == theirs.predict(x[300:]))
        assert agree >= 0.98
        np.testing.assert_allclose(ours.weight_.detach().numpy().T, theirs.coef_, atol=2e-2)


def test_turtle_selects_gamma_by_its_score_and_records_it():
    data = _blobs()
    method = methods.get("turtle").from_params({"iterations": 100, "gamma_grid": [0.0, 10.0]})
    method.fit_predict(FeatureBundle(data, frozenset(), "blobs", "cpu"), 4, 0)
    scores = method.artefacts_["generalization_scores"]
    assert set(scores) == {"0.0", "10.0"}
    assert method.artefacts_["resolved"]["gamma"] == float(max(scores, key=scores.get))
    assert "no labels" in method.artefacts_["selection"]
    json.dumps(method.artefacts_)


def test_scan_and_temi_keep_their_lowest_loss_head():
    data = _blobs()
    bundle = FeatureBundle(data, frozenset(), "blobs", "cpu")
    scan = methods.get("scan").from_params({"epochs": 3, "batch_size": 128, "n_heads": 3})
    scan.fit_predict(bundle, 4, 0)
    assert 0 <= scan.artefacts_["selected"]["head"] < 3
    assert "lowest SCAN loss" in scan.artefacts_["selection"]
    temi = methods.get("temi").from_params({"epochs": 2, "batch_size": 128, "n_heads": 3})
    temi.fit_predict(bundle, 4, 0)
    assert 0 <= temi.artefacts_["selected_head"] < 3
    assert "lowest TEMI loss" in temi.artefacts_["selection"]


def test_scan_self_labelling_trains_on_confident_predictions():
    data = _blobs()
    bundle = FeatureBundle(data, frozenset(), "blobs", "cpu")
    params = {"epochs": 20, "batch_size": 128, "self_label": True, "self_label_epochs": 5}
    scan = methods.get("scan").from_params(params)
    labels = scan.fit_predict(bundle, 4, 0)
    assert len(scan.artefacts_["self_label_history"]) == 5
    assert scan.artefacts_["self_label_confident_fraction"] > 0
    assert cluster_accuracy(data.labels_test, labels) > 0.9


def test_umap_ward_above_its_dense_limit_is_connectivity_constrained():
    data = _blobs()
    method = methods.get("umap-ward").from_params({"dense_limit": 100, "n_components": 5})
    labels = method.fit_predict(FeatureBundle(data, frozenset(), "blobs", "cpu"), 4, 0)
    assert "constrained to the 30-NN graph" in method.artefacts_["resolved"]["agglomerative"]
    assert cluster_accuracy(data.labels_test, labels) > 0.9


def test_spectral_auto_solver_takes_amg_from_its_size_limit_and_records_it(monkeypatch):
    import laicbench.methods.spectral as spectral

    data = _blobs()
    bundle = FeatureBundle(data, frozenset(), "blobs", "cpu")
    below = methods.get("spectral")()
    below.fit_predict(bundle, 4, 0)
    assert below.artefacts_["resolved"]["eigen_solver"] == "arpack"
    monkeypatch.setattr(spectral, "ARPACK_BELOW", len(data.image_test))
    above = methods.get("spectral")()
    labels = above.fit_predict(bundle, 4, 0)
    assert above.artefacts_["resolved"]["eigen_solver"] == "amg"
    assert cluster_accuracy(data.labels_test, labels) > 0.9


def test_knn_graph_is_the_symmetrised_connectivity_with_self_loops():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], dtype=np.float32)
    graph = knn_graph(x, 1).toarray()
    expected = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=float)
    np.testing.assert_array_equal(graph, expected)
    assert (graph == graph.T).all()


def test_heavy_methods_stay_out_of_the_default_sweep_but_not_out_of_all():
    from laicbench.run.plan import expand_methods

    default = expand_methods(["default"])
    assert {"spectral", "scan"} <= set(default)
    assert not {"temi", "turtle", "umap-ward"} & set(default)
    assert {"temi", "turtle", "umap-ward"} <= set(expand_methods(["all"]))
