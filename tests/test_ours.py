"""The 2026 relational method (ours, ours-notrain) and the zero-shot oracle."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from confounded_features import write_confounded_features
from conftest import save_as_features_file
from laicbench.methods.ours import Ours

from laicbench.api.features import FeatureBundle
from laicbench.api.settings import DataSettings
from laicbench.cli.main import main
from laicbench.cluster.relational import RidgeRelations
from laicbench.data.resolve import resolve_dataset


def _unit(rng, n, d):
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("n_nouns", [5, 40])  # fewer nouns than dimensions, and more
def test_low_rank_relations_equal_the_explicit_ridge_solution(n_nouns):
    rng = np.random.default_rng(0)
    x, t = _unit(rng, 30, 12), _unit(rng, n_nouns, 12)
    lam = 0.3
    explicit = x @ t.T @ np.linalg.inv(t @ t.T + lam * np.eye(n_nouns))  # N x M, as in ours.md
    rel = RidgeRelations.fit(t, lam)
    np.testing.assert_allclose(rel.relations(x), explicit, atol=1e-8)
    rows = explicit / np.linalg.norm(explicit, axis=1, keepdims=True)
    r = rel.representation(x).astype(np.float64)
    assert r.shape == (30, 12)
    np.testing.assert_allclose(r @ r.T, rows @ rows.T, atol=1e-5)  # same geometry, d dims


def test_relative_penalty_is_the_absolute_one_times_the_mean_eigenvalue():
    rng = np.random.default_rng(1)
    x, t = _unit(rng, 20, 12), _unit(rng, 40, 12)
    relative = RidgeRelations.fit(t, 2.0, "relative")
    mean_eigenvalue = np.trace(t.T @ t) / 12  # = M / d for unit-norm nouns
    assert relative.penalty == pytest.approx(2.0 * mean_eigenvalue) == pytest.approx(2.0 * 40 / 12)
    absolute = RidgeRelations.fit(t, 2.0 * 40 / 12, "absolute")
    np.testing.assert_allclose(relative.relations(x), absolute.relations(x), atol=1e-12)
    np.testing.assert_allclose(relative.representation(x), absolute.representation(x), atol=1e-6)


def test_relative_penalty_does_not_depend_on_how_many_nouns_repeat():
    rng = np.random.default_rng(2)
    x, t = _unit(rng, 20, 12), _unit(rng, 40, 12)
    twice = np.concatenate([t, t])
    for scale, same in (("relative", True), ("absolute", False)):
        once = RidgeRelations.fit(t, 1.0, scale).representation(x)
        doubled = RidgeRelations.fit(twice, 1.0, scale).representation(x)
        assert np.allclose(once, doubled, atol=1e-5) == same


def test_ours_notrain_beats_kmeans_where_hundreds_of_nouns_are_selected(cli, tmp_path):
    """The regression behind the relative penalty: on features whose nuisance lies in directions
    the nouns cover weakly, version 2's defaults (plain relation rows, absolute lambda 3) barely
    beat k-means; version 4's (GCV's penalty, sharpened relations) do."""
    path = write_confounded_features(tmp_path / "confounded.npz")
    results = tmp_path / "runs"
    common = ["--datasets", path, "--seeds", "0,1", "--results-dir", results]
    centers = ["--grid", "ours-notrain.n_semantic_centers=100"]
    assert cli("run", "--methods", "clip-kmeans", *common).status == 0
    assert cli("run", "--methods", "ours-notrain", *common, *centers).status == 0
    old_default = [
        "--grid",
        "ours-notrain.ridge_scale=absolute",
        "--grid",
        "ours-notrain.ridge_lambda=3.0",
        "--grid",
        "ours-notrain.representation=relation",
    ]
    assert cli("run", "--methods", "ours-notrain", *common, *centers, *old_default).status == 0
    acc: dict[str, list[float]] = {}
    for record in map(json.loads, map(Path.read_text, results.rglob("*.json"))):
        params = record["method"]["params"]
        key = record["method"]["name"] + (
            "-absolute" if params.get("ridge_scale") == "absolute" else ""
        )
        acc.setdefault(key, []).append(record["metrics"]["acc"])
        if record["method"]["name"] == "ours-notrain":
            assert record["artefacts"]["n_selected_nouns"] >= 300
    assert all(len(v) == 2 for v in acc.values())
    kmeans, ours, old = (
        np.mean(acc[k]) for k in ("clip-kmeans", "ours-notrain", "ours-notrain-absolute")
    )
    assert kmeans < 40
    assert ours > kmeans + 40
    assert old < ours - 30


def _demo():
    return resolve_dataset("demo").load("tiny-random", "cpu", DataSettings())


def _bundle(data):
    return FeatureBundle(data, Ours.needs, "demo-10", "cpu")


def test_filtering_and_training_never_read_labels():
    data = _demo()
    rng = np.random.default_rng(0)
    scrambled = dataclasses.replace(
        data,
        labels_train=rng.permutation(data.labels_train),
        labels_test=rng.permutation(data.labels_test),
    )
    method = Ours(epochs=2, n_init=2, select_n_init=2)
    first = method.fit_predict(_bundle(data), 10, seed=0)
    kept = method.outputs_.kept_train.copy()
    second = Ours(epochs=2, n_init=2, select_n_init=2).fit_predict(_bundle(scrambled), 10, 0)
    np.testing.assert_array_equal(first, second)
    assert 0 < kept.mean() < 1


def test_prompt_learning_lowers_its_loss_and_moves_the_centers():
    method = Ours(epochs=10, n_init=2, select_n_init=2)
    labels = method.fit_predict(_bundle(_demo()), 10, seed=0)
    history = method.artefacts_["loss_history"]
    assert len(history) == 10 and history[-1] < 0.5 * history[0]
    assert method.artefacts_["center_shift"] > 0.01
    assert len(np.unique(labels)) >= 8
    assert all(len(nouns) == 5 for nouns in method.artefacts_["center_nouns"].values())


def test_ours_and_zeroshot_through_the_cli(tmp_path, capsys):
    argv = [
        "run",
        "--methods",
        "ours,ours-notrain,zeroshot",
        "--datasets",
        "demo",
        "--seeds",
        "0",
        "--results-dir",
        str(tmp_path),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "zeroshot (oracle)" in out
    assert out.index("zeroshot (oracle)") > out.index("ours-notrain")  # oracle rows come last
    records = {p.parts[-4]: json.loads(p.read_text()) for p in tmp_path.rglob("*.json")}
    assert records["zeroshot"]["method"]["oracle"] is True
    ours = records["ours"]["diagnostics"]
    consistency = ours["neighbour_consistency"]
    assert consistency["representation"] > consistency["image"]  # the paper's Figure 2 claim
    pseudo = ours["pseudo_labels"]
    assert 0 < pseudo["kept_fraction"] < 1 and pseudo["acc_after"] >= pseudo["acc_before"]
    assert len(ours["cluster_to_class"]) == 10
    for name in ("ours", "ours-notrain"):
        assert records[name]["metrics"]["acc"] > 60  # clip-kmeans scores about 50 here
        arrays = np.load(next(tmp_path.glob(f"{name}/**/*.pred.npz")))
        assert arrays["relations_sample"].shape[0] == arrays["relations_sample_labels"].shape[0]


def test_ours_on_a_features_file_is_refused_before_any_run(cli, tmp_path):
    path = save_as_features_file(_demo(), tmp_path / "feats.npz")
    results = tmp_path / "runs"
    common = ["--datasets", path, "--seeds", "0", "--results-dir", results]
    refused = cli("run", "--methods", "ours-notrain,ours", *common)
    assert refused.status == 2
    assert refused.err_lines == [
        f"laicbench: error: method 'ours' needs text_encoder, which dataset {path} cannot give: "
        "a features file has no text encoder (no backbone made it here); drop 'ours' from "
        "--methods for this dataset"
    ]
    assert not results.exists()  # nothing ran, nothing written
    assert cli("run", "--methods", "ours-notrain", *common).status == 0


@pytest.mark.parametrize("batch_size", [16, None])  # mini-batches, and the full batch
def test_prompt_training_matches_the_plain_path(batch_size):
    """train_prompts computes the image side in chunks against detached centers, sends their
    gradient through the text tower once per step and sums losses on the device; the plain path
    back-propagates the whole loss through the tower and reads each loss on the host. Same
    per-epoch losses, same learned context (so the same gradients at every step)."""
    import math

    import torch
    import torch.nn.functional as F

    from laicbench.cluster.prompts import PromptLearner, train_prompts

    encoder = _demo().text_encoder
    texts = [f"a photo of a word{i}." for i in range(4)]
    rng = np.random.default_rng(0)
    x = torch.nn.functional.normalize(torch.as_tensor(_unit(rng, 50, 128), dtype=torch.float32))
    y = torch.as_tensor(rng.integers(4, size=50))

    def fresh():
        learner = PromptLearner(encoder, texts, 3, torch.Generator().manual_seed(1))
        return learner, torch.optim.SGD([learner.ctx], lr=0.05, momentum=0.9)

    learner, optimiser = fresh()
    history = train_prompts(
        learner, optimiser, x, y, epochs=3, batch_size=batch_size, tau_p=0.05,
        balance_weight=0.1, generator=torch.Generator().manual_seed(2), chunk=7,
    )  # fmt: skip

    plain, plain_optimiser = fresh()
    gen = torch.Generator().manual_seed(2)
    batch = batch_size or 50
    steps, total = math.ceil(50 / batch), 3 * math.ceil(50 / batch)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        plain_optimiser, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    plain_history = []
    for _ in range(3):
        order = torch.randperm(50, generator=gen) if batch_size else torch.arange(50)
        losses = []
        for step in range(steps):
            idx = order[step * batch : (step + 1) * batch]
            logits = x[idx] @ plain().T / 0.05
            mean = logits.softmax(dim=1).mean(dim=0)
            loss = F.cross_entropy(logits, y[idx]) + 0.1 * (mean * mean.log()).sum()
            plain_optimiser.zero_grad()
            loss.backward()
            plain_optimiser.step()
            schedule.step()
            losses.append(loss.item())
        plain_history.append(sum(losses) / steps)
    np.testing.assert_allclose(history, plain_history, rtol=1e-5)
    torch.testing.assert_close(learner.ctx, plain.ctx)
    assert not torch.allclose(learner.ctx, fresh()[0].ctx)  # it did learn
