"""Every method with a GPU share, run on the virtual CUDA device (tests/virtual_cuda.py): nothing
CUDA would reject, no heavy work left on the CPU beyond the steps the README names, and host
syncs bounded per training step. New methods are checked as soon as they are registered."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from virtual_cuda import virtual_cuda

from laicbench.api import registry
from laicbench.api.backbone_spec import BackboneSpec
from laicbench.api.features import DatasetFeatures, FeatureBundle, Need
from laicbench.api.settings import DataSettings
from laicbench.cluster.tensors import torch_threads
from laicbench.data.backbone import load_backbone
from laicbench.data.resolve import resolve_dataset

# Non-default paths of the built-in methods, as parameters over quick_params: each is run as its
# own case besides the quick_params case that every GPU method gets.
PATHS: dict[str, dict[str, dict[str, Any]]] = {
    "scan": {"self-labelling": {"self_label": True, "self_label_epochs": 2}},
    "turtle": {
        "gamma grid": {"gamma_grid": [1.0, 10.0], "cv_folds": 2},
        "two spaces": {"spaces": ["other:space"]},
    },
    "ours": {
        "mini-batches": {
            "batch_size": 256,
            "epochs": 3,
            "optimizer": "adam",
            "balance_weight": 0.1,
        }
    },
    "sic": {
        "options": {
            "center_init": True,
            "selection": "lowest-loss",
            "kmeans_points_per_centroid": 64,
            "batch_size": 256,
        }
    },
    "ntk-sc": {"sparse": {"dense_limit": 0, "n_neighbors": 20}},
    "temi": {"several steps per epoch": {"batch_size": 256}},
}
# Steps that run on the CPU inside a GPU method on purpose, as (file of the call, what is
# called), which the README's Executors section names; any other heavy CPU work found inside a
# GPU method's run fails the test.
CPU_STEPS: dict[str, tuple[tuple[str, str], ...]] = {
    "ntk-sc": (
        ("methods/ntk_sc.py", "SciPy sparse matrix product"),  # the sparse diffusion (RAD)
        ("methods/spectral.py", "scikit-learn spectral embedding"),
    ),
}
# Host syncs per training step at most at any one call site (reads once per epoch and the
# label-free selection between epochs stay below with a few steps per epoch); a read on every
# step is 1.
SYNCS_PER_STEP = 0.5


def gpu_methods() -> list[str]:
    """The registered methods that ask for a GPU share."""
    return [n for n in registry.methods.names() if registry.methods.get(n).resources.gpus > 0]


def cases() -> list[Any]:
    out = []
    for name in gpu_methods():
        out.append(pytest.param(name, {}, id=f"{name}-quick"))
        for path, params in PATHS.get(name, {}).items():
            out.append(pytest.param(name, params, id=f"{name}-{path}"))
    return out


@pytest.fixture(scope="module")
def demo() -> DatasetFeatures:
    """The demo's features with 400 of its test images (NTK-SC's dense diffusion is cubic in
    them), its nouns cached; its text tower loads on CUDA in the run."""
    data = resolve_dataset("demo-10").load("tiny-random", "cpu", DataSettings())
    assert data.noun_features is not None and data.noun_template_features is not None
    spec = BackboneSpec.parse("tiny-random")
    return dataclasses.replace(
        data,
        image_test=data.image_test[:400],
        labels_test=data.labels_test[:400],
        noun_features_loader=lambda: data.noun_features,
        noun_template_features_loader=lambda: data.noun_template_features,
        text_encoder_loader=lambda: load_backbone(spec, "cuda").text_encoder,
    )


def with_other_space(data: DatasetFeatures) -> DatasetFeatures:
    """`data` with a second representation space (a fixed random projection of the features)."""
    projection = np.random.default_rng(0).standard_normal((data.image_train.shape[1], 32))

    def loader(name: str) -> tuple[np.ndarray, np.ndarray]:
        del name
        return (
            (data.image_train @ projection).astype(np.float32),
            (data.image_test @ projection).astype(np.float32),
        )

    return dataclasses.replace(data, image_space_loader=loader)


def run_on_virtual_cuda(name: str, params: dict[str, Any], data: DatasetFeatures):
    """(labels, report) of method `name` with quick_params and `params` on the demo, run on
    the virtual CUDA device."""
    cls = registry.methods.get(name)
    method = cls.from_params({**cls.quick_params, **params})
    needs = cls.needs | ({Need.IMAGE_SPACES} if cls.extra_backbones(params) else set())
    bundle = FeatureBundle(data, frozenset(needs), "demo-10", "cuda", "tiny-random")
    with torch_threads(1), virtual_cuda() as report:  # one thread: the tests share the cores
        labels = method.fit_predict(bundle, 10, 0)
    return np.asarray(labels), report


def test_every_gpu_method_is_covered():
    covered = {case.values[0] for case in cases()}
    assert covered == set(gpu_methods())
    assert {"tac", "ours", "sic", "ntk-sc", "turtle", "scan", "temi"} <= covered
    assert set(PATHS) <= covered  # a renamed method leaves no path unchecked


def test_the_executors_page_names_every_gpu_method_and_its_cpu_steps():
    text = (Path(__file__).parents[1] / "docs" / "executors.md").read_text()
    request = text[text.index("a GPU share\nfor the methods") : text.index("[listed below]")]
    assert set(re.findall(r"`([a-z0-9-]+)`", request)) == set(gpu_methods())
    cpu_section = text[text.index("## What runs on the CPU inside a GPU method") :]
    for name in CPU_STEPS:
        assert f"- `{name}`" in cpu_section


@pytest.mark.parametrize(("name", "params"), cases())
def test_a_gpu_method_runs_as_cuda_would_let_it(name, params, demo):
    data = with_other_space(demo) if "spaces" in params else demo
    labels, report = run_on_virtual_cuda(name, params, data)
    assert labels.shape == data.labels_test.shape
    assert not report.problems, "\n".join(report.problems)
    allowed = CPU_STEPS.get(name, ())
    unexpected = [
        k
        for k in report.cpu_heavy
        if not any(k.startswith(file) and k.endswith(what) for file, what in allowed)
    ]
    assert not unexpected, "\n".join(unexpected)
    if report.training_steps >= 10:
        per_step = report.syncs_per_training_step()
        hot = {site: ratio for site, ratio in per_step.items() if ratio > SYNCS_PER_STEP}
        assert not hot, "\n".join(f"{ratio:5.2f} per step  {site}" for site, ratio in hot.items())


def test_knn_of_cuda_queries_stays_on_the_device_until_its_result():
    """No host round trip to normalise CUDA queries and no sync per block to mask the queries
    themselves: the only syncs are the result's copies, one pair per query chunk."""
    from laicbench.cluster.knn import cosine_knn

    x = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    expected, _ = cosine_knn(x, 5, query_chunk=128, key_chunk=64)
    with virtual_cuda() as report:
        queries = torch.as_tensor(x, device="cuda")
        got, _ = cosine_knn(queries, 5, query_chunk=128, key_chunk=64, device="cuda")
    np.testing.assert_array_equal(got, expected)
    assert not report.problems
    assert all(site.startswith("laicbench/cluster/knn.py") for site in report.syncs)
    assert all(site.endswith("copy to the host") for site in report.syncs), report.syncs
    assert sum(report.syncs.values()) == 2 * 3  # indices and similarities of 3 query chunks


def test_the_virtual_device_catches_a_dropped_to_device(monkeypatch, demo):
    """Drop the `.to(device)` of the one conversion every primitive uses: TEMI's features stay on
    the CPU while its heads are on CUDA, which CUDA rejects and the virtual device reports."""
    from laicbench.cluster import tensors

    def unit_rows_left_on_the_cpu(x, device="cpu"):
        del device  # the injected bug
        return torch.nn.functional.normalize(tensors.as_tensor(x), dim=1)

    _, clean = run_on_virtual_cuda("temi", {}, demo)
    monkeypatch.setattr(tensors, "unit_rows", unit_rows_left_on_the_cpu)
    _, broken = run_on_virtual_cuda("temi", {}, demo)
    assert not clean.problems
    assert any("mixes CUDA and CPU tensors" in k for k in broken.problems), broken.problems
    assert any(
        k.startswith("methods/temi.py") and "CPU tensor indexed by a CUDA tensor" in k
        for k in broken.problems
    ), broken.problems
