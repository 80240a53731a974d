"""The figures of ``laicbench report``, drawn with matplotlib from stored records only.

Figures are built on ``matplotlib.figure.Figure`` objects and saved with the Agg (PNG) and PDF
canvases: no pyplot, no display, no global backend switch. Each ``draw_*`` function takes the
runs it needs and the output folder and returns a ``FigureResult``: the files written, or the
reason it was skipped when its data is absent.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from laicbench.cluster.metrics import contingency, hungarian_match
from laicbench.files import canonical_json
from laicbench.report.tables import TABLE_METRICS, Run, Sweep
from laicbench.run.records import load_arrays

DPI = 150
# Okabe-Ito: distinguishable with the common colour-vision deficiencies and in greyscale print.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
TRAINING_FREE = ("clip-kmeans", "tac-notrain", "ours-notrain")
MAX_CENTERS = 20
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


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas: no display, no pyplot state
    return fig


def _save(fig: Figure, folder: Path, stem: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.png", folder / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=DPI, facecolor="white")
    fig.savefig(paths[1], facecolor="white")
    return paths


def _styled(function):
    """Run a drawing function under the report's matplotlib style (fonts, spines): rc values are
    read when artists are made and when files are saved, both inside the function."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return function(*args, **kwargs)

    return wrapper


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value), as in the tables."""
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def _grouped_bars(
    ax,
    columns: list[str],
    series: list[tuple[str, list[tuple[float, float] | None]]],
    value_format: str = "{:.1f}",
) -> float:
    """Bars per column (x) and series (colour), std error bars, the mean written above each.
    Returns the highest error bar top, for the y limit."""
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
            color=PALETTE[i % len(PALETTE)],
            error_kw={"elinewidth": 1, "ecolor": "#333333"},
            label=label,
        )
        for xi, mean, std, ok in zip(offsets, means, stds, present, strict=True):
            text, y = (value_format.format(mean), mean + std + 1) if ok else ("n/a", 1)
            ax.text(
                xi,
                y,
                text,
                ha="center",
                va="bottom",
                fontsize=7.5,
                rotation=90 if n > 3 else 0,
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


def _percent_axis(ax, label: str, highest: float) -> None:
    """A 0-100 % axis with room above the highest error bar for the value written there."""
    ax.set_ylim(0, max(100.0, highest) + 12)
    ax.set_yticks(np.arange(0, 101, 20))
    ax.set_ylabel(label)


def _legend_above(ax, n: int) -> None:
    ax.legend(
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=min(n, 4),
        frameon=False,
        borderaxespad=0.3,
    )


# ------------------------------------------------------------------------------------------


@_styled
def draw_training_free(groups: list[Group], columns: list[str], folder: Path) -> FigureResult:
    """Grouped ACC bars (mean ± std over seeds) of the training-free methods per dataset
    (clip-kmeans, tac-notrain, ours-notrain: the paper's Figure 4); `groups` are the main-table
    cells. Returns the written files, or a skip reason when none of the three has runs."""
    result = FigureResult(
        "training_free",
        "Training-free methods (paper Figure 4)",
        "Test ACC of CLIP K-means, TAC (no-train) and ours (no-train) per dataset, mean ± std "
        "over seeds.",
    )
    cells = {(g.method, g.column): g.runs for g in groups if g.method in TRAINING_FREE}
    methods = [m for m in TRAINING_FREE if any(k[0] == m for k in cells)]
    shown = [c for c in columns if any((m, c) in cells for m in methods)]
    if not shown:
        result.skipped = "no runs of clip-kmeans, tac-notrain or ours-notrain"
        return result
    series = []
    for method in methods:
        values = []
        for column in shown:
            runs = cells.get((method, column))
            values.append(_mean_std([r.metrics["acc"] for r in runs]) if runs else None)
        series.append((method, values))
    fig = _figure(max(5.2, 1.3 + 1.1 * len(shown) * len(methods) / 3), 3.8)
    ax = fig.add_subplot()
    highest = _grouped_bars(ax, shown, series)
    _percent_axis(ax, "test ACC (%)", highest)
    ax.set_xlabel("dataset")
    _legend_above(ax, len(methods))
    fig.suptitle("Training-free LAIC: k-means on three representations", fontsize=11)
    result.files = _save(fig, folder, result.name)
    return result


@_styled
def draw_neighbour_consistency(
    groups: list[Group], columns: list[str], folder: Path
) -> FigureResult:
    """Per dataset, the share of same-class neighbours among each test image's k nearest in
    CLIP image space vs in the relational space (ours-notrain runs, else ours; mean ± std over
    seeds; paper Figure 2). Returns the files or a skip reason."""
    result = FigureResult(
        "neighbour_consistency",
        "Neighbour consistency (paper Figure 2)",
        "Share of each test image's k nearest neighbours that have its class, in CLIP image space "
        "and in the relational space (rows of the ridge relation matrix).",
    )
    by_column: dict[str, list[dict[str, Any]]] = {}
    source: dict[str, str] = {}
    for preferred in ("ours-notrain", "ours"):
        for g in groups:
            if g.method != preferred or g.column in by_column:
                continue
            values = [r.diagnostics.get("neighbour_consistency") for r in g.runs]
            values = [v for v in values if isinstance(v, dict) and "image" in v]
            if values:
                by_column[g.column] = values
                source[g.column] = preferred
    shown = [c for c in columns if c in by_column]
    if not shown:
        result.skipped = "no ours/ours-notrain run with neighbour_consistency diagnostics"
        return result
    ks = sorted({int(v["k"]) for c in shown for v in by_column[c] if "k" in v})
    k_text = "k" if len(ks) != 1 else f"k = {ks[0]}"
    series = []
    for key, label in (("image", "CLIP image space"), ("representation", "relational space")):
        series.append((label, [_mean_std([float(v[key]) for v in by_column[c]]) for c in shown]))
    fig = _figure(max(5.2, 1.5 + 1.0 * len(shown)), 3.8)
    ax = fig.add_subplot()
    highest = _grouped_bars(ax, shown, series)
    _percent_axis(ax, f"same-class share of the {k_text}\nnearest neighbours (%)", highest)
    ax.set_xlabel("dataset (test split; runs of " + ", ".join(sorted(set(source.values()))) + ")")
    _legend_above(ax, 2)
    fig.suptitle("Relational rows keep more same-class neighbours", fontsize=11)
    result.files = _save(fig, folder, result.name)
    return result


@_styled
def draw_pseudo_label_filtering(
    groups: list[Group], columns: list[str], folder: Path
) -> FigureResult:
    """Per dataset, the accuracy of ours' train pseudo-labels before and after neighbourhood
    consistency filtering, with the kept fraction under each dataset (mean over seeds; paper
    Figure 5). Returns the files or a skip reason."""
    result = FigureResult(
        "pseudo_label_filtering",
        "Pseudo-label filtering (paper Figure 5)",
        "Hungarian-matched accuracy of ours' k-means pseudo-labels on the train split, before and "
        "after neighbourhood consistency filtering; the share of samples kept is written under "
        "each dataset.",
    )
    by_column: dict[str, list[dict[str, Any]]] = {}
    for g in groups:
        if g.method != "ours":
            continue
        values = [r.diagnostics.get("pseudo_labels") for r in g.runs]
        values = [
            v
            for v in values
            if isinstance(v, dict)
            and v.get("acc_before") is not None
            and v.get("acc_after") is not None
        ]
        if values:
            by_column[g.column] = values
    shown = [c for c in columns if c in by_column]
    if not shown:
        result.skipped = "no ours run with pseudo_labels diagnostics"
        return result
    series = [
        (label, [_mean_std([float(v[key]) for v in by_column[c]]) for c in shown])
        for key, label in (("acc_before", "before filtering"), ("acc_after", "after filtering"))
    ]
    fig = _figure(max(5.2, 1.5 + 1.0 * len(shown)), 3.8)
    ax = fig.add_subplot()
    kept = [float(np.mean([v["kept_fraction"] for v in by_column[c]])) for c in shown]
    ticks = [f"{c}\nkept {100 * k:.0f}%" for c, k in zip(shown, kept, strict=True)]
    highest = _grouped_bars(ax, ticks, series)
    _percent_axis(ax, "pseudo-label ACC, train split (%)", highest)
    ax.set_xlabel("dataset (kept: share of the train split that passes the filter)")
    _legend_above(ax, 2)
    fig.suptitle("Pseudo-labels of ours: neighbourhood filtering", fontsize=11)
    result.files = _save(fig, folder, result.name)
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


def _block_ticks(ax, axis: str, sizes: list[int], labels: list[str], max_labels: int = 20) -> int:
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


@_styled
def draw_relations_heatmap(run: Run | None, folder: Path) -> FigureResult:
    """Heat map of the relation rows stored with one ours (or ours-notrain) run: test images
    sorted by true class (rows), selected nouns grouped by the class whose mean relation to them
    is largest (columns), class boundaries drawn (paper Figure 3). Returns files or a reason."""
    result = FigureResult(
        "relations_heatmap",
        "Relation matrix (paper Figure 3)",
        "Ridge relation weights of a sample of test images (rows, sorted by true class) to the "
        "selected nouns (columns, grouped by the class they relate to most).",
    )
    if run is None:
        result.skipped = "no ours/ours-notrain run with stored relation rows (relations_sample)"
        return result
    arrays = load_arrays(run.path)
    relations = np.asarray(arrays["relations_sample"], dtype=float)
    labels = np.asarray(arrays["relations_sample_labels"])
    names = class_names(run, arrays["y_true"], arrays["y_pred"])
    classes = sorted(np.unique(labels).tolist())
    order_rows = np.argsort(labels, kind="stable")
    means = np.stack([relations[labels == c].mean(axis=0) for c in classes])  # classes x nouns
    dominant = means.argmax(axis=0)
    strength = means.max(axis=0)
    order_cols = np.lexsort((-strength, dominant))
    matrix = relations[order_rows][:, order_cols]
    limit = float(np.percentile(np.abs(matrix), 99)) or 1.0
    n_rows, n_cols = matrix.shape
    fig = _figure(
        min(11.0, max(6.0, 2.5 + 0.06 * n_cols)), min(9.0, max(5.0, 1.5 + 0.025 * n_rows))
    )
    ax = fig.add_subplot()
    image = ax.imshow(
        matrix, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest"
    )
    row_sizes = [int((labels == c).sum()) for c in classes]
    col_sizes = [int((dominant == i).sum()) for i in range(len(classes))]
    class_labels = [names.get(int(c), f"class {c}") for c in classes]
    row_step = _block_ticks(ax, "y", row_sizes, class_labels)
    col_step = _block_ticks(ax, "x", col_sizes, class_labels)
    every = {1: "", 2: ", every 2nd class named", 3: ", every 3rd class named"}
    ax.set_ylabel(
        f"{n_rows} sampled test images, sorted by true class"
        + every.get(row_step, f", every {row_step}th class named")
    )
    ax.set_xlabel(
        f"{n_cols} selected nouns, grouped by the class they relate to most"
        + every.get(col_step, f", every {col_step}th group named")
    )
    bar = fig.colorbar(image, ax=ax, shrink=0.85, extend="both")
    bar.set_label("relation weight $c_{ij}$ (ridge coefficient)")
    ax.set_title(f"Relations of images to nouns: {run.method}, {run.dataset}, seed {run.seed}")
    result.files = _save(fig, folder, result.name)
    return result


@_styled
def draw_semantic_centers(run: Run | None, folder: Path) -> FigureResult:
    """A table figure of one ours run's learned semantic centers: per cluster the matched class
    (Hungarian), the 5 nearest nouns of the learned center and the prompt it started from (the
    first 20 clusters when K is larger; paper Figure 1b). Returns files or a reason."""
    result = FigureResult(
        "semantic_centers",
        "Learned semantic centers (paper Figure 1b)",
        "Each learned center's 5 nearest nouns beside the class it is matched to; a class name "
        "among its nouns (marked) means the center found the class's own word.",
    )
    if run is None:
        result.skipped = "no ours run with center_nouns artefacts"
        return result
    centers: dict[str, list[str]] = run.artefacts["center_nouns"]
    matched = run.diagnostics.get("cluster_to_class") or {}
    prompts = run.artefacts.get("initial_prompts") or []
    keys = sorted(centers, key=lambda k: (int(k) if str(k).isdigit() else math.inf, str(k)))
    total = len(keys)
    keys = keys[:MAX_CENTERS]
    header = ["cluster", "matched class", "5 nearest nouns of the learned center", "class in top 5"]
    if prompts:
        header.append("initial prompt")
    rows = []
    for key in keys:
        nouns = [str(n) for n in centers[key]][:5]
        klass = str(matched.get(str(key), "-"))
        rank = nouns.index(klass) + 1 if klass in nouns else 0
        row = [str(key), klass, ", ".join(nouns), f"yes (#{rank})" if rank else "no"]
        if prompts:
            index = int(key) if str(key).isdigit() else -1
            row.append(str(prompts[index]) if 0 <= index < len(prompts) else "-")
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    total_width = sum(widths) + 3 * len(widths)
    fig = _figure(max(7.0, 0.085 * total_width), 0.9 + 0.3 * (len(rows) + 1))
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_xlim(0, total_width)
    ax.set_ylim(len(rows) + 0.6, -1)
    x = 0.0
    starts = []
    for w in widths:
        starts.append(x + 1)
        x += w + 3
    for i, text in enumerate(header):
        ax.text(starts[i], -0.3, text, fontweight="bold", va="center", fontsize=9.5)
    ax.axhline(0.25, color="black", linewidth=0.8)
    for r, row in enumerate(rows):
        y = r + 0.75
        if r % 2 == 1:
            ax.axhspan(y - 0.5, y + 0.5, color="#f0f0f0", zorder=0)
        for i, text in enumerate(row):
            colour = "#222222"
            if header[i] == "class in top 5":
                colour = "#007a4d" if text.startswith("yes") else "#b0412e"
            ax.text(
                starts[i],
                y,
                text,
                va="center",
                fontsize=9,
                color=colour,
                family="monospace" if i == 0 else None,
            )
    shown = f"first {len(rows)} of {total} clusters" if total > len(rows) else f"{total} clusters"
    ax.set_title(
        f"Learned semantic centers: {run.method}, {run.dataset}, seed {run.seed} ({shown})",
        loc="left",
    )
    result.files = _save(fig, folder, result.name)
    return result


def _category_label(key: str) -> str:
    """Tick label of a non-numeric parameter value given as canonical JSON (strings unquoted)."""
    value = json.loads(key)
    return value if isinstance(value, str) else key


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@_styled
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
    fig = _figure(11.5, 3.6)
    axes = fig.subplots(1, 3, sharex=True)
    seeds = sorted({len(runs) for s in sweeps for _, runs in s.points})
    for m, metric in enumerate(TABLE_METRICS):
        ax = axes[m]
        for i, sweep in enumerate(sweeps):
            xs = [
                float(v) if numeric else categories.index(canonical_json(v))
                for v, _ in sweep.points
            ]
            stats = [_mean_std([r.metrics[metric] for r in runs]) for _, runs in sweep.points]
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
                color=PALETTE[i % len(PALETTE)],
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
    result.files = _save(fig, folder, result.name)
    return result


@_styled
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
    fig = _figure(size + 1.2, size)
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
    result.files = _save(fig, folder, result.name)
    return result
