"""The offline demo benchmark (laicbench.datasets.demo)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from laicbench.datasets.demo import Demo10, simulate

from laicbench.api import registry
from laicbench.api.backbone_spec import BackboneSpec
from laicbench.api.features import FeatureBundle
from laicbench.api.settings import DataSettings
from laicbench.cluster.metrics import evaluate
from laicbench.data.resolve import resolve_dataset


def load(name: str):
    return resolve_dataset(name).load(BackboneSpec.parse("tiny-random"), "cpu", DataSettings())


@pytest.fixture(scope="module")
def demo():
    return load("demo")


def test_demo_alias_is_demo_10(demo):
    assert resolve_dataset("demo").name == "demo-10"
    assert load("demo-10") is demo  # simulated once per process


def test_documented_shapes(demo):
    assert demo.image_train.shape == (2000, 128)
    assert demo.image_test.shape == (1000, 128)
    assert demo.image_train.dtype == demo.image_test.dtype == np.float32
    assert demo.labels_train.shape == (2000,)
    assert demo.labels_test.shape == (1000,)
    assert demo.n_classes == 10
    assert len(set(demo.class_names)) == 10
    np.testing.assert_array_equal(np.bincount(demo.labels_train), [200] * 10)
    np.testing.assert_array_equal(np.bincount(demo.labels_test), [100] * 10)
    assert len(demo.noun_words) == 1000
    assert len(set(demo.noun_words)) == 1000
    assert set(demo.class_names) <= set(demo.noun_words)  # class names are drawn from the nouns
    assert demo.noun_features.shape == (1000, 128)
    assert demo.info["n_train"] == 2000
    assert demo.info["n_test"] == 1000
    assert demo.info["n_nouns"] == 1000


def test_features_are_unit_norm(demo):
    for x in (demo.image_train, demo.image_test, demo.noun_features):
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_demo_is_deterministic_and_seeded(demo):
    config = Demo10.config
    again = simulate.__wrapped__(config)  # bypass the per-process cache: a fresh simulation
    for attr in ("image_train", "image_test", "labels_train", "labels_test"):
        np.testing.assert_array_equal(getattr(again, attr), getattr(demo, attr))
    np.testing.assert_array_equal(again.noun_features, demo.noun_features)
    assert list(again.class_names) == list(demo.class_names)
    assert list(again.noun_words) == list(demo.noun_words)

    other = simulate(dataclasses.replace(config, seed=config.seed + 1))
    assert other.image_test.shape == demo.image_test.shape
    assert not np.allclose(other.image_test, demo.image_test)
    assert list(other.noun_words) != list(demo.noun_words)
    assert other.info["config"]["seed"] == config.seed + 1


def test_noun_features_are_the_encoded_words(demo):
    encoder = demo.text_encoder
    picks = [0, 1, 17, 500, 999]
    words = [demo.noun_words[i] for i in picks]
    np.testing.assert_allclose(encoder.encode_words(words), demo.noun_features[picks], atol=1e-5)


def test_demo_50_shapes():
    data = load("demo-50")
    assert data.image_train.shape == (5000, 128)
    assert data.image_test.shape == (2500, 128)
    assert data.n_classes == 50
    np.testing.assert_array_equal(np.bincount(data.labels_test), [50] * 50)
    assert len(data.noun_words) == 2000


def test_kmeans_is_well_below_zero_shot(demo):
    """Image-only k-means suffers from the styles; class-name text features do not."""
    text = demo.text_encoder.encode_words(demo.class_names)
    zero_shot = evaluate(demo.labels_test, (demo.image_test @ text.T).argmax(axis=1))["acc"]

    method = registry.methods.get("clip-kmeans")()
    bundle = FeatureBundle(demo, method.needs, "demo-10", "cpu")
    labels = method.fit_predict(bundle, demo.n_classes, seed=0)
    kmeans = evaluate(demo.labels_test, labels)["acc"]

    assert zero_shot > 70
    assert kmeans < zero_shot - 10
    assert kmeans > 100 / demo.n_classes + 10  # but far better than chance


def test_demo_refuses_another_backbone():
    from laicbench.api.errors import UserError

    ds = resolve_dataset("demo")
    assert ds.backbone_for(None, "ViT-B-32:openai") == "tiny-random"
    with pytest.raises(UserError, match="tiny-random"):
        ds.backbone_for("ViT-B-32:openai", "ViT-B-32:openai")


@pytest.mark.slow
def test_nuisance_benchmark_confounds_kmeans_but_not_relations():
    """The second generator: many nouns, few naming each class, a nuisance in weakly described
    noun directions that image-only k-means follows."""
    data = load("demo-nuisance")
    assert data.image_train.shape == (30_000, 128) and data.image_test.shape == (5_000, 128)
    assert len(data.noun_words) == 5_000 and data.info["related_nouns"] <= 30
    assert data.info["generator"] == "laicbench.datasets.demo_nuisance"
    scores = {}
    for name in ("clip-kmeans", "ours-notrain"):
        cls = registry.methods.get(name)
        bundle = FeatureBundle(data, cls.needs, "demo-nuisance", "cpu")
        scores[name] = evaluate(data.labels_test, cls().fit_predict(bundle, 10, seed=0))["acc"]
    assert scores["clip-kmeans"] < 40
    assert scores["ours-notrain"] > 90
