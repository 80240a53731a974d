"""The figures of ``laicbench report``, drawn with matplotlib from stored records only, and the
kit that figure plugins draw with.

A figure plugin is a function registered with ``register_figure(name)`` that takes a
``FigureContext`` (the main table's cells, the output folder) and returns a ``FigureResult``: the
files written, or the reason it was skipped when its data is absent. The report draws every
registered figure (the report's own first, then those of plugins), then one sensitivity figure
per parameter sweep and the confusion matrix of one run. Figures specific to one method are
registered by its plugin (``laicbench/methods/ours_figures.py`` for the 2026 method's).

Figures are built on ``matplotlib.figure.Figure`` objects (``new_figure``) and saved with the Agg
(PNG) and PDF canvases (``save_figure``): no pyplot, no display, no global backend switch.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from laicbench.api.errors import UserError
from laicbench.api.registry import register_figure
from laicbench.cluster.metrics import contingency, hungarian_match
from laicbench.files import canonical_json
from laicbench.report.tables import TABLE_METRICS, MainPoint, Run, Sweep, method_order
from laicbench.run.records import load_arrays, predictions_path

DPI = 150
# The colours of methods: Okabe-Ito (distinguishable with the common colour-vision deficiencies
# and in greyscale print), then Paul Tol's muted scheme for reports of more than eight methods.
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
    "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255",
    "#AA4499",
)  # fmt: skip
# The colours of the other series (the datasets of a sensitivity figure): greys and earth
# tones that no method takes, so that a colour always means one method.
SERIES_PALETTE = ("#444444", "#8C6D31", "#999999", "#6B4C2A", "#BBBBBB", "#5F5F3A")


def method_colours(methods: Sequence[str]) -> dict[str, str]:
    """{method: colour} for the methods of one report: PALETTE's colours in registry order of
    `methods` (the same method set always gets the same colours), so that a method has one
    colour in every figure of the report. Every figure that colours methods takes its colours
    from here (``FigureContext.colour``)."""
    ordered = sorted(dict.fromkeys(methods), key=method_order)
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(ordered)}


RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@dataclass
class FigureResult:
    """One figure of the report: its file stem, title, a one-line description of what it shows,
    the files written (PNG then PDF), or `skipped` with the reason when there was no data."""

    name: str
    title: str
    description: str = ""
    files: list[Path] = field(default_factory=list)
    skipped: str | None = None


@dataclass
class Group:
    """The runs of one (method, dataset column) cell that a figure summarises over seeds."""

    method: str
    column: str
    runs: list[Run]


@dataclass
class FigureContext:
    """What a registered figure draws from: `groups` (one per main-table cell: a method on a
    dataset column, its runs over seeds), the dataset `columns` in table order, and the `folder`
    that figures are saved to."""

    groups: list[Group]
    columns: list[str]
    folder: Path
    points: dict[tuple[str, str, str], MainPoint] = field(default_factory=dict, repr=False)
    column_keys: list[tuple[str, str]] = field(default_factory=list, repr=False)

    @classmethod
    def of(
        cls,
        points: dict[tuple[str, str, str], MainPoint],
        labels: dict[tuple[str, str], str],
        folder: Path,
    ) -> FigureContext:
        """The context of the main table's cells `points` ((method, dataset, backbone): runs)
        whose dataset columns are `labels` ((dataset, backbone): label), saving to `folder`."""
        return cls(
            groups=[
                Group(method, labels[(dataset, backbone)], point.runs)
                for (method, dataset, backbone), point in points.items()
            ],
            columns=list(labels.values()),
            folder=folder,
            points=points,
            column_keys=list(labels),
        )

    def pick(self, methods: Sequence[str], accept: Callable[[Run], bool]) -> Run | None:
        """The first run of `methods` (in that preference order), on the first dataset column
        that has one, with the lowest seed, that `accept` takes (None when there is none)."""
        for method in methods:
            for dataset, backbone in self.column_keys:
                point = self.points.get((method, dataset, backbone))
                for run in sorted(point.runs if point else [], key=lambda r: r.seed):
                    if accept(run):
                        return run
        return None

    def colour(self, method: str) -> str:
        """The colour of `method` in every figure of this report (``method_colours`` of the
        report's methods)."""
        if "_colours" not in self.__dict__:
            everything = [g.method for g in self.groups] + [k[0] for k in self.points]
            self.__dict__["_colours"] = method_colours(everything)
        return self.__dict__["_colours"].get(method) or method_colours([method])[method]

    def methods_tagged(self, tag: str) -> list[str]:
        """The methods of the groups whose method carries `tag`, not oracles, in table order."""
        methods = [g.method for g in self.groups if tag in g.runs[0].tags and not g.runs[0].oracle]
        return sorted(dict.fromkeys(methods), key=method_order)


def check_figure(name: str, function: Any) -> None:
    """UserError (one line) unless `function` can be registered as figure `name`: a function
    taking one argument (the FigureContext)."""
    if not callable(function) or inspect.isclass(function):
        raise UserError(f"figure {name!r} ({function!r}) is not a function")
    try:
        inspect.signature(function).bind(None)
    except (TypeError, ValueError) as exc:
        raise UserError(
            f"figure {name!r} ({function.__module__}.{function.__qualname__}) must take one "
            "argument, the FigureContext"
        ) from exc


def has_arrays(run: Run, *names: str) -> bool:
    """Whether the predictions file of `run` holds the arrays `names`."""
    path = predictions_path(run.path)
    if not path.is_file():
        return False
    try:
        with np.load(path) as data:
            return all(name in data.files for name in names)
    except (OSError, ValueError):
        return False


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas: no display, no pyplot state
    return fig


def save_figure(fig: Figure, folder: Path, stem: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.png", folder / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=DPI, facecolor="white")
    fig.savefig(paths[1], facecolor="white")
    return paths


def styled(function):
    """Run a drawing function under the report's matplotlib style (fonts, spines): rc values are
    read when artists are made and when files are saved, both inside the function."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return function(*args, **kwargs)

    return wrapper


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value), as in the tables."""
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def grouped_bars(
    ax,
    columns: list[str],
    series: list[tuple[str, list[tuple[float, float] | None]]],
    value_format: str = "{:.1f}",
    colours: Sequence[str] | None = None,
) -> float:
    """Bars per column (x) and series (colour: `colours`, one per series, else PALETTE's in
    order), std error bars, the mean written vertically a few points above each error bar's
    cap, so that no label crosses an error bar. Returns the highest error bar top, for the y
    limit."""
    n = len(series)
    width = 0.8 / n
    x = np.arange(len(columns))
    for i, (label, values) in enumerate(series):
        offsets = x - 0.4 + width * (i + 0.5)
        means = [v[0] if v else 0.0 for v in values]
        stds = [v[1] if v else 0.0 for v in values]
        present = [v is not None for v in values]
        ax.bar(
            offsets[present],
            np.asarray(means)[present],
            width * 0.92,
            yerr=np.asarray(stds)[present],
            capsize=3,
            color=colours[i] if colours else PALETTE[i % len(PALETTE)],
            error_kw={"elinewidth": 1, "ecolor": "#333333"},
            label=label,
        )
        for xi, mean, std, ok in zip(offsets, means, stds, present, strict=True):
            text, y = (value_format.format(mean), mean + std) if ok else ("n/a", 0.0)
            ax.annotate(
                text,
                (xi, y),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90,
                color="#222222" if ok else "#888888",
            )
    ax.set_xticks(
        x,
        columns,
        rotation=30 if len(columns) > 4 else 0,
        ha="right" if len(columns) > 4 else "center",
    )
    ax.set_xlim(-0.6, len(columns) - 0.4)
    ax.yaxis.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    tops = [v[0] + v[1] for _, values in series for v in values if v is not None]
    return max(tops, default=0.0)


def percent_axis(ax, label: str, highest: float) -> None:
    """A 0-100 % axis with room above the highest error bar for the value written there."""
    ax.set_ylim(0, max(100.0, highest) + 18)
    ax.set_yticks(np.arange(0, 101, 20))
    ax.set_ylabel(label)


def legend_above(ax, n: int) -> None:
    ax.legend(
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=min(n, 4),
        frameon=False,
        borderaxespad=0.3,
    )


# ------------------------------------------------------------------------------------------


@register_figure("training_free")
@styled
def draw_training_free(context: FigureContext) -> FigureResult:
    """Grouped ACC bars (mean ± std over seeds) of the training-free methods (tag
    ``training-free``; CLIP K-means, TAC and ours without training: the paper's Figure 4) per
    dataset. Returns the written files, or a skip reason when none has runs."""
    methods = context.methods_tagged("training-free")
    result = FigureResult(
        "training_free",
        "Training-free methods (paper Figure 4)",
        f"Test ACC of the training-free methods ({', '.join(methods) or 'none'}) per dataset, "
        "mean ± std over seeds.",
    )
    cells = {(g.method, g.column): g.runs for g in context.groups if g.method in methods}
    shown = [c for c in context.columns if any((m, c) in cells for m in methods)]
    if not shown:
        result.skipped = "no runs of a training-free method"
        return result
    series = []
    for method in methods:
        values = []
        for column in shown:
            runs = cells.get((method, column))
            values.append(mean_std([r.metrics["acc"] for r in runs]) if runs else None)
        series.append((method, values))
    fig = new_figure(max(5.2, 1.3 + 1.1 * len(shown) * len(methods) / 3), 3.8)
    ax = fig.add_subplot()
    highest = grouped_bars(ax, shown, series, colours=[context.colour(m) for m in methods])
    percent_axis(ax, "test ACC (%)", highest)
    ax.set_xlabel("dataset")
    legend_above(ax, len(methods))
    fig.suptitle("Training-free methods: test ACC per dataset", fontsize=11)
    result.files = save_figure(fig, context.folder, result.name)
    return result


def class_names(run: Run, y_true: np.ndarray, y_pred: np.ndarray) -> dict[int, str]:
    """{class index: name} from the run's cluster_to_class diagnostics and the Hungarian
    matching of its predictions ('class <i>' where a class has no matched cluster)."""
    mapping = hungarian_match(y_true, y_pred)
    by_cluster = run.diagnostics.get("cluster_to_class") or {}
    names = {int(c): f"class {int(c)}" for c in np.unique(y_true)}
    for cluster, klass in mapping.items():
        if str(cluster) in by_cluster:
            names[klass] = str(by_cluster[str(cluster)])
    return names


def block_ticks(ax, axis: str, sizes: list[int], labels: list[str], max_labels: int = 20) -> int:
    """Ticks at the middle of consecutive blocks of `sizes`, boundaries as thin lines (lighter
    when there are many blocks, so that they do not hide the data). Returns the label step: 1 when
    every block is named, n when every n-th is."""
    edges = np.concatenate([[0], np.cumsum(sizes)])
    centers = (edges[:-1] + edges[1:]) / 2 - 0.5
    keep = [i for i, s in enumerate(sizes) if s > 0]
    step = max(1, math.ceil(len(keep) / max_labels))
    keep = keep[::step]
    line = ax.axhline if axis == "y" else ax.axvline
    many = len(sizes) > max_labels
    for edge in np.unique(edges[1:-1]):
        line(edge - 0.5, color="#444444" if many else "black", linewidth=0.3 if many else 0.6)
    if axis == "y":
        ax.set_yticks(centers[keep], [labels[i] for i in keep], fontsize=8)
    else:
        ax.set_xticks(centers[keep], [labels[i] for i in keep], fontsize=8, rotation=90)
    return step


def _category_label(key: str) -> str:
    """Tick label of a non-numeric parameter value given as canonical JSON (strings unquoted)."""
    value = json.loads(key)
    return value if isinstance(value, str) else key


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@styled
def draw_sensitivity(sweeps: list[Sweep], folder: Path) -> FigureResult:
    """NMI, ACC and ARI (mean ± std over seeds) against one parameter of one method, one line
    per dataset, the default value marked; `sweeps` share (method, param). Returns the files."""
    method, param = sweeps[0].method, sweeps[0].param
    result = FigureResult(
        f"sensitivity_{method}_{param}",
        f"Sensitivity of {method} to {param}",
        f"NMI, ACC and ARI of {method} against {param} (other parameters fixed), mean ± std over "
        "seeds; the dashed line marks the default.",
    )
    values = [v for s in sweeps for v, _ in s.points]
    numeric = all(_is_number(v) for v in values)
    categories: list[str] = []
    if not numeric:
        for s in sweeps:
            for v, _ in s.points:
                if canonical_json(v) not in categories:
                    categories.append(canonical_json(v))
    positives = [float(v) for v in values if numeric and float(v) > 0]
    # values over decades (lambda 0.3..10) read on a log axis
    log = numeric and len(positives) == len(values) and max(positives) / min(positives) > 10
    fig = new_figure(11.5, 3.6)
    axes = fig.subplots(1, 3, sharex=True)
    seeds = sorted({len(runs) for s in sweeps for _, runs in s.points})
    for m, metric in enumerate(TABLE_METRICS):
        ax = axes[m]
        for i, sweep in enumerate(sweeps):
            xs = [
                float(v) if numeric else categories.index(canonical_json(v))
                for v, _ in sweep.points
            ]
            stats = [mean_std([r.metrics[metric] for r in runs]) for _, runs in sweep.points]
            label = (
                sweep.dataset
                if sum(s.dataset == sweep.dataset for s in sweeps) == 1
                else (f"{sweep.dataset} ({sweep.backbone})")
            )
            ax.errorbar(
                xs,
                [s[0] for s in stats],
                yerr=[s[1] for s in stats],
                marker="o",
                capsize=3,
                color=SERIES_PALETTE[i % len(SERIES_PALETTE)],
                label=label,
                linewidth=1.4,
                markersize=5,
            )
            if len(seeds) > 1:  # seeds differ between points: say how many each point has
                for x, (mean, _), (_, runs) in zip(xs, stats, sweep.points, strict=True):
                    ax.annotate(
                        f"n={len(runs)}",
                        (x, mean),
                        xytext=(4, 3),
                        textcoords="offset points",
                        fontsize=7,
                        color="#555555",
                    )
        default = sweeps[0].default
        if sweeps[0].has_default and (
            (numeric and _is_number(default))
            or (not numeric and canonical_json(default) in categories)
        ):
            xd = float(default) if numeric else categories.index(canonical_json(default))
            ax.axvline(xd, color="#555555", linestyle="--", linewidth=1, zorder=0)
            ax.annotate(
                "default",
                (xd, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -3),
                textcoords="offset points",
                ha="left",
                va="top",
                fontsize=8,
                color="#555555",
            )
        if log:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(categories)), [_category_label(c) for c in categories])
        elif len(set(values)) <= 8:
            ticks = sorted({float(v) for v in values})
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
        ax.set_title(metric.upper())
        ax.set_xlabel(param)
        ax.set_ylabel(f"test {metric.upper()} (%)")
        ax.yaxis.grid(True, color="#dddddd", linewidth=0.6)
        ax.margins(y=0.25)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", frameon=False, title="dataset")
    seeds_text = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    fig.suptitle(
        f"{method}: sensitivity to {param} (mean ± std over {seeds_text} seed(s) per point)",
        fontsize=11,
    )
    result.files = save_figure(fig, folder, result.name)
    return result


@styled
def draw_confusion(run: Run | None, folder: Path) -> FigureResult:
    """The confusion matrix of one run from its stored predictions: rows = true classes, columns
    = clusters ordered by their Hungarian-matched class, colour = share of the class (row), counts
    written for up to 20 classes. Returns the files or a skip reason."""
    result = FigureResult(
        "confusion",
        "Confusion matrix",
        "True classes (rows) against clusters (columns, in the order of their Hungarian-matched "
        "class, so that the diagonal holds the matched samples).",
    )
    if run is None:
        result.skipped = "no run with stored predictions"
        return result
    arrays = load_arrays(run.path)
    y_true, y_pred = np.asarray(arrays["y_true"]), np.asarray(arrays["y_pred"])
    classes, clusters, counts = contingency(y_true, y_pred)
    mapping = hungarian_match(y_true, y_pred)
    by_class = {klass: cluster for cluster, klass in mapping.items()}
    ordered = [by_class[int(c)] for c in classes if int(c) in by_class]
    ordered += [int(c) for c in clusters if int(c) not in mapping]
    cluster_pos = {int(c): j for j, c in enumerate(clusters)}
    matrix = counts[:, [cluster_pos[c] for c in ordered]]
    share = 100.0 * matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    names = class_names(run, y_true, y_pred)
    n_classes, n_clusters = matrix.shape
    size = min(11.0, max(5.0, 2.5 + 0.32 * max(n_classes, n_clusters)))
    fig = new_figure(size + 1.2, size)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=100, interpolation="nearest")
    step = max(1, math.ceil(max(n_classes, n_clusters) / 60))
    tick_size = 8 if max(n_classes, n_clusters) <= 30 else 6.5
    ax.set_yticks(
        range(0, n_classes, step), [names[int(c)] for c in classes][::step], fontsize=tick_size
    )
    ax.set_xticks(
        range(0, n_clusters, step),
        [str(c) for c in ordered][::step],
        fontsize=tick_size,
        rotation=90 if n_clusters > 12 else 0,
    )
    if max(n_classes, n_clusters) <= 20:
        for i in range(n_classes):
            for j in range(n_clusters):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        str(matrix[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if share[i, j] > 55 else "#222222",
                    )
    if len(by_class) < n_clusters:  # unmatched clusters come after a line
        ax.axvline(len(by_class) - 0.5, color="#b0412e", linewidth=1)
    ax.set_ylabel("true class")
    ax.set_xlabel("cluster id (ordered by matched class)")
    ax.spines[["top", "right"]].set_visible(True)
    bar = fig.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label("share of the class's test images (%)")
    acc = run.metrics.get("acc")
    acc_text = f", ACC {acc:.2f}%" if isinstance(acc, (int, float)) else ""
    counts_text = "; numbers: image counts" if max(n_classes, n_clusters) <= 20 else ""
    ax.set_title(
        f"Confusion matrix of {run.run_id}\n(test split{acc_text}; colour: share of the true "
        f"class{counts_text})",
        fontsize=9.5,
    )
    result.files = save_figure(fig, folder, result.name)
    return result
