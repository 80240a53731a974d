"""The report's statistical figures: the critical-difference diagram of the average ranks
(Friedman test, Nemenyi post-hoc; Demšar 2006) and the ACC of every seed per method and dataset.
"""

from __future__ import annotations

import math

import numpy as np

from laicbench.api.registry import register_figure
from laicbench.report.figures import (
    FigureContext,
    FigureResult,
    new_figure,
    save_figure,
    styled,
)
from laicbench.report.stat_tables import ranks
from laicbench.report.stats import Friedman, format_p
from laicbench.report.tables import method_order, short_backbone


@register_figure("critical_difference")
@styled
def draw_critical_difference(context: FigureContext) -> FigureResult:
    """One diagram per backbone (``stat_tables.ranks``): the average rank of each clustering
    method by ACC on a rank axis, the Nemenyi critical difference as a bar and, only when the
    omnibus test rejects, thick lines joining methods whose ranks differ by less (not
    significantly different). Skipped with fewer than 3 methods or 3 datasets."""
    result = FigureResult(
        "critical_difference",
        "Critical-difference diagram",
        "Average rank by test ACC across datasets (1 = best), one diagram per backbone (a "
        "dataset counts once per diagram); methods joined by a thick line are not "
        "significantly different (Nemenyi post-hoc at 0.05, Demšar 2006), drawn only when the "
        "Iman-Davenport test rejects equal ranks; CD: the critical difference. Each title names "
        "its p-values.",
    )
    tests = ranks(context.points)
    if not tests:
        result.skipped = "needs at least 3 clustering methods on at least 3 common datasets"
        return result
    heights = [1.5 + 0.32 * _rows(t) + (0 if t.significant else 0.2) for t in tests]
    fig = new_figure(7.0, sum(heights))
    panels = fig.subfigures(len(tests), 1, height_ratios=heights, squeeze=False)[:, 0]
    for panel, test in zip(panels, tests, strict=True):
        _diagram(panel, test, len(tests) > 1)
    result.files = save_figure(fig, context.folder, result.name)
    return result


def _rows(test: Friedman) -> int:
    k = len(test.methods)
    return max((k + 1) // 2, k - (k + 1) // 2)


def _diagram(panel, friedman: Friedman, name_backbone: bool) -> None:
    """The critical-difference diagram of one Friedman test on `panel` (a subfigure)."""
    k = len(friedman.methods)
    order = list(np.argsort(friedman.ranks, kind="stable"))
    left, right = order[: (k + 1) // 2], order[(k + 1) // 2 :]
    rows = _rows(friedman)
    ax = panel.add_subplot()
    ax.set_axis_off()
    top = 0.0
    ax.set_xlim(0.5 - 1.5, k + 0.5 + 1.5)  # room for the method names on both sides
    ax.set_ylim(-(rows * 0.9 + 0.5), 1.6)
    ax.hlines(top, 1, k, color="black", linewidth=1)
    for r in range(1, k + 1):
        ax.vlines(r, top, top + 0.18, color="black", linewidth=1)
        ax.text(r, top + 0.28, str(r), ha="center", va="bottom", fontsize=8)
    ax.hlines(1.3, 1, 1 + friedman.cd, color="#B22222", linewidth=2)
    ax.text(1 + friedman.cd / 2, 1.4, f"CD = {friedman.cd:.2f}", ha="center", va="bottom",
            fontsize=8, color="#B22222")  # fmt: skip
    for side, members in (("left", left), ("right", right)):
        for row, index in enumerate(members if side == "left" else reversed(members)):
            y = -(row + 1) * 0.9
            x = friedman.ranks[index]
            end = 0.5 - 0.1 if side == "left" else k + 0.5 + 0.1
            ax.plot([x, x, end], [top, y, y], color="#444444", linewidth=0.8)
            label = f"{friedman.methods[index]} ({x:.2f})"
            ax.text(end + (-0.05 if side == "left" else 0.05), y, label, va="center",
                    ha="right" if side == "left" else "left", fontsize=8)  # fmt: skip
    name, p = friedman.omnibus
    if friedman.significant:
        for i, (lo, hi) in enumerate(_cliques(sorted(friedman.ranks), friedman.cd)):
            y = -0.25 - 0.18 * i
            ax.hlines(y, lo - 0.03, hi + 0.03, color="black", linewidth=3)
    where = f"{friedman.backbone}: " if name_backbone and friedman.backbone else ""
    ranks_p = f"Friedman {format_p(friedman.p_friedman)}"
    if not math.isnan(friedman.p_iman_davenport):
        ranks_p += f", Iman-Davenport {format_p(friedman.p_iman_davenport)}"
    title = f"{where}average ranks over {friedman.n_datasets} datasets ({ranks_p})"
    if not friedman.significant:
        title += f"\nno post-hoc groups: {name} {format_p(p)} ≥ {friedman.alpha}"
    panel.suptitle(title, fontsize=10)


def _cliques(sorted_ranks: list[float], cd: float) -> list[tuple[float, float]]:
    """Maximal runs of consecutive ranks spanning less than `cd` (each not inside another)."""
    spans = []
    for i, start in enumerate(sorted_ranks):
        j = i
        while j + 1 < len(sorted_ranks) and sorted_ranks[j + 1] - start < cd:
            j += 1
        if j > i and not any(a <= start and sorted_ranks[j] <= b for a, b in spans):
            spans.append((start, sorted_ranks[j]))
    return spans


@register_figure("acc_per_seed")
@styled
def draw_acc_per_seed(context: FigureContext) -> FigureResult:
    """One panel per dataset column: the test ACC of every seed of every method as points
    (jittered horizontally) over a box of their spread, so that the spread is seen."""
    result = FigureResult(
        "acc_per_seed",
        "ACC of every seed",
        "Test ACC of each seed (points) and its spread (box: quartiles and median, whiskers: "
        "the lowest and the highest seed) per method and dataset; the main table's runs "
        f"(beyond {MAX_POINTS_PER_BOX} seeds, that many points spread evenly over them).",
    )
    if not context.groups:
        result.skipped = "no runs"
        return result
    methods = sorted(dict.fromkeys(g.method for g in context.groups), key=method_order)
    columns = [c for c in context.columns if any(g.column == c for g in context.groups)]
    per_row = min(len(columns), 3)
    n_rows = -(-len(columns) // per_row)
    width = max(4.2, 0.55 * len(methods) + 1.4) * per_row
    fig = new_figure(min(width, 16.0), 3.0 * n_rows + 0.4)
    axes = fig.subplots(n_rows, per_row, squeeze=False)
    rng = np.random.default_rng(0)
    for index, column in enumerate(columns):
        ax = axes[index // per_row][index % per_row]
        cells = {g.method: g.runs for g in context.groups if g.column == column}
        shown = [m for m in methods if m in cells]
        data = [[r.metrics["acc"] for r in cells[m]] for m in shown]
        ax.boxplot(data, positions=range(len(shown)), widths=0.55, whis=(0, 100),
                   medianprops={"color": "#333333"}, boxprops={"color": "#888888"},
                   whiskerprops={"color": "#888888"}, capprops={"color": "#888888"})  # fmt: skip
        for i, values in enumerate(data):
            values = _spread_sample(values)
            x = i + rng.uniform(-0.12, 0.12, len(values))
            ax.scatter(x, values, s=14, color=context.colour(shown[i]), zorder=3,
                       edgecolors="white", linewidths=0.4)  # fmt: skip
        ax.set_xticks(range(len(shown)), shown, rotation=35, ha="right", fontsize=8)
        ax.set_title(column, fontsize=9)
        ax.set_ylabel("test ACC (%)" if index % per_row == 0 else "")
        ax.yaxis.grid(True, color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
    for index in range(len(columns), n_rows * per_row):
        axes[index // per_row][index % per_row].set_axis_off()
    result.files = save_figure(fig, context.folder, result.name)
    return result


# seeds drawn as points per box: beyond this they hide each other, and thousands of markers make
# the figure's files slow to write (the box is drawn from every seed)
MAX_POINTS_PER_BOX = 300


def _spread_sample(values: list[float]) -> list[float]:
    """At most MAX_POINTS_PER_BOX of `values`, evenly spread over them in sorted order (the
    lowest and the highest included)."""
    if len(values) <= MAX_POINTS_PER_BOX:
        return values
    ordered = sorted(values)
    picks = np.linspace(0, len(ordered) - 1, MAX_POINTS_PER_BOX).round().astype(int)
    return [ordered[i] for i in picks]


@register_figure("backbone_comparison")
@styled
def draw_backbone_comparison(context: FigureContext) -> FigureResult:
    """One panel per dataset run with several backbones: test ACC (mean ± std over seeds) of
    each method (a line) per backbone (x). Skipped when every dataset has one backbone."""
    result = FigureResult(
        "backbone_comparison",
        "Methods across backbones",
        "Test ACC (mean ± std over seeds) of each method per backbone, one panel per dataset "
        "run with more than one backbone.",
    )
    cells: dict[str, dict[tuple[str, str], list[float]]] = {}
    for (method, dataset, backbone), point in context.points.items():
        accs = [r.metrics["acc"] for r in point.runs if "acc" in r.metrics]
        if accs and not point.runs[0].oracle:
            cells.setdefault(dataset, {})[(method, backbone)] = accs
    shown = {d: c for d, c in cells.items() if len({b for _, b in c}) > 1}
    if not shown:
        result.skipped = "every dataset was run with one backbone"
        return result
    backbones = sorted({b for c in shown.values() for _, b in c})
    methods = sorted({m for c in shown.values() for m, _ in c}, key=method_order)
    per_row = min(len(shown), 3)
    n_rows = -(-len(shown) // per_row)
    fig = new_figure(max(4.8, 1.2 * len(backbones) + 2.0) * per_row, 3.3 * n_rows + 0.5)
    axes = fig.subplots(n_rows, per_row, squeeze=False)
    x = np.arange(len(backbones))
    for index, (dataset, values) in enumerate(shown.items()):
        ax = axes[index // per_row][index % per_row]
        for method in methods:
            present = [i for i, b in enumerate(backbones) if (method, b) in values]
            if not present:
                continue
            runs = [values[(method, backbones[i])] for i in present]
            means = [float(np.mean(r)) for r in runs]
            stds = [float(np.std(r, ddof=1)) if len(r) > 1 else 0.0 for r in runs]
            ax.errorbar(x[present], means, yerr=stds, marker="o", capsize=3, label=method,
                        color=context.colour(method), linewidth=1.2)  # fmt: skip
        ax.set_xticks(x, [short_backbone(b) for b in backbones], rotation=25, ha="right",
                      fontsize=8)  # fmt: skip
        ax.set_xlim(-0.5, len(backbones) - 0.5)
        ax.set_title(dataset, fontsize=9)
        ax.set_ylabel("test ACC (%)" if index % per_row == 0 else "")
        ax.yaxis.grid(True, color="#dddddd", linewidth=0.6)
    for index in range(len(shown), n_rows * per_row):
        axes[index // per_row][index % per_row].set_axis_off()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=min(len(methods), 4),
               frameon=False, fontsize=8)  # fmt: skip
    result.files = save_figure(fig, context.folder, result.name)
    return result
