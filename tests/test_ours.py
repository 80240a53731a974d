"""The 2026 relational method (ours, ours-notrain) and the zero-shot oracle."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from laicbench.methods.ours import Ours

from laicbench.cli import main
from laicbench.dataset import resolve_dataset
from laicbench.features import FeatureBundle
from laicbench.relational import RidgeRelations
from laicbench.settings import DataSettings


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
    kept = method.diagnostics_["kept_train"].copy()
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


def test_ours_needs_a_text_encoder_which_a_features_file_lacks(tmp_path):
    data = _demo()
    path = tmp_path / "feats.npz"
    np.savez(
        path,
        image_train=data.image_train,
        image_test=data.image_test,
        labels_train=data.labels_train,
        labels_test=data.labels_test,
        noun_features=data.noun_features,
        noun_words=np.array(data.noun_words),
    )
    results = tmp_path / "runs"
    argv = [
        "run",
        "--methods",
        "ours-notrain,ours",
        "--datasets",
        str(path),
        "--seeds",
        "0",
        "--results-dir",
        str(results),
    ]
    assert main(argv) == 1  # ours fails (no text encoder), ours-notrain works
    records = {p.parts[-4]: json.loads(p.read_text()) for p in results.rglob("*.json")}
    assert records["ours-notrain"]["status"] == "ok"
    assert records["ours"]["status"] == "error"
    assert "text_encoder" in records["ours"]["error"]["message"]
