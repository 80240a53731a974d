"""The method plugin API: parameters, and what a FeatureBundle gives a method."""

from __future__ import annotations

import json

import numpy as np
import pytest

from laicbench.api import registry
from laicbench.api.errors import UserError
from laicbench.api.features import DatasetFeatures, FeatureBundle, Need, UndeclaredNeedError
from laicbench.api.method import Method, Resources
from laicbench.run.records import ResultStore
from laicbench.run.runner import execute_run
from laicbench.run.spec import RunSpec


class Toy(Method):
    """A toy method with three hyperparameters."""

    name = "toy"

    def __init__(self, alpha: float = 1.0, depth: int = 3, mode: str = "fast"):
        self.alpha = alpha
        self.depth = depth
        self.mode = mode


def test_get_params_returns_exactly_the_constructor_arguments():
    assert Toy.param_names() == ["alpha", "depth", "mode"]
    assert Toy().get_params() == {"alpha": 1.0, "depth": 3, "mode": "fast"}
    assert Toy(alpha=0.5, mode="slow").get_params() == {"alpha": 0.5, "depth": 3, "mode": "slow"}


def test_builtin_clip_kmeans_params():
    cls = registry.methods.get("clip-kmeans")
    assert cls().get_params() == {"n_init": 10, "max_iter": 300, "tol": 1e-4}
    assert cls.from_params({"n_init": 2}).get_params() == {
        "n_init": 2,
        "max_iter": 300,
        "tol": 1e-4,
    }


def test_from_params_overrides_defaults():
    method = Toy.from_params({"depth": 7})
    assert isinstance(method, Toy)
    assert method.get_params() == {"alpha": 1.0, "depth": 7, "mode": "fast"}
    assert Toy.from_params({}).get_params() == Toy().get_params()


def test_from_params_with_unknown_parameter_names_it():
    with pytest.raises(UserError) as info:
        Toy.from_params({"depht": 7})
    message = str(info.value)
    assert "'depht'" in message
    assert "'toy'" in message
    assert "did you mean 'depth'" in message
    assert "alpha, depth, mode" in message


NOUN_FEATURES = np.eye(3, 4, dtype=np.float32)
TEXT_ENCODER = object()  # a stand-in: the bundle passes it through untouched


@pytest.fixture
def loads() -> list[str]:
    """Which lazy loaders of the `features` fixture ran, in order."""
    return []


@pytest.fixture
def features(loads) -> DatasetFeatures:
    rng = np.random.default_rng(0)

    def load_nouns():
        loads.append("nouns")
        return NOUN_FEATURES

    def load_encoder():
        loads.append("encoder")
        return TEXT_ENCODER

    return DatasetFeatures(
        image_train=rng.standard_normal((6, 4)).astype(np.float32),
        image_test=rng.standard_normal((5, 4)).astype(np.float32),
        labels_train=np.array([0, 1, 0, 1, 0, 1]),
        labels_test=np.array([0, 1, 0, 1, 1]),
        class_names=["cat", "dog"],
        noun_words=["cat", "dog", "tree"],
        noun_features_loader=load_nouns,
        text_encoder_loader=load_encoder,
    )


ALL_INPUTS = ("noun_features", "noun_words", "text_encoder", "class_names")


def test_bundle_gives_image_features_but_never_labels(features):
    bundle = FeatureBundle(features, frozenset(), "toy-data", "cpu")
    np.testing.assert_array_equal(bundle.image_train, features.image_train)
    np.testing.assert_array_equal(bundle.image_test, features.image_test)
    assert bundle.dataset == "toy-data"
    assert bundle.device == "cpu"
    for attr in ("labels_train", "labels_test"):
        assert not hasattr(bundle, attr)


@pytest.mark.parametrize("attr", ALL_INPUTS)
def test_undeclared_need_raises(features, attr):
    bundle = FeatureBundle(features, frozenset(), "toy-data", "cpu")
    with pytest.raises(UndeclaredNeedError, match="did not declare"):
        getattr(bundle, attr)


@pytest.mark.parametrize(
    ("need", "granted"),
    [
        (Need.NOUNS, {"noun_features", "noun_words"}),
        (Need.TEXT_ENCODER, {"text_encoder"}),
        (Need.CLASS_NAMES, {"class_names"}),
    ],
)
def test_declared_need_grants_exactly_its_inputs(features, need, granted):
    bundle = FeatureBundle(features, frozenset({need}), "toy-data", "cpu")
    expected = {
        "noun_features": NOUN_FEATURES,
        "noun_words": features.noun_words,
        "text_encoder": TEXT_ENCODER,
        "class_names": features.class_names,
    }
    for attr in ALL_INPUTS:
        if attr in granted:
            assert getattr(bundle, attr) is expected[attr]
        else:
            with pytest.raises(UndeclaredNeedError):
                getattr(bundle, attr)


def test_inputs_are_loaded_lazily_and_once(features, loads):
    bundle = FeatureBundle(features, frozenset(Need), "toy-data", "cpu")
    _ = bundle.image_test, bundle.noun_words, bundle.class_names
    assert loads == []  # nothing built that the method did not read
    for _ in range(3):
        assert bundle.noun_features is NOUN_FEATURES
    assert loads == ["nouns"]
    assert bundle.text_encoder is TEXT_ENCODER
    assert bundle.text_encoder is TEXT_ENCODER
    assert loads == ["nouns", "encoder"]


def test_undeclared_need_does_not_load(features, loads):
    bundle = FeatureBundle(features, frozenset(), "toy-data", "cpu")
    with pytest.raises(UndeclaredNeedError):
        _ = bundle.noun_features
    with pytest.raises(UndeclaredNeedError):
        _ = bundle.text_encoder
    assert loads == []


def test_declared_need_that_the_dataset_lacks(features):
    bare = DatasetFeatures(
        image_train=features.image_train,
        image_test=features.image_test,
        labels_train=features.labels_train,
        labels_test=features.labels_test,
        class_names=features.class_names,
    )
    bundle = FeatureBundle(bare, frozenset(Need), "bare-data", "cpu")
    with pytest.raises(UndeclaredNeedError, match="provides no"):
        _ = bundle.noun_features
    assert list(bundle.class_names) == ["cat", "dog"]


def test_undeclared_need_becomes_an_error_record(cli, method_plugin, tmp_path):
    name, folder = method_plugin(body="return features.noun_features[:0]")
    results = tmp_path / "results"
    result = cli(
        "run", "--methods", name, "--seeds", "0", "--results-dir", results, "--include-path", folder
    )
    assert result.status == 1
    (path,) = results.rglob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "error"
    assert record["error"]["type"] == "UndeclaredNeedError"
    assert "Need.NOUNS" in record["error"]["message"]


@pytest.mark.parametrize(
    ("gpus", "requested", "used"),
    [(0, "cuda", "cpu"), (0, "cuda:1", "cpu"), (0.25, "cuda:1", "cuda:1"), (0.5, "cpu", "cpu")],
)
def test_only_methods_with_a_gpu_share_use_the_gpu(gpus, requested, used):
    assert Resources(cpus=1, gpus=gpus).device_for(requested) == used


def test_a_cpu_method_asked_for_cuda_runs_on_the_cpu(tmp_path):
    # no GPU here: were the request passed on, the run would fail on its first CUDA tensor
    record = execute_run(
        RunSpec("clip-kmeans", "demo", "tiny-random", 0, {}), ResultStore(tmp_path), "cuda"
    )
    assert record.status == "ok", record.error
    assert record.device.startswith("cpu")
