"""Evaluation a reviewer trusts: the per-run scores (AMI, balanced and many-to-one accuracy,
cluster sizes, label-free metrics), over-clustering runs, rescoring of old records, and the
report's statistics (confidence intervals, paired tests with Holm, Friedman/Nemenyi, stability).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from scipy import stats
from sklearn.metrics import (
    adjusted_mutual_info_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)

from laicbench.cluster.internal import silhouette, unit_features
from laicbench.cluster.metric_table import METRICS, label_free_scores, label_scores
from laicbench.cluster.metrics import (
    balanced_accuracy,
    cluster_sizes,
    many_to_one_accuracy,
)
from laicbench.report.build import build_report
from laicbench.report.stats import (
    PAIRED_T,
    WILCOXON,
    friedman,
    friedman_from_ranks,
    holm,
    nemenyi_q,
    paired_test,
    seed_stability,
    t_interval,
    wilcoxon_min_p,
)
from laicbench.run.records import read_record

# ------------------------------------------------------------------------------------------
# per-run scores


def test_balanced_and_many_to_one_accuracy_on_a_small_contingency_table():
    # class 0 (4 samples): clusters a,a,a,b; class 1 (2 samples): b,b; class 2 (2): c,a
    y_true = [0, 0, 0, 0, 1, 1, 2, 2]
    y_pred = [5, 5, 5, 6, 6, 6, 7, 5]
    # Hungarian: 5->0 (3), 6->1 (2), 7->2 (1): recalls 3/4, 2/2, 1/2
    assert balanced_accuracy(y_true, y_pred) == pytest.approx((0.75 + 1.0 + 0.5) / 3)
    # majority classes: 5->0 (3 of 4), 6->1 (2 of 3), 7->2 (1 of 1): 6 of 8
    assert many_to_one_accuracy(y_true, y_pred) == pytest.approx(6 / 8)


def test_many_to_one_accuracy_rewards_over_clustering_that_hungarian_does_not():
    y_true = np.repeat([0, 1], 6)
    y_pred = np.repeat([0, 1, 2, 3], 3)  # every class split in two pure clusters
    scores = label_scores(y_true, y_pred)
    assert scores["m2o_acc"] == pytest.approx(100.0)
    assert scores["acc"] == pytest.approx(50.0)  # two clusters stay unmatched


def test_ami_equals_scikit_learn_and_balanced_acc_an_unmatched_class_scores_zero():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 5, 300), rng.integers(0, 4, 300)
    scores = label_scores(y_true, y_pred)
    assert scores["ami"] == pytest.approx(100 * adjusted_mutual_info_score(y_true, y_pred))
    # 4 clusters for 5 classes: one class has no cluster, so balanced acc < Hungarian acc / 1
    assert 0 < scores["balanced_acc"] < 100
    assert balanced_accuracy([0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 1, 1]) == pytest.approx(
        (1.0 + 0.0 + 1.0) / 3
    )


def test_cluster_sizes():
    sizes = cluster_sizes(np.array([0] * 6 + [1] * 3 + [2] * 1), n_clusters=4)
    assert sizes["found"] == 3
    assert sizes["largest_share"] == pytest.approx(0.6)
    assert sizes["smallest_share"] == pytest.approx(0.1)
    p = np.array([0.6, 0.3, 0.1])
    assert sizes["size_entropy"] == pytest.approx(-(p * np.log(p)).sum() / np.log(4))
    assert cluster_sizes(np.arange(8) % 4, 4)["size_entropy"] == pytest.approx(1.0)


def test_internal_metrics_equal_scikit_learn_on_normalised_features():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8)) + np.repeat(np.eye(8)[:3] * 4, 100, axis=0)
    labels = np.repeat([0, 1, 2], 100)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    scores = label_free_scores(x, labels, seed=0)
    assert scores["silhouette"] == pytest.approx(
        silhouette_score(unit, labels, metric="cosine"), rel=1e-5
    )
    assert scores["davies_bouldin"] == pytest.approx(davies_bouldin_score(unit, labels), rel=1e-5)
    assert scores["calinski_harabasz"] == pytest.approx(
        calinski_harabasz_score(unit, labels), rel=1e-5
    )
    # above the subsample size: a seeded subsample, the same for the same seed
    small = silhouette(unit_features(x), labels, seed=3, max_points=90)
    assert small == silhouette(unit_features(x), labels, seed=3, max_points=90)
    assert small != pytest.approx(scores["silhouette"], rel=1e-9)
    # one cluster: undefined, not an error
    assert label_free_scores(x, np.zeros(300, int), seed=0) == dict.fromkeys(scores)


# ------------------------------------------------------------------------------------------
# statistics


def test_t_interval_of_a_known_sample():
    # mean 2.5, sample std sqrt(5/3), t(0.975, 3) = 3.182446
    half = 3.182446 * math.sqrt(5 / 3) / 2
    low, high = t_interval([1, 2, 3, 4])
    assert (low, high) == pytest.approx((2.5 - half, 2.5 + half), abs=1e-5)
    assert all(math.isnan(v) for v in t_interval([7.0]))
    assert t_interval([3.0, 3.0, 3.0]) == (3.0, 3.0)


def test_paired_tests_match_scipy():
    rng = np.random.default_rng(2)
    a = rng.normal(70, 2, 5)
    b = a - rng.normal(1, 1, 5)
    result = paired_test(a, b)
    assert result.test == PAIRED_T and result.n == 5
    assert result.p == pytest.approx(stats.ttest_rel(a, b).pvalue)
    a, b = rng.normal(70, 2, 12), rng.normal(69, 2, 12)
    result = paired_test(a, b)
    assert result.test == WILCOXON
    assert result.p == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert paired_test([1.0, 2.0], [1.0, 2.0]).p == 1.0
    assert math.isnan(paired_test([1.0], [2.0]).p)


def test_holm_step_down_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.06, 0.04*1) = 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.2, math.nan, 0.01])
    assert adjusted[0] == pytest.approx(0.2) and math.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.02)


def test_nemenyi_critical_values_of_demsar_2006_table_5a():
    published = {2: 1.960, 3: 2.343, 4: 2.569, 5: 2.728, 6: 2.850, 7: 2.949, 8: 3.031,
                 9: 3.102, 10: 3.164}  # fmt: skip
    for k, q in published.items():
        assert nemenyi_q(k) == pytest.approx(q, abs=1.5e-3), k


def test_friedman_and_critical_difference_of_demsar_2006_worked_example():
    # Demšar (2006), section 3.2.2: four C4.5 variants on 14 data sets, average ranks
    # 3.143, 2.000, 2.893, 1.964: chi2_F = 9.28, F_F = 3.69, CD(0.05) = 1.25
    result = friedman_from_ranks(["c4.5", "+m", "+cf", "+m+cf"], [3.143, 2.0, 2.893, 1.964], 14)
    assert result.chi2 == pytest.approx(9.28, abs=0.01)
    assert result.f == pytest.approx(3.69, abs=0.01)
    assert result.cd == pytest.approx(1.25, abs=0.01)
    assert result.p_iman_davenport == pytest.approx(stats.f.sf(3.69, 3, 39), rel=0.01)
    assert result.omnibus[0] == "Iman-Davenport" and result.significant


def test_friedman_when_every_dataset_ranks_alike_uses_the_chi2_p_value():
    result = friedman(np.array([[3.0, 2.0, 1.0]] * 3), list("abc"))
    assert result.ranks == [1.0, 2.0, 3.0] and math.isinf(result.f)
    assert math.isnan(result.p_iman_davenport)
    assert result.omnibus == ("Friedman", pytest.approx(stats.chi2.sf(6.0, 2)))  # chi2 = 6


def test_friedman_corrects_for_ties_as_scipy_and_names_each_p_value():
    # six datasets, four methods, ties within most datasets
    scores = np.array([[70, 70, 60, 50], [80, 75, 75, 60], [50, 50, 50, 40],
                       [90, 85, 85, 85], [66, 60, 60, 55], [71, 71, 65, 65]], float)  # fmt: skip
    result = friedman(scores, list("abcd"))
    expected = stats.friedmanchisquare(*scores.T)
    assert result.chi2 == pytest.approx(expected.statistic)
    assert result.p_friedman == pytest.approx(expected.pvalue)
    # the uncorrected statistic (what the average ranks alone give) is smaller
    uncorrected = friedman_from_ranks(list("abcd"), result.ranks, 6)
    assert uncorrected.chi2 < result.chi2 - 1
    n, k = scores.shape
    f = (n - 1) * result.chi2 / (n * (k - 1) - result.chi2)
    assert result.f == pytest.approx(f)
    assert result.p_iman_davenport == pytest.approx(stats.f.sf(f, k - 1, (k - 1) * (n - 1)))
    text = result.describe()
    assert f"Friedman chi2 = {result.chi2:.2f}" in text and "Iman-Davenport F" in text
    assert text.count("p = ") + text.count("p < ") == 2
    # every method tied on every dataset: no difference at all, not a division by zero
    flat = friedman(np.ones((4, 3)), list("abc"))
    assert flat.chi2 == 0 and flat.p_friedman == 1 and not flat.significant


def test_paired_tests_never_give_p_below_the_exact_minimum_nor_test_a_constant_difference():
    for n in (10, 12):
        a = 70 + np.arange(n, dtype=float)
        b = a - 1.0 - np.linspace(0, 0.5, n)  # a beats b on every seed, by varying amounts
        result = paired_test(a, b)
        assert result.test == WILCOXON and result.p == pytest.approx(wilcoxon_min_p(n))
        assert result.p == pytest.approx(2 / 2**n)
        rng = np.random.default_rng(n)
        for _ in range(20):
            x, y = rng.normal(70, 1, n), rng.normal(69, 1, n)
            assert paired_test(x, y).p >= wilcoxon_min_p(n)
    for n in (3, 12):  # the same difference on every seed: no test, under either test
        a = 70 + np.arange(n, dtype=float)
        result = paired_test(a, a - 2.5)
        assert result.constant and math.isnan(result.p)
    assert not paired_test([1.0, 2.0, 3.0], [0.5, 1.0, 2.9]).constant


def test_friedman_of_a_score_matrix_matches_scipy():
    rng = np.random.default_rng(4)
    scores = rng.normal(size=(6, 4)) + np.array([0.0, 0.5, 1.0, 1.5])
    result = friedman(scores, list("abcd"))
    assert result.chi2 == pytest.approx(stats.friedmanchisquare(*scores.T).statistic)
    assert result.ranks == pytest.approx(list(stats.rankdata(-scores, axis=1).mean(axis=0)))


def test_seed_stability():
    same = np.array([0, 0, 1, 1, 2, 2])
    assert seed_stability([same, (same + 1) % 3, same]) == pytest.approx(100.0)
    assert math.isnan(seed_stability([same]))
    other = np.array([0, 1, 0, 1, 0, 1])
    assert seed_stability([same, other]) < 0


# ------------------------------------------------------------------------------------------
# runs: over-clustering and rescoring


def _record(results: Path, pattern: str):
    paths = sorted(results.glob(pattern))
    assert len(paths) == 1, paths
    return paths[0], read_record(paths[0])


def test_over_clustering_is_part_of_the_run_identity(cli, tmp_path):
    results = tmp_path / "runs"
    common = ("run", "--executor", "local", "--methods", "clip-kmeans", "--datasets", "demo",
              "--seeds", "0", "--results-dir", results)  # fmt: skip
    assert cli(*common).status == 0
    assert cli(*common, "--k-factor", "2").status == 0
    _, plain = _record(results, "clip-kmeans/demo-10/*/seed0-??????????.json")
    path, over = _record(results, "clip-kmeans/demo-10/*/seed0-*-k2.json")
    assert plain.k_factor is None and plain.n_clusters == 10
    assert over.k_factor == 2 and over.spec["k_factor"] == 2 and over.n_clusters == 20
    assert over.n_clusters_found > 10
    assert over.metrics["m2o_acc"] >= over.metrics["acc"]
    # resume: both are done
    status = cli("status", "--methods", "clip-kmeans", "--datasets", "demo", "--seeds", "0",
                 "--results-dir", results, "--k-factor", "2")  # fmt: skip
    assert status.status == 0 and "done" in status.out and "todo" not in status.out.lower()
    again = cli(*common, "--k-factor", "2")
    assert again.status == 0 and over.finished_at == read_record(path).finished_at
    bad = cli(*common, "--k-factor", "0")
    assert bad.status != 0 and len(bad.err_lines) == 1 and "k_factor" in bad.err


def test_rescore_fills_old_records_from_their_predictions(cli, tmp_path):
    results = tmp_path / "runs"
    assert cli("run", "--executor", "local", "--methods", "clip-kmeans", "--datasets", "demo",
               "--seeds", "0-1", "--results-dir", results).status == 0  # fmt: skip
    paths = sorted(results.rglob("*.json"))
    fresh = {p: json.loads(p.read_text()) for p in paths}
    for path, data in fresh.items():  # as a record of the previous release
        old = {k: v for k, v in data.items() if k not in ("internal_metrics", "cluster_sizes",
                                                          "scoring")}  # fmt: skip
        old["metrics"] = {k: data["metrics"][k] for k in ("acc", "nmi", "ari")}
        path.write_text(json.dumps(old))

    warnings: list[str] = []
    report = build_report(results, out=tmp_path / "report", warn=warnings.append)
    assert report.unscored == 2
    assert any("2 record(s) lack the newer scores" in w and "laicbench rescore" in w
               for w in warnings)  # fmt: skip
    runs = pd.read_csv(tmp_path / "report" / "runs.csv")
    assert runs["ami"].isna().all() and runs["silhouette"].isna().all()
    assert (runs["scoring_version"] == 1).all()

    result = cli("rescore", "--results-dir", results)
    assert result.status == 0 and "rescored 2 record(s)" in result.out
    for path, data in fresh.items():
        again = json.loads(path.read_text())
        for key in ("metrics", "internal_metrics", "cluster_sizes"):
            assert again[key] == pytest.approx(data[key]), key
    assert "rescored 0 record(s)" in cli("rescore", "--results-dir", results).out
    warnings.clear()
    assert build_report(results, out=tmp_path / "report", warn=warnings.append).unscored == 0
    assert warnings == []


# ------------------------------------------------------------------------------------------
# the report's statistics, on hand-made records


def _write(root: Path, method: str, dataset: str, seed: int, acc: float, **extra) -> None:
    from laicbench.api import registry
    from laicbench.run.records import ResultStore, RunRecord
    from laicbench.run.spec import RunSpec

    cls = registry.methods.get(method)
    spec = RunSpec(method, dataset, "ViT-B-32:openai", seed, cls().get_params())
    record = RunRecord.start(spec, cls, scoring={"version": 2})
    record.metrics = {"acc": acc, "nmi": acc - 5, "ari": acc - 10, "ami": acc - 6}
    record.internal_metrics = extra.get("internal", {})
    rng = np.random.default_rng(seed)
    y_true = np.repeat(np.arange(4), 5)
    y_pred = y_true.copy() if seed == 0 else rng.permutation(y_true)
    ResultStore(root).write(spec, record, y_true=y_true, y_pred=y_pred)


# silhouette picks ours-notrain, Davies-Bouldin (lower is better) clip-kmeans, Calinski-Harabasz
# tac-notrain
INTERNAL = {
    "clip-kmeans": {"silhouette": 0.1, "davies_bouldin": 1.0, "calinski_harabasz": 40.0},
    "tac-notrain": {"silhouette": 0.2, "davies_bouldin": 3.0, "calinski_harabasz": 60.0},
    "ours-notrain": {"silhouette": 0.3, "davies_bouldin": 2.0, "calinski_harabasz": 50.0},
}


@pytest.fixture(scope="module")
def three_by_three(tmp_path_factory) -> Path:
    """clip-kmeans < tac-notrain < ours-notrain on cifar10, stl10, dtd, seeds 0-3; on dtd
    tac-notrain is within noise of ours-notrain."""
    root = tmp_path_factory.mktemp("stats") / "runs"
    noise = {0: -1.0, 1: 0.5, 2: 1.5, 3: -0.5}
    base = {"clip-kmeans": 60.0, "tac-notrain": 70.0, "ours-notrain": 75.0}
    for d, dataset in enumerate(("cifar10", "stl10", "dtd")):
        for method, acc in base.items():
            for seed, offset in noise.items():
                jitter = offset * (3 if method == "tac-notrain" and dataset == "dtd" else 0.1)
                value = acc + d + jitter + (4.0 if method == "tac-notrain" and dataset == "dtd"
                                            else 0.0)  # fmt: skip
                internal = INTERNAL[method]
                _write(root, method, dataset, seed, value, internal=internal)
    return root


def test_report_statistics_tables_and_figures(three_by_three, tmp_path):
    report = build_report(three_by_three, out=tmp_path / "report", reference=False)
    out = report.out
    names = {t.name for t in report.statistics}
    assert names == {"confidence_intervals", "average_ranks", "seed_stability", "label_free",
                     "label_free_selection"}  # fmt: skip
    for name in names:
        assert (out / f"{name}.md").is_file() and "\\toprule" in (out / f"{name}.tex").read_text()
    index = (out / "index.md").read_text()
    assert all(f"({name}.md)" in index for name in names)

    # main table: on dtd tac-notrain (74 +- 3 noise) ties with ours-notrain (77): marked
    main = (out / "main_table.md").read_text()
    row = next(line for line in main.splitlines() if line.startswith("| tac-notrain"))
    cells = row.split("|")[2:-1]
    assert "≈" in cells[7] and "≈" not in cells[1]  # dtd ACC tied, cifar10 ACC not
    assert "Holm-corrected" in main and "paired t-test" in main
    assert "$^{\\approx}$" in (out / "main_table.tex").read_text()

    # confidence intervals: the t interval of the four seeds
    cells_frame = pd.read_csv(out / "cells.csv")
    row = cells_frame[(cells_frame.method == "clip-kmeans") & (cells_frame.dataset == "cifar10")]
    low, high = t_interval([60.0 + 0.1 * o for o in (-1.0, 0.5, 1.5, -0.5)])
    assert row["acc_ci95_low"].item() == pytest.approx(low)
    assert row["acc_ci95_high"].item() == pytest.approx(high)

    ranks = (out / "average_ranks.md").read_text()
    assert "| ours-notrain | 1.00 |" in ranks and "| clip-kmeans | 3.00 |" in ranks
    assert "Nemenyi critical difference at 0.05: 1.91" in ranks  # 2.343 * sqrt(12 / 18)

    stability = (out / "seed_stability.md").read_text()
    expected = seed_stability(
        [np.repeat(np.arange(4), 5) if s == 0 else
         np.random.default_rng(s).permutation(np.repeat(np.arange(4), 5)) for s in range(4)]
    )  # fmt: skip
    assert f"{expected:.2f} (4)" in stability

    selection = (out / "label_free_selection.md").read_text()
    row = (
        "| dtd | ours-notrain: 77.01 | ours-notrain: 77.01 | clip-kmeans: 62.01 "
        "| tac-notrain: 76.38 |"
    )
    assert row in selection
    assert (
        "| dtd | ours-notrain | 4 | 77.01 | 0.300 | 2.000 | 50.0 |"
        in (out / "label_free.md").read_text()
    )

    figure = out / "figures" / "critical_difference.png"
    image = imread(figure)
    assert image.shape[1] > 500 and len(np.unique(image[..., :3].reshape(-1, 3), axis=0)) > 5
    assert (out / "figures" / "acc_per_seed.png").is_file()


def test_the_metric_table_is_what_runs_store_and_reports_show():
    # every metric of the table is computed for a run, and every report column of a metric
    # comes from it: the record's keys are the table's names
    rng = np.random.default_rng(0)
    y_true = np.repeat(np.arange(4), 25)
    y_pred = np.where(rng.random(100) < 0.8, y_true, rng.integers(0, 4, 100))
    assert set(label_scores(y_true, y_pred)) == {m.name for m in METRICS if not m.label_free}
    x = rng.normal(size=(100, 8)) + np.eye(8)[y_true] * 3
    assert set(label_free_scores(x, y_pred, 0)) == {m.name for m in METRICS if m.label_free}
    names = [m.name for m in METRICS]
    assert len(set(names)) == len(names)
    for entry in METRICS:
        assert entry.format(1.23456) == f"{1.23456:.{entry.digits}f}" and entry.format(None) == "-"
