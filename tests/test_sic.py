"""SIC checked term by term against its formulas written out here with numpy, its semantic space
on a case small enough to check by hand, and against k-means where nouns name the classes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from confounded_features import write_confounded_features
from laicbench.methods.sic import (
    SIC_DEFAULTS,
    Sic,
    confident_centers,
    semantic_centers,
    semantic_space,
    sic_loss,
)

from laicbench.api.features import FeatureBundle
from laicbench.api.registry import methods
from laicbench.api.settings import DataSettings
from laicbench.cluster.metrics import cluster_accuracy
from laicbench.data.features_file import FeaturesFile


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_each_loss_term_is_its_formula():
    rng = np.random.default_rng(0)
    n, k, d = 6, 3, 4
    logits, partner = rng.standard_normal((n, k)), rng.standard_normal((n, k))
    features = rng.standard_normal((n, d))
    semantic = rng.standard_normal((k, d))
    semantic /= np.linalg.norm(semantic, axis=1, keepdims=True)
    p, q = _softmax(logits), _softmax(partner)
    consistency = -np.mean(np.log((p * q).sum(axis=1)))  # image consistency learning
    mean = p.mean(axis=0)
    entropy = -(mean * np.log(mean)).sum()  # entropy of the batch-mean prediction
    pseudo = np.array([np.argmax([features[i] @ semantic[c] for c in range(k)]) for i in range(n)])
    cross_entropy = -np.mean(np.log(p[np.arange(n), pseudo]))  # image-semantic consistency
    loss, parts = sic_loss(
        *(torch.tensor(a) for a in (logits, partner, features, semantic)),
        entropy_weight=5.0,
        ce_weight=0.1,
    )
    assert float(parts["consistency"]) == pytest.approx(consistency, rel=1e-10)
    assert float(parts["entropy"]) == pytest.approx(entropy, rel=1e-10)
    assert float(parts["cross_entropy"]) == pytest.approx(cross_entropy, rel=1e-10)
    expected = consistency - 5.0 * entropy + 0.1 * cross_entropy
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert float(parts["loss"]) == pytest.approx(expected, rel=1e-10)


def test_pseudo_labels_carry_no_gradient_into_the_features():
    features = torch.randn(5, 4, requires_grad=True)
    logits = torch.randn(5, 3, requires_grad=True)
    loss, _ = sic_loss(logits, torch.randn(5, 3), features, torch.randn(3, 4), 5.0, 0.1)
    loss.backward()
    assert features.grad is None and logits.grad is not None


def test_semantic_space_by_hand():
    s = 1 / np.sqrt(2)
    nouns = np.array(
        [
            [1, 0, 0],  # 0: nearest to center 0
            [0, 1, 0],  # 1: nearest to center 1
            [s, s, 0],  # 2: second nearest to both, and the direction of the mean noun
            [0, 0, 1],  # 3 and 4 cancel in the mean and are near no center
            [0, 0, -1],
        ],
        dtype=np.float32,
    )
    centers = torch.tensor([[2.0, 0, 0], [0, 3.0, 0]])  # k-means centers are not unit
    # gamma_r = 2: {0, 2} and {1, 2}; noun 2 has cosine 1 with the mean noun, the others 0.71
    assert semantic_space(centers, torch.tensor(nouns), 2, 0.05).tolist() == [0, 1]
    assert semantic_space(centers, torch.tensor(nouns), 1, 0.05).tolist() == [0, 1]
    assert semantic_space(centers, torch.tensor(nouns), 2, 0.5).tolist() == []  # 0.71 > 0.5


def test_confident_image_centers_and_semantic_centers_match_numpy():
    rng = np.random.default_rng(1)
    n, k, d, xi_c = 23, 3, 5, 0.8
    x = rng.standard_normal((n, d)).astype(np.float32)
    head = torch.nn.Linear(d, k)
    with torch.no_grad():
        scores = head(torch.tensor(x)).numpy()
        got = confident_centers(torch.tensor(x), head, xi_c, chunk=4).numpy()
    top = int((n // k) * xi_c)  # floor(23 / 3 * 0.8) = 5 highest-scoring rows per cluster
    expected = np.stack([x[np.argsort(-scores[:, c])[:top]].mean(axis=0) for c in range(k)])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-6)

    nouns = rng.standard_normal((12, d)).astype(np.float32)
    nouns /= np.linalg.norm(nouns, axis=1, keepdims=True)
    h, nearest = semantic_centers(torch.tensor(expected), torch.tensor(nouns), 4)
    cosine = expected @ nouns.T
    for c in range(k):
        four = np.argsort(-cosine[c])[:4]
        assert sorted(nearest[c].tolist()) == sorted(four.tolist())
        mean = nouns[four].mean(axis=0)
        np.testing.assert_allclose(h[c].numpy(), mean / np.linalg.norm(mean), atol=1e-6)


def test_official_values_per_dataset():
    assert Sic().config("demo-10") == SIC_DEFAULTS  # the official command-line defaults
    dogs = Sic().config("imagenet-dogs")
    assert dogs["weight_decay"] == 0.009 and dogs["gamma_r"] == 1000 and dogs["xi_a"] == 50
    assert Sic().config("cifar10")["ce_weight"] == 0.1
    assert Sic().config("stl10")["ce_weight"] == 1.0
    imagenet = Sic().config("imagenet")
    assert imagenet["batch_size"] == 4096 and imagenet["kmeans_points_per_centroid"] == 256
    assert Sic(ce_weight=0.3, batch_size=64).config("stl10")["ce_weight"] == 0.3  # given wins


@pytest.fixture(scope="module")
def confounded(tmp_path_factory):
    path = write_confounded_features(tmp_path_factory.mktemp("sic") / "confounded.npz")
    return FeaturesFile(path).load("features-file", "cpu", DataSettings())


def _acc(data, name: str, params: dict, seed: int) -> float:
    method = methods.get(name).from_params(params)
    labels = method.fit_predict(FeatureBundle(data, method.needs, "confounded", "cpu"), 10, seed)
    return 100 * cluster_accuracy(data.labels_test, np.asarray(labels))


# The official learning rate is for 50,000 raw CLIP features (norm about 10); these are 4,000
# unit-norm ones, so a larger rate, and 5 epochs. CE weight 1: SIC's value on most datasets.
FAST = {"epochs": 5, "lr": 1e-2, "ce_weight": 1.0, "kmeans_n_init": 2}


def test_sic_beats_kmeans_where_nouns_name_the_classes(confounded):
    kmeans = np.mean([_acc(confounded, "clip-kmeans", {}, seed) for seed in range(3)])
    sic = np.mean([_acc(confounded, "sic", FAST, seed) for seed in range(3)])
    assert kmeans < 40
    assert sic > kmeans + 30
    # the nouns are what helps: without the image-semantic term it is far worse
    assert _acc(confounded, "sic", {**FAST, "ce_weight": 0.0}, 0) < sic - 20


def test_selection_is_label_free_and_recorded(confounded):
    params = {**FAST, "epochs": 4, "selection": "lowest-loss"}
    method = methods.get("sic").from_params(params)
    method.fit_predict(FeatureBundle(confounded, method.needs, "confounded", "cpu"), 10, 0)
    art = method.artefacts_
    losses = [h["loss"] for h in art["loss_history"]]
    assert art["selected"]["epoch"] == int(np.argmin(losses))
    assert "lowest mean training loss" in art["selection"] and "no labels" in art["selection"]
    assert 0 < art["n_semantic_nouns"] <= 3000
    assert len(art["cluster_nouns"]) == 10
    json.dumps(art)
    last = methods.get("sic").from_params({**params, "selection": "last"})
    last.fit_predict(FeatureBundle(confounded, last.needs, "confounded", "cpu"), 10, 0)
    assert last.artefacts_["selected"]["epoch"] == 3
    assert "last epoch" in last.artefacts_["selection"]
