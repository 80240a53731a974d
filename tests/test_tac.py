"""TAC checked step by step against an independent reading of tac.md, on small inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from laicbench.methods.tac import Tac

from laicbench.cli.main import main
from laicbench.cluster.heads import ClusterHead, tac_loss
from laicbench.cluster.nouns import select_nouns, text_counterparts


def _unit(rng, n, d):
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_noun_selection_matches_tac_md():
    rng = np.random.default_rng(0)
    images, nouns = _unit(rng, 300, 16), _unit(rng, 500, 16)
    sel = select_nouns(images, nouns, n_centers=12, gamma=5, seed=0, n_init=2)
    # tac.md step A.3-5, written out with numpy from the clustering the selection used
    centers = np.stack([images[sel.center_labels == c].mean(0) for c in range(12)])
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    s = centers @ nouns.T
    a = np.exp(s) / np.exp(s).sum(axis=0, keepdims=True)  # softmax over centers
    winner, conf = a.argmax(axis=0), a.max(axis=0)
    expected = set()
    for c in range(12):
        members = np.flatnonzero(winner == c)
        expected.update(members[np.argsort(-conf[members])[:5]].tolist())
    assert set(sel.indices.tolist()) == expected
    assert len(expected) <= 5 * 12


def test_text_counterparts_match_tac_md():
    rng = np.random.default_rng(1)
    images, selected = _unit(rng, 40, 8), _unit(rng, 15, 8)
    logits = images @ selected.T / 0.005
    w = np.exp(logits - logits.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    t = w @ selected
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    got, nearest = text_counterparts(images, selected, 0.005, chunk=7, return_nearest=True)
    np.testing.assert_allclose(got, t, atol=1e-5)
    np.testing.assert_array_equal(nearest, logits.argmax(axis=1))


def _reference_distill(p, q, temperature):
    cols = np.concatenate([p.T, q.T])
    cols /= np.linalg.norm(cols, axis=1, keepdims=True)
    k = p.shape[1]
    losses = []
    for u in range(2 * k):
        positive = (u + k) % (2 * k)
        sims = np.array([cols[u] @ cols[v] / temperature for v in range(2 * k)])
        denominator = sum(np.exp(sims[v]) for v in range(2 * k) if v != u)
        losses.append(-np.log(np.exp(sims[positive]) / denominator))
    return float(np.mean(losses))


def _reference_entropy(p):
    mean = np.clip(p.mean(axis=0), 1e-9, None)
    return float(-(mean * np.log(mean)).sum())


def test_head_loss_on_a_fixed_batch_matches_tac_md():
    torch.manual_seed(0)
    heads = (ClusterHead(8, 4, hidden=16), ClusterHead(8, 4, hidden=16))
    batch = tuple(torch.randn(32, 8) for _ in range(4))
    loss, parts = tac_loss(heads, batch, temperature=0.5, entropy_weight=5.0)
    with torch.no_grad():
        p_t, p_v, p_t_nb, p_v_nb = (h(x).numpy() for h, x in zip(heads * 2, batch, strict=True))
    distill = _reference_distill(p_v, p_t_nb, 0.5) + _reference_distill(p_t, p_v_nb, 0.5)
    consist = float(-np.mean(np.log((p_t * p_v).sum(axis=1))))
    entropy = _reference_entropy(p_t) + _reference_entropy(p_v)
    assert float(parts["distill"]) == pytest.approx(distill, rel=1e-4)
    assert float(parts["consistency"]) == pytest.approx(consist, rel=1e-4)
    assert float(parts["entropy"]) == pytest.approx(entropy, rel=1e-4)
    assert loss.item() == pytest.approx(distill + consist - 5 * entropy, rel=1e-4)


def test_tac_defaults_per_dataset():
    assert Tac().training_config("cifar10", 50_000) == {
        "epochs": 20,
        "batch_size": 512,
        "temperature": 0.5,
    }
    assert Tac().training_config("imagenet", 1_281_167) == {
        "epochs": 100,
        "batch_size": 8192,
        "temperature": 5.0,
    }
    # a train split smaller than the batch still gets one step with drop_last
    assert Tac().training_config("ucf101", 5_000)["batch_size"] == 5_000
    assert Tac(epochs=3, batch_size=64).training_config("ucf101", 9_537)["epochs"] == 3
    assert Tac().semantic_centers("stl10", 5_000, 10) == 17
    assert Tac().semantic_centers("imagenet", 1_281_167, 1000) == 4271
    assert Tac().semantic_centers("demo-10", 2_000, 10) == 30  # floor of 3K
    assert Tac().semantic_centers("other", 90_000, 10) == 300  # N / 300
    assert Tac(n_semantic_centers=7).semantic_centers("imagenet", 1_281_167, 1000) == 7


def test_tac_runs_through_the_cli_with_artefacts(tmp_path):
    argv = [
        "run",
        "--methods",
        "tac,tac-notrain",
        "--datasets",
        "demo",
        "--seeds",
        "0",
        "--results-dir",
        str(tmp_path),
    ]
    assert main(argv) == 0
    tac = json.loads(next(tmp_path.glob("tac/**/*.json")).read_text())
    notrain = json.loads(next(tmp_path.glob("tac-notrain/**/*.json")).read_text())
    for record in (tac, notrain):
        art = record["artefacts"]
        assert art["resolved"]["n_semantic_centers"] == 30
        assert 10 <= len(art["selected_nouns"]) <= 150
        assert set(art["cluster_nouns"]) <= {str(c) for c in range(10)}
        top = next(iter(art["cluster_nouns"].values()))[0]
        assert top[0] in art["selected_nouns"] and top[1] >= 1
    history = tac["artefacts"]["loss_history"]
    assert len(history) == 20 and tac["artefacts"]["resolved"]["batch_size"] == 512
    # training must move the loss: distillation falls from the first epoch to the last
    assert history[-1]["distill"] < history[0]["distill"]
    assert tac["metrics"]["acc"] > notrain["metrics"]["acc"] - 15
