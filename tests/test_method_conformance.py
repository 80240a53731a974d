"""The method contract, checked for every registered method (built-ins and any plugin that an
installed package registers): a new method passes these without a line of test of its own."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import save_as_features_file

from laicbench.api import registry
from laicbench.api.errors import UserError
from laicbench.api.features import FeatureBundle, Need, UndeclaredNeedError
from laicbench.api.method import Method, check_method_class
from laicbench.api.outputs import MethodOutputs
from laicbench.api.settings import DataSettings
from laicbench.data.features_file import FeaturesFile
from laicbench.data.resolve import resolve_dataset

METHODS = registry.methods.names()


@pytest.fixture(scope="module")
def demo():
    return resolve_dataset("demo-10").load("tiny-random", "cpu", DataSettings())


@pytest.fixture(scope="module")
def features_file(demo, tmp_path_factory) -> FeaturesFile:
    """The demo's arrays as a features file (nouns, no text encoder)."""
    return FeaturesFile(save_as_features_file(demo, tmp_path_factory.mktemp("conf") / "demo.npz"))


def _labels(cls: type[Method], data, needs, seed: int = 0) -> np.ndarray:
    return np.asarray(
        cls.from_params(cls.quick_params).fit_predict(
            FeatureBundle(data, needs, "demo-10", "cpu"), 10, seed
        )
    )


@pytest.mark.parametrize("name", METHODS)
def test_params_round_trip(name):
    cls = registry.methods.get(name)
    params = cls().get_params()
    assert list(params) == cls.param_names()
    assert cls(**params).get_params() == params
    assert cls.from_params(params).get_params() == params


@pytest.mark.parametrize("name", METHODS)
def test_what_a_method_leaves_for_the_harness_is_well_formed(name, demo):
    cls = registry.methods.get(name)
    method = cls.from_params(cls.quick_params)
    method.fit_predict(FeatureBundle(demo, cls.needs, "demo-10", "cpu"), 10, 0)
    json.dumps(getattr(method, "artefacts_", {}), default=_numpy_scalar)  # stored in the record
    outputs = getattr(method, "outputs_", MethodOutputs())
    assert isinstance(outputs, MethodOutputs)
    outputs.check(len(demo.labels_train), len(demo.labels_test))


def _numpy_scalar(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


@pytest.mark.parametrize("name", METHODS)
def test_labels_are_seeded_and_well_formed_on_the_demo(name, demo):
    cls = registry.methods.get(name)
    first = _labels(cls, demo, cls.needs)
    assert first.shape == demo.labels_test.shape
    assert np.issubdtype(first.dtype, np.integer)
    assert first.min() >= 0 and first.max() < 10
    np.testing.assert_array_equal(first, _labels(cls, demo, cls.needs))  # same seed, same labels


@pytest.mark.parametrize("name", [m for m in METHODS if registry.methods.get(m).needs])
def test_each_undeclared_input_is_refused(name, demo):
    cls = registry.methods.get(name)
    for need in cls.needs:
        with pytest.raises(UndeclaredNeedError, match=need.value):
            _labels(cls, demo, cls.needs - {need})


@pytest.mark.parametrize("name", METHODS)
def test_runs_on_a_features_file_or_is_refused_up_front(name, features_file):
    cls = registry.methods.get(name)
    lacking = [need for need in cls.needs if features_file.lacks(need)]
    if Need.TEXT_ENCODER in cls.needs:
        assert lacking  # a features file never has a text tower: the sweep refuses the method
        return
    assert not lacking
    data = features_file.load("features-file", "cpu", DataSettings())
    labels = _labels(cls, data, cls.needs)
    assert labels.shape == data.labels_test.shape and 0 <= labels.min() <= labels.max() < 10


class _NotAMethod:
    def fit_predict(self, features, n_clusters, seed):
        return np.zeros(len(features.image_test), dtype=np.int64)


class _NoDefault(Method):
    def __init__(self, alpha: float):
        self.alpha = alpha

    def fit_predict(self, features, n_clusters, seed):
        return np.zeros(len(features.image_test), dtype=np.int64)


class _NoFitPredict(Method):
    pass


class _UnknownDatasetSetting(_NoDefault):
    dataset_settings = {"cifar10": {"beta": 1}}

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (_NotAMethod, "is not a subclass of laicbench.api.method.Method"),
        (_NoDefault, "__init__ parameter(s) alpha have no default"),
        (_NoFitPredict, "does not define fit_predict"),
        (_UnknownDatasetSetting, "dataset_settings name beta, which are not parameters"),
    ],
)
def test_a_class_that_breaks_the_contract_is_refused_at_registration(cls, message):
    with pytest.raises(UserError, match=re.escape(message)):
        check_method_class("broken", cls)


def test_a_broken_plugin_file_is_one_line_before_anything_runs(cli, write_plugin, tmp_path):
    folder = write_plugin(
        """
        import numpy as np
        from laicbench.api.registry import register_method

        @register_method("not-a-method")
        class NotAMethod:
            def fit_predict(self, features, n_clusters, seed):
                return np.zeros(len(features.image_test), dtype=np.int64)
        """
    )
    result = cli("run", "--include-path", folder, "--methods", "not-a-method", "--dry-run",
                 "--results-dir", tmp_path / "r")  # fmt: skip
    assert result.status == 2
    assert len(result.err_lines) == 1
    assert "method 'not-a-method'" in result.err_lines[0]
    assert "is not a subclass of laicbench.api.method.Method" in result.err_lines[0]
