"""TURTLE over several representation spaces: the run's backbone and other backbones' features
of the same images, read through the feature cache, named in the inputs fingerprint, resumed;
the combination of the spaces against its formula; refused in one line where a dataset lives in
one backbone's space."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
from dataset_fixtures import patch_torchvision_md5s, write_cifar10
from laicbench.datasets.cifar import Cifar10
from laicbench.methods.turtle import combine_spaces, task_labels, turtle_loss

from laicbench.api.backbone_spec import BackboneSpec
from laicbench.api.errors import UserError
from laicbench.api.features import DatasetFeatures, FeatureBundle, Need, UndeclaredNeedError
from laicbench.api.registry import methods
from laicbench.api.settings import DataSettings
from laicbench.cluster.tensors import torch_threads
from laicbench.data.cache import FeatureCache
from laicbench.run.records import ResultStore
from laicbench.run.runner import execute_run, run_spaces
from laicbench.run.spec import RunSpec

QUICK = {"iterations": 20, "batch_size": 32, "inner_steps": 2}


def _other_backbone(tmp_path) -> str:
    """A second backbone as cheap as tiny-random: its weights scaled, saved as a checkpoint."""
    from laicbench.data.backbone import create_model

    checkpoint = tmp_path / "tiny-other.pt"
    state = create_model(BackboneSpec.parse("tiny-random")).state_dict()
    torch.save({k: v * 1.5 for k, v in state.items()}, checkpoint)
    return f"laicbench-tiny:{checkpoint}"


def _space_entries(cache_dir, backbone: str) -> dict[str, str]:
    """{key: created_at} of the feature-cache entries made under `backbone`."""
    return {
        e.key: e.manifest["created_at"]
        for e in FeatureCache(cache_dir).entries()
        if e.manifest and e.manifest["description"].endswith(f" {backbone}")
    }


def test_two_spaces_run_from_the_cache_and_resume(cli, tmp_path, monkeypatch):
    data, cache, results = tmp_path / "data", tmp_path / "cache", tmp_path / "runs"
    write_cifar10(data, batch_sizes=(8, 8, 8, 8, 8), n_test=20)
    patch_torchvision_md5s(monkeypatch, tvd.CIFAR10, data / "cifar-10-batches-py")
    monkeypatch.setattr(Cifar10, "expected_counts", {"train": 40, "test": 20})
    other = _other_backbone(tmp_path)
    config = tmp_path / "turtle.toml"
    params = "\n".join(f"{k} = {v}" for k, v in QUICK.items())
    # the run's own backbone listed too (ignored: it is space 0), the other one twice
    config.write_text(
        f'[params.turtle]\n{params}\nspaces = ["tiny-random", "{other}", "{other}"]\n'
    )
    common = (
        "run", "--executor", "local", "--methods", "turtle", "--datasets", "cifar10",
        "--backbone", "tiny-random", "--seeds", "0", "--config", config, "--data-root", data,
        "--cache-dir", cache, "--results-dir", results, "--device", "cpu", "--workers", "0",
    )  # fmt: skip
    result = cli(*common)
    assert result.status == 0, result.out + result.err
    [path] = results.rglob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok", record.get("error")
    assert record["backbone"] == "tiny-random"  # space 0, fingerprinted as every run's inputs
    assert "weights" in record["inputs"] and set(record["inputs"]["spaces"]) == {other}
    assert record["inputs"]["spaces"][other]["weights"] != record["inputs"]["weights"]
    assert record["artefacts"]["resolved"]["spaces"] == 2
    assert record["artefacts"]["resolved"]["space_backbones"] == ["tiny-random", other]
    # the second space's features came from the cache entries the sweep extracted beforehand
    entries = _space_entries(cache, other)
    assert len(entries) == 2  # train and test
    assert set(record["dataset"]["info"]["spaces"][other]["cache_keys"].values()) == set(entries)

    again = cli(*common)
    assert again.status == 0 and "0 new" in again.out, again.out  # resumed

    def no_extraction(*args, **kwargs):
        raise AssertionError("features extracted again")

    monkeypatch.setattr("laicbench.data.pipeline.encode_images", no_extraction)
    rerun = cli(*common, "--overwrite")
    assert rerun.status == 0, rerun.out + rerun.err
    assert json.loads(path.read_text())["status"] == "ok"
    assert _space_entries(cache, other) == entries  # read, not rebuilt

    # beside it a one-space run of the same dataset: rescoring tells their inputs apart
    plain = [a if a != config else tmp_path / "plain.toml" for a in common]
    (tmp_path / "plain.toml").write_text(f"[params.turtle]\n{params}\n")
    assert cli(*plain).status == 0
    paths = sorted(results.rglob("*.json"))
    assert len(paths) == 2
    for p in paths:
        stripped = json.loads(p.read_text())
        stripped.pop("internal_metrics")
        p.write_text(json.dumps(stripped))
    rescored = cli("rescore", "--results-dir", results, "--cache-dir", cache, "--data-root", data)
    assert rescored.status == 0 and "rescored 2 record(s)" in rescored.out, rescored.out
    for p in paths:
        assert json.loads(p.read_text())["internal_metrics"]["silhouette"] is not None


def test_spaces_are_their_own_runs_and_a_bad_name_is_a_user_error():
    turtle = methods.get("turtle")
    plain = turtle.from_params({}).get_params()
    spaced = turtle.from_params({"spaces": ["ViT-L-14:openai"]}).get_params()
    assert (
        RunSpec("turtle", "cifar10", "x:y", 0, plain).run_id
        != RunSpec("turtle", "cifar10", "x:y", 0, spaced).run_id
    )
    spec = RunSpec("turtle", "cifar10", "ViT-B-32:openai", 0, {**plain, "spaces": ["nonsense"]})
    with pytest.raises(UserError, match="expected ARCH:PRETRAINED"):
        run_spaces(spec, DataSettings())
    with pytest.raises(UserError, match="list of backbone names"):
        turtle.extra_backbones({"spaces": "ViT-L-14:openai"})


def test_combined_labelling_is_the_mean_of_the_spaces_probabilities():
    # two spaces of a batch of two images, K = 3; the task encoders' logits written out
    logits = [
        torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.5, 0.0]]),
        torch.tensor([[-3.0, 1.0, 0.0], [1.0, 0.0, 2.0]]),
    ]
    probs = [torch.softmax(z, dim=1) for z in logits]
    expected = np.zeros((2, 3))
    for z in logits:
        e = np.exp(z.numpy().astype(np.float64))
        expected += e / e.sum(axis=1, keepdims=True) / 2
    np.testing.assert_allclose(combine_spaces(probs).numpy(), expected, rtol=1e-6)
    # TURTLE averages the spaces' probabilities, not their logits (run_turtle.py, Eq. 9)
    summed = torch.softmax(logits[0] + logits[1], dim=1).numpy()
    assert not np.allclose(summed, expected, atol=1e-3)

    # task_labels: the argmax of that mean, from linear encoders on per-space features
    xs = [torch.eye(2), torch.eye(2)]
    encoders = []
    for z in logits:
        layer = torch.nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            layer.weight.copy_(z.T)  # x_i = e_i, so layer(x_i) = z[i]
        encoders.append(layer)
    with torch.no_grad():
        labels = task_labels(encoders, xs).numpy()
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))

    # the outer loss: the spaces' cross-entropies against that labelling, summed, minus gamma
    # times the sum of each space's own batch-mean entropy
    inner = [torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), torch.tensor([[0.0, 2.0, 1.0]] * 2)]
    ce = 0.0
    for z in inner:
        zz = z.numpy().astype(np.float64)
        log_soft = zz - np.log(np.exp(zz).sum(axis=1, keepdims=True))
        ce += -(expected * log_soft).sum(axis=1).mean()
    entropy = 0.0
    for p in probs:
        mean = p.numpy().astype(np.float64).mean(axis=0)
        entropy += -(mean * np.log(mean)).sum()
    loss, parts = turtle_loss(probs, inner, 10.0)
    assert loss.item() == pytest.approx(ce - 10.0 * entropy, rel=1e-5)
    assert float(parts["entropy"]) == pytest.approx(entropy, rel=1e-5)
    assert float(parts["cross_entropy"]) == pytest.approx(ce, rel=1e-5)


def test_fit_predict_reads_each_other_space_once_through_the_bundle():
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    own = rng.standard_normal((60, 4)).astype(np.float32)
    other = rng.standard_normal((60, 8)).astype(np.float32)  # another width: its own encoder
    asked = []

    def loader(name):
        asked.append(name)
        return other[:40], other[40:]

    data = DatasetFeatures(
        own[:40], own[40:], labels[:40], labels[40:], ["a", "b", "c"], image_space_loader=loader
    )
    method = methods.get("turtle").from_params({**QUICK, "spaces": ["a:b", "c:d", "c:d"]})
    with pytest.raises(UndeclaredNeedError, match="image_spaces"):  # granted by the harness only
        method.fit_predict(FeatureBundle(data, frozenset(), "x", "cpu", "a:b"), 3, 0)
    bundle = FeatureBundle(data, frozenset({Need.IMAGE_SPACES}), "x", "cpu", "a:b")
    with torch_threads(1):
        first = method.fit_predict(bundle, 3, 0)
        again = method.fit_predict(bundle, 3, 0)
    assert asked == ["c:d", "c:d"]  # once per fit: the run's backbone is space 0, repeats ignored
    assert method.artefacts_["resolved"]["spaces"] == 2
    assert first.shape == (20,) and 0 <= first.min() <= first.max() < 3
    np.testing.assert_array_equal(first, again)


def test_another_space_on_the_simulated_demo_is_one_line(cli, tmp_path):
    config = tmp_path / "turtle.toml"
    config.write_text('[params.turtle]\niterations = 2\nspaces = ["ViT-B-32:openai"]\n')
    result = cli(
        "run", "--executor", "local", "--methods", "turtle", "--datasets", "demo",
        "--seeds", "0", "--config", config, "--results-dir", tmp_path / "runs", "--device", "cpu",
    )  # fmt: skip
    assert result.status != 0 and len(result.err_lines) == 1, result.out + result.err
    assert "lives in the feature space of backbone 'tiny-random'" in result.err
    assert "ViT-B-32:openai" in result.err
    assert not list((tmp_path / "runs").rglob("*.json"))  # refused before any run

    # the run's own backbone as a space is no other space; a run started anyway is an error
    # record with the same line
    params = methods.get("turtle").from_params({"spaces": ["tiny-random"]}).get_params()
    assert run_spaces(RunSpec("turtle", "demo-10", "tiny-random", 0, params), DataSettings()) == []
    params = methods.get("turtle").from_params({"spaces": ["ViT-B-32:openai"]}).get_params()
    spec = RunSpec("turtle", "demo-10", "tiny-random", 0, params)
    record = execute_run(spec, ResultStore(tmp_path / "direct"), "cpu")
    assert record.status == "error" and "lives in the feature space" in record.error["message"]
