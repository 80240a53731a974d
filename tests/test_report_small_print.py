"""The report's statistics with several backbones (one rank test per backbone), post-hoc groups
only after a significant omnibus test, constant differences in the main table, and the small
print of the figures: one colour per method, whiskers that are what the caption says, value
labels clear of the error bars, features files shown as what they are."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_hex
from matplotlib.patches import Rectangle

from laicbench.api import registry
from laicbench.report import figures, stat_figures
from laicbench.report.build import load_runs
from laicbench.report.figures import FigureContext, grouped_bars, new_figure
from laicbench.report.stat_tables import ranks, ranks_table
from laicbench.report.stats import nemenyi_q
from laicbench.report.tables import build_main_table, column_labels, main_points, to_markdown
from laicbench.run.records import ResultStore, RunRecord
from laicbench.run.spec import RunSpec

METHODS = ("clip-kmeans", "tac-notrain", "ours-notrain")
BACKBONES = ("ViT-B-32:openai", "ViT-L-14:openai")


def _write(root, method, dataset, seed, acc, backbone=BACKBONES[0]):
    cls = registry.methods.get(method)
    spec = RunSpec(method, dataset, backbone, seed, cls().get_params())
    record = RunRecord.start(spec, cls, scoring={"version": 2})
    record.metrics = {"acc": acc, "nmi": acc - 5, "ari": acc - 10, "ami": acc - 6}
    y_true = np.repeat(np.arange(4), 5)
    ResultStore(root).write(spec, record, y_true=y_true, y_pred=y_true)


def _runs(root):
    runs, _ = load_runs(root)
    return [r for r in runs if r.state == "done"]


def _context(runs, tmp_path) -> FigureContext:
    return FigureContext.of(main_points(runs), column_labels(runs), tmp_path / "figures")


@pytest.fixture
def drawn(monkeypatch):
    """The figures the drawing functions save, by file stem (not written to disk)."""
    saved = {}

    def keep(fig, folder, stem):
        fig.canvas.draw()
        saved[stem] = fig
        return []

    for module in (figures, stat_figures):
        monkeypatch.setattr(module, "save_figure", keep)
    return saved


def _thick_lines(fig) -> int:
    axes = [ax for sub in fig.subfigs for ax in sub.axes]
    return sum(
        1
        for ax in axes
        for c in ax.collections
        if isinstance(c, LineCollection) and c.get_linewidths()[0] == 3
    )


def test_ranks_count_each_dataset_once_per_backbone(tmp_path, drawn):
    root = tmp_path / "runs"
    for b, backbone in enumerate(BACKBONES):  # the same ordering on both backbones
        for d, dataset in enumerate(("cifar10", "stl10", "dtd")):
            for m, method in enumerate(METHODS):
                _write(root, method, dataset, 0, 60 + 5 * m + d + b, backbone)
    runs = _runs(root)
    tests = ranks(main_points(runs))
    assert [t.backbone for t in tests] == list(BACKBONES)
    for test in tests:  # 3 datasets each, not 6 (dataset, backbone) pairs
        assert test.n_datasets == 3 and test.ranks == [3.0, 2.0, 1.0]
        assert test.cd == pytest.approx(nemenyi_q(3) * np.sqrt(3 * 4 / (6 * 3)))
    table = ranks_table(tests)
    assert table.header == ["method", *(f"average rank (ACC, {b})" for b in BACKBONES)]
    assert ["ours-notrain", "1.00", "1.00"] in table.rows
    assert "Ranked per backbone" in table.caption
    assert all(f"{b}, 3 datasets: Friedman chi2 = 6.00" in table.caption for b in BACKBONES)
    stat_figures.draw_critical_difference(_context(runs, tmp_path))
    fig = drawn["critical_difference"]
    titles = [sub._suptitle.get_text() for sub in fig.subfigs]
    assert [t.split(":")[0] + ":" + t.split(":")[1] for t in titles] == list(BACKBONES)
    assert all("Friedman p = 0.0498" in t for t in titles)  # named: chi2's p-value
    assert _thick_lines(fig) == 4  # significant: ranks 1-2 and 2-3 within the CD, per diagram


def test_no_post_hoc_groups_when_the_omnibus_test_is_not_significant(tmp_path, drawn):
    root = tmp_path / "runs"
    rotation = [(60, 62, 64), (64, 60, 62), (62, 64, 60), (61, 63, 65)]  # no method is better
    for dataset, accs in zip(("cifar10", "stl10", "dtd", "ucf101"), rotation, strict=True):
        for method, acc in zip(METHODS, accs, strict=True):
            _write(root, method, dataset, 0, acc)
    runs = _runs(root)
    (test,) = ranks(main_points(runs))
    assert not test.significant and test.omnibus[0] == "Iman-Davenport"
    assert "no post-hoc groups: the Iman-Davenport test is not significant" in (
        ranks_table([test]).caption
    )
    stat_figures.draw_critical_difference(_context(runs, tmp_path))
    fig = drawn["critical_difference"]
    assert _thick_lines(fig) == 0
    title = fig.subfigs[0]._suptitle.get_text()
    assert "Friedman p = " in title and "Iman-Davenport p = " in title
    assert "\nno post-hoc groups: Iman-Davenport p = " in title


def test_a_constant_difference_over_seeds_is_marked_not_significant(tmp_path):
    root = tmp_path / "runs"
    for seed, noise in enumerate((0.3, -0.2, 0.5)):
        _write(root, "ours-notrain", "cifar10", seed, 80 + noise)
        _write(root, "tac-notrain", "cifar10", seed, 75 + noise)  # 5 below on every seed
        _write(root, "clip-kmeans", "cifar10", seed, 60 + 3 * noise)
    markdown = to_markdown(build_main_table(_runs(root)))
    rows = {line.split("|")[1].strip(): line for line in markdown.splitlines() if "|" in line}
    tac_acc = rows["tac-notrain"].split("|")[3]
    assert "≡" in tac_acc and "≈" not in tac_acc
    assert "≡" not in rows["clip-kmeans"].split("|")[3]
    assert "≡: differs from the column's best by the same amount on every seed" in markdown
    assert "across the table's 3 comparisons" in markdown  # the constant cells are not tests


def test_every_figure_gives_a_method_the_same_colour(tmp_path, drawn):
    root = tmp_path / "runs"
    for backbone in BACKBONES:
        for d, dataset in enumerate(("cifar10", "dtd")):
            for m, method in enumerate(("clip-kmeans", "tac-notrain", "tac", "ours-notrain")):
                for seed in (0, 1):
                    _write(root, method, dataset, seed, 50 + 5 * m + d + seed, backbone)
    context = _context(_runs(root), tmp_path)
    methods = ["clip-kmeans", "tac-notrain", "tac", "ours-notrain"]
    expected = {m: to_hex(c) for m, c in figures.method_colours(methods).items()}
    assert len(set(expected.values())) == 4
    figures.draw_training_free(context)  # tac is not training-free: a subset of the methods
    stat_figures.draw_acc_per_seed(context)
    stat_figures.draw_backbone_comparison(context)
    ax = drawn["training_free"].axes[0]
    bars = {
        label: to_hex(patches[0].get_facecolor())
        for patches, label in zip(*ax.get_legend_handles_labels(), strict=True)
    }
    ax = drawn["acc_per_seed"].axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    points = [to_hex(c.get_facecolor()[0]) for c in ax.collections if isinstance(c, PathCollection)]
    handles, labels = drawn["backbone_comparison"].axes[0].get_legend_handles_labels()
    lines = {label: to_hex(h[0].get_color()) for h, label in zip(handles, labels, strict=True)}
    for seen in (bars, dict(zip(ticks, points, strict=True)), lines):
        assert seen == {m: expected[m] for m in seen}
    assert set(bars) == {"clip-kmeans", "tac-notrain", "ours-notrain"} and len(lines) == 4


def test_acc_per_seed_whiskers_reach_the_lowest_and_highest_seed(tmp_path, drawn):
    root = tmp_path / "runs"
    accs = [60.0, 61.0, 61.5, 62.0, 75.0]  # 75 lies beyond 1.5 IQR of the others
    for seed, acc in enumerate(accs):
        _write(root, "clip-kmeans", "cifar10", seed, acc)
    stat_figures.draw_acc_per_seed(_context(_runs(root), tmp_path))
    ax = drawn["acc_per_seed"].axes[0]
    whiskers = [y for line in ax.lines for y in line.get_ydata()]
    assert min(whiskers) == pytest.approx(min(accs)) and max(whiskers) == pytest.approx(max(accs))


def test_value_labels_stay_clear_of_the_error_bars(tmp_path):
    fig = new_figure(6.0, 3.8)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    series = [
        (f"m{i}", [(float(rng.uniform(20, 80)), float(rng.uniform(0, 12))) for _ in range(5)])
        for i in range(4)
    ]
    highest = grouped_bars(ax, [f"d{j}" for j in range(5)], series)
    figures.percent_axis(ax, "ACC", highest)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(labels) == 20
    segments = [
        segment
        for c in ax.collections
        if isinstance(c, LineCollection)
        for segment in c.get_segments()
    ]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    for box in labels:
        assert box.y1 <= ax.get_window_extent(renderer).y1  # inside the axes
        for segment in segments:  # error bars (vertical) and their caps
            points = ax.transData.transform(segment)
            x0, x1 = sorted(points[:, 0])
            y0, y1 = sorted(points[:, 1])
            assert x1 < box.x0 or x0 > box.x1 or y1 < box.y0 or y0 > box.y1
        for bar in bars:
            assert not box.overlaps(bar.get_window_extent(renderer))


def test_features_files_are_shown_as_what_they_are(cli, tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 10)
    x = (np.eye(4, 8)[y] + rng.normal(0, 0.1, (40, 8))).astype(np.float32)
    path = tmp_path / "mine.npz"
    np.savez(path, image_train=x, image_test=x, labels_train=y, labels_test=y,
             backbone=np.array("ViT-B-16:laion400m_e32"))  # fmt: skip
    results = tmp_path / "runs"
    common = ("run", "--methods", "clip-kmeans", "--datasets", path, "--seeds", "0",
              "--results-dir", results)  # fmt: skip
    dry = cli(*common, "--dry-run")
    assert "features file" in dry.out and "features-file" not in dry.out
    assert cli(*common).status == 0
    (run,) = _runs(results)
    assert run.backbone == "features file (made with ViT-B-16:laion400m_e32)"
    markdown = to_markdown(build_main_table([run]))
    assert "Backbone: features file (made with ViT-B-16:laion400m_e32)." in markdown
    assert "features-file" not in markdown
