"""sac, seic, magic (adapted) and idc (interactive): each central computation against its
formula written out, accuracy floors on a features file where nouns name the classes (and the
images carry a nuisance that misleads k-means), and idc's feedback: what it reads, what its
record says, and that it is never ranked."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from confounded_features import write_confounded_features
from laicbench.methods import idc, magic, sac, seic

from laicbench.api import registry
from laicbench.api.errors import UserError
from laicbench.api.features import FeatureBundle, Need, UndeclaredNeedError
from laicbench.api.method import Method, check_method_class
from laicbench.api.settings import DataSettings
from laicbench.cli.main import main
from laicbench.cluster.metrics import cluster_accuracy
from laicbench.cluster.tensors import torch_threads
from laicbench.data.features_file import FeaturesFile


def _softmax(z, axis=-1):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _probs(rng, n, k):
    return torch.as_tensor(_softmax(rng.standard_normal((n, k)) * 2), dtype=torch.float32)


# ------------------------------------------------------------------------------------------
# SAC


def test_sac_reliability_contrast_is_the_weighted_nt_xent_written_out():
    rng = np.random.default_rng(0)
    u, w, g0, g1, h0, h1 = (_probs(rng, 6, 4) for _ in range(6))
    T, a, alpha = 1.1, 1.5, 0.9
    got = sac.reliability_contrast(
        u, w, (g0, g1), (h0, h1), temperature=T, weight_scale=a, alpha=alpha, weighted=True
    )
    l1 = [x.numpy() / x.numpy().sum(axis=1, keepdims=True) for x in (u, w, g0, g1, h0, h1)]
    z = np.concatenate([l1[0], l1[1]])
    n = len(u)
    losses, weights = [], []
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        others = [j for j in range(2 * n) if j != i]
        logits = np.array([z[i] @ z[j] / T for j in others])
        losses.append(-(z[i] @ z[partner] / T) + math.log(np.exp(logits).sum()))
        j = i % n
        first = 1 / (1 + math.exp(-a * (l1[2][j] @ l1[3][j]) / T))
        second = 1 / (1 + math.exp(-a * (l1[4][j] @ l1[5][j]) / T))
        weights.append(alpha * first + (1 - alpha) * second)
    expected = np.dot(weights, losses) / np.sum(weights)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    plain = sac.reliability_contrast(
        u, w, (g0, g1), (h0, h1), temperature=T, weight_scale=a, alpha=alpha, weighted=False
    )
    assert float(plain) == pytest.approx(np.mean(losses), rel=1e-5)


def test_sac_column_alignment_and_the_loss_of_its_parts():
    rng = np.random.default_rng(1)
    p_t, p_v = _probs(rng, 8, 3), _probs(rng, 8, 3)
    sums = (p_t.numpy() * p_v.numpy()).sum(axis=0)
    expected = np.mean(np.log1p(np.exp(-sums)))  # BCE with logits against 1
    assert float(sac.column_alignment(p_t, p_v)) == pytest.approx(expected, rel=1e-5)
    probs = {k: _probs(rng, 8, 3) for k in ("p_t", "p_v", "q_t", "q_v", "r_t", "r_v")}
    method = sac.Sac()
    loss, parts = sac.sac_loss(probs, method)
    total = (
        parts["intra"]
        + parts["inter"]
        + method.alignment_weight * parts["alignment"]
        - method.balance_weight * parts["balance"]
    )
    assert float(loss) == pytest.approx(float(total), rel=1e-5)


def test_sac_training_settings_follow_the_number_of_clusters():
    small = sac.Sac().training_config("cifar10", 50_000, 10)
    assert (small["epochs"], small["batch_size"], small["n_neighbors"]) == (30, 512, 20)
    large = sac.Sac().training_config("imagenet", 1_281_167, 1000)
    assert (large["epochs"], large["batch_size"], large["n_neighbors"], large["tau"]) == (
        100,
        8192,
        50,
        0.01,
    )
    assert sac.Sac(epochs=3).training_config("demo-10", 100, 10)["batch_size"] == 100


# ------------------------------------------------------------------------------------------
# MAGIC


def test_magic_fine_and_coarse_text_as_written():
    rng = np.random.default_rng(2)
    images, nouns = _unit(rng.standard_normal((5, 8))), _unit(rng.standard_normal((12, 8)))
    tau, k = 0.05, 3
    fine, coarse = magic.granularities(images, nouns, tau, k)
    cos = images @ nouns.T
    np.testing.assert_allclose(fine.numpy(), _unit(_softmax(cos / tau) @ nouns), atol=1e-5)
    for i in range(len(images)):
        top = np.argsort(-cos[i])[:k]
        pos = np.clip(cos[i, top], 0, None)
        w = pos / pos.sum() if pos.sum() > 1e-12 else _softmax(cos[i, top] / tau)
        np.testing.assert_allclose(coarse[i].numpy(), _unit(w @ nouns[top]), atol=1e-5)


def test_magic_column_cross_entropy_as_written():
    rng = np.random.default_rng(3)
    p_v, p_t = _probs(rng, 7, 4), _probs(rng, 7, 4)
    a = p_v.numpy() / p_v.numpy().sum(axis=0)
    b = p_t.numpy() / p_t.numpy().sum(axis=0)
    expected = np.mean([-(a[:, k] * np.log(b[:, k])).sum() for k in range(4)])
    assert float(magic.column_cross_entropy(p_v, p_t)) == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------------------------------
# SEIC


def test_seic_text_per_image_is_the_weighted_mean_of_its_candidates():
    rng = np.random.default_rng(4)
    x = torch.as_tensor(_unit(rng.standard_normal((60, 8))), dtype=torch.float32)
    nouns = _unit(rng.standard_normal((40, 8))).astype(np.float32)
    method = seic.Seic(k1=5, k2=4, kmeans_n_init=2)
    texts, candidates = seic.image_texts(x, nouns, 3, method, 0.05, 0, "cpu")
    from laicbench.cluster.kmeans import spherical_kmeans

    labels = spherical_kmeans(x, 3, n_init=2, seed=0).labels
    centers = np.stack([x.numpy()[labels == c].mean(axis=0) for c in range(3)])
    expected_candidates = np.unique(np.argsort(-(_unit(centers) @ nouns.T), axis=1)[:, :5])
    np.testing.assert_array_equal(candidates, expected_candidates)
    pool = nouns[candidates]
    for i in range(len(x)):
        sims = pool @ x.numpy()[i]
        top = np.argsort(-sims)[:4]
        expected = _unit(_softmax(sims[top] / 0.05) @ pool[top])
        np.testing.assert_allclose(texts[i].numpy(), expected, atol=1e-5)


def test_seic_losses_as_written():
    rng = np.random.default_rng(5)
    left, right = (torch.as_tensor(rng.standard_normal((5, 6)), dtype=torch.float32) for _ in "ab")
    scale = 3.0
    lu, ru = _unit(left.numpy()), _unit(right.numpy())
    logits = scale * lu @ ru.T
    ce = np.mean([-logits[i, i] + math.log(np.exp(logits[i]).sum()) for i in range(5)])
    ce_t = np.mean([-logits[i, i] + math.log(np.exp(logits[:, i]).sum()) for i in range(5)])
    got = seic.symmetric_info_nce(left, right, scale)
    assert float(got) == pytest.approx((ce + ce_t) / 2, rel=1e-5)

    # the balance term: minus the history-weighted entropies of the batch means
    p_v, p_t = _probs(rng, 9, 4), _probs(rng, 9, 4)
    share = torch.tensor([0.7, 0.2, 0.095, 0.005])
    h = np.clip(share.numpy(), 0.01, None)
    h = h / h.sum()
    w = np.minimum(0.25 / h, 5.0)
    w = w / w.mean()
    expected = -sum((w * m * -np.log(m)).sum() for m in (p_v.numpy().mean(0), p_t.numpy().mean(0)))
    got = seic.balance_term(p_v, p_t, share, 0.01, 5.0)
    assert float(got) == pytest.approx(expected, rel=1e-5)

    # the center term: centers sum p_ik z_i over the rows whose argmax is k
    z_v, z_t = (
        torch.as_tensor(_unit(rng.standard_normal((9, 6))), dtype=torch.float32) for _ in "ab"
    )
    got = seic.center_consistency(z_v, p_v, z_t, p_t, 0.5)
    hard_v, hard_t = p_v.argmax(1).numpy(), p_t.argmax(1).numpy()
    keep = [k for k in range(4) if (hard_v == k).any() and (hard_t == k).any()]
    c_v = np.stack(
        [(p_v.numpy()[hard_v == k, k][:, None] * z_v.numpy()[hard_v == k]).sum(0) for k in keep]
    )
    c_t = np.stack(
        [(p_t.numpy()[hard_t == k, k][:, None] * z_t.numpy()[hard_t == k]).sum(0) for k in keep]
    )
    expected = seic.symmetric_info_nce(torch.as_tensor(c_v), torch.as_tensor(c_t), 2.0)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)


# ------------------------------------------------------------------------------------------
# IDC


def test_idc_value_mining_is_the_greedy_score_written_out():
    rng = np.random.default_rng(6)
    x = _unit(rng.standard_normal((40, 5))).astype(np.float32)
    centers = rng.standard_normal((3, 5)).astype(np.float32)
    xt, ct = torch.as_tensor(x), torch.as_tensor(centers)
    cos = x @ x.T
    np.fill_diagonal(cos, -np.inf)
    near = np.sort(cos, axis=1)[:, ::-1][:, :4]
    rep = -np.log((2 - 2 * near).mean(axis=1))
    s = np.sort(x @ _unit(centers).T, axis=1)[:, ::-1]
    base = rep + 0.5 * np.log(np.clip(1 - (s[:, 0] - s[:, 1]), 1e-12, None))  # gap may pass 1
    got = idc.value_scores(xt, ct, 4, 0.5).numpy()
    np.testing.assert_allclose(got, base, rtol=1e-4, atol=1e-4)
    chosen = [int(np.argmax(base))]
    for _ in range(5):
        diversity = np.min(np.log(np.clip(1 - x @ x[chosen].T, 1e-12, None)), axis=1)
        score = base + 2.0 * diversity
        score[chosen] = -np.inf
        chosen.append(int(np.argmax(score)))
    assert idc.mine_queries(xt, ct, 6, 4, 0.5, 2.0).tolist() == chosen


def test_idc_simulated_user_reads_only_the_queries_and_the_exemplars():
    rng = np.random.default_rng(7)
    x = torch.as_tensor(_unit(rng.standard_normal((50, 6))), dtype=torch.float32)
    centers = torch.as_tensor(rng.standard_normal((4, 6)), dtype=torch.float32)
    labels = rng.integers(0, 4, 50)
    queries = np.array([3, 10, 20, 33])
    answers = idc.simulate_feedback(x, centers, queries, 2, labels)
    exemplars = (x @ torch.nn.functional.normalize(centers, dim=1).T).argmax(dim=0).numpy()
    for q, answer, shown in zip(queries, answers["answer"], answers["rejected"], strict=True):
        matching = [k for k in shown if labels[exemplars[k]] == labels[q]]
        assert answer == (matching[0] if matching else -1)
    # any other label may change: the answers do not
    scrambled = labels.copy()
    others = np.setdiff1d(np.arange(50), np.concatenate([queries, exemplars]))
    scrambled[others] = rng.integers(0, 4, len(others))
    again = idc.simulate_feedback(x, centers, queries, 2, scrambled)
    np.testing.assert_array_equal(again["answer"], answers["answer"])
    assert answers["labels_read"] <= len(queries) + len(exemplars)


def test_idc_pseudo_labels_keep_the_most_confident_per_cluster():
    probs = torch.tensor(
        [[0.995, 0.005], [0.999, 0.001], [0.5, 0.5], [0.002, 0.998], [0.9, 0.1], [0.2, 0.8]]
    )
    current = torch.tensor([-1, -1, 1, -1, 0, -1])
    # ceil(6 / 2 * 0.34) = 2 per cluster: rows 1, 0 (cluster 0) and 3 (cluster 1) qualify
    out = idc.update_pseudo_labels(probs, current, 0.99, 0.34)
    assert out.tolist() == [0, 0, -1, 1, -1, -1]  # rows 2 and 4 lose theirs (below 0.99)


def test_labels_reach_only_oracle_methods():
    class Sneaky(Method):
        needs = frozenset({Need.FEEDBACK})

        def fit_predict(self, features, n_clusters, seed):
            return features.feedback_labels % n_clusters

    with pytest.raises(UserError, match="only an oracle method"):
        check_method_class("sneaky", Sneaky)

    class Interactive(Method):
        tags = frozenset({"interactive"})

        def fit_predict(self, features, n_clusters, seed):
            return np.zeros(len(features.image_test), dtype=np.int64)

    with pytest.raises(UserError, match="oracle = True"):
        check_method_class("interactive", Interactive)


# ------------------------------------------------------------------------------------------
# accuracy floors: nouns name the classes, image k-means follows a nuisance


@pytest.fixture(scope="module")
def confounded(tmp_path_factory):
    path = write_confounded_features(tmp_path_factory.mktemp("vlm4c") / "confounded.npz")
    data = FeaturesFile(path).load("features-file", "cpu", DataSettings())
    return data, _acc("clip-kmeans", data, {})


def _acc(name, data, params, seed=0):
    cls = registry.methods.get(name)
    method = cls.from_params(params)
    with torch_threads(1):
        labels = method.fit_predict(FeatureBundle(data, cls.needs, "confounded", "cpu"), 10, seed)
    return 100 * cluster_accuracy(data.labels_test, labels), method


def test_seic_beats_kmeans_where_nouns_name_the_classes(confounded):
    data, (kmeans, _) = confounded
    acc, method = _acc("seic", data, {"epochs": 30})
    assert kmeans < 40 and acc > kmeans + 40
    assert method.artefacts_["n_candidate_nouns"] >= 10
    assert (
        "stage 2" in method.artefacts_["stage"] and "last epoch" in method.artefacts_["selection"]
    )


def test_idc_beats_kmeans_with_its_feedback(confounded):
    data, (kmeans, _) = confounded
    acc, method = _acc("idc", data, {})
    assert acc > kmeans + 20
    feedback = method.artefacts_["feedback"]
    assert feedback["budget"] == feedback["queries"] == 500
    assert feedback["positive"] + feedback["negative"] == 500
    assert feedback["labels_read"] <= 500 + 10


@pytest.mark.slow  # 30 epochs of SAC's heads and 30 of MAGIC's model: about a minute under load
def test_sac_and_magic_beat_kmeans_where_nouns_name_the_classes(confounded):
    data, (kmeans, _) = confounded
    acc, method = _acc("sac", data, {})
    assert acc > kmeans + 50
    assert "TAC counterparts" in method.artefacts_["text_source"]
    acc, method = _acc("magic", data, {"epochs": 30, "lr": 1e-3, "temperature": 0.5})
    assert acc > kmeans + 20
    history = method.artefacts_["loss_history"]
    assert history[-1]["intra"] < history[0]["intra"]


# ------------------------------------------------------------------------------------------
# idc through the CLI: its record and the report


def test_idc_record_states_its_budget_and_the_report_never_ranks_it(tmp_path, capsys):
    results = tmp_path / "results"
    argv = ["run", "--methods", "idc,clip-kmeans", "--datasets", "demo", "--seeds", "0",
            "--grid", "idc.epochs=3", "--results-dir", str(results)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "idc [epochs=3] (interactive ‡)" in out or "idc (interactive ‡)" in out
    records = {p.parts[-4]: json.loads(p.read_text()) for p in results.rglob("*.json")}
    record = records["idc"]
    assert record["method"]["oracle"] is True and record["method"]["tags"] == ["interactive"]
    assert record["method"]["needs"] == ["feedback"]
    assert record["artefacts"]["feedback"]["budget"] == 500
    assert record["artefacts"]["feedback"]["split"] == "train"

    from laicbench.report.build import build_report

    report = build_report(results, out=tmp_path / "out", reference=False)
    markdown = (report.out / "main_table.md").read_text()
    idc_row = next(line for line in markdown.splitlines() if line.startswith("| idc"))
    assert "‡" in idc_row and "**" not in idc_row and "<ins>" not in idc_row


def test_a_bundle_without_feedback_refuses_the_labels():
    from laicbench.data.resolve import resolve_dataset

    demo = resolve_dataset("demo-10").load("tiny-random", "cpu", DataSettings())
    with pytest.raises(UndeclaredNeedError, match="feedback"):
        _ = FeatureBundle(demo, frozenset(), "demo-10", "cpu").feedback_labels
    granted = FeatureBundle(demo, frozenset({Need.FEEDBACK}), "demo-10", "cpu")
    np.testing.assert_array_equal(granted.feedback_labels, demo.labels_train)


def test_their_imagenet_size_steps_are_declared_and_pickle():
    import pickle

    from laicbench.bench.methods import imagenet_jobs

    for name, own in (
        ("sac", "sac: head training"),
        ("seic", "seic: stage-1 training"),
        ("magic", "magic: training"),
        ("idc", "idc: value mining of 2,000 queries"),
    ):
        jobs = dict(imagenet_jobs([name], "cpu"))
        assert own in jobs, name
        clone = pickle.loads(pickle.dumps(jobs[own]))  # each job runs in a spawned process
        assert clone.job.total == jobs[own].job.total > 0
