"""The report figures of the 2026 method (paper Figures 1b, 2, 3 and 5), registered beside it.

They read what ``ours`` and ``ours-notrain`` leave in their records: the label-based diagnostics
the harness computes from their MethodOutputs (neighbour consistency, pseudo-label accuracy), the
relation rows stored beside the predictions and the learned centers' nearest nouns.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from laicbench.api import register_figure
from laicbench.report.figures import (
    SERIES_PALETTE,
    FigureContext,
    FigureResult,
    block_ticks,
    class_names,
    grouped_bars,
    has_arrays,
    legend_above,
    mean_std,
    new_figure,
    percent_axis,
    save_figure,
    styled,
)
from laicbench.run.records import load_arrays

MAX_CENTERS = 20


@register_figure("neighbour_consistency")
@styled
def draw_neighbour_consistency(context: FigureContext) -> FigureResult:
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
        for g in context.groups:
            if g.method != preferred or g.column in by_column:
                continue
            values = [r.diagnostics.get("neighbour_consistency") for r in g.runs]
            values = [v for v in values if isinstance(v, dict) and "image" in v]
            if values:
                by_column[g.column] = values
                source[g.column] = preferred
    shown = [c for c in context.columns if c in by_column]
    if not shown:
        result.skipped = "no ours/ours-notrain run with neighbour_consistency diagnostics"
        return result
    ks = sorted({int(v["k"]) for c in shown for v in by_column[c] if "k" in v})
    k_text = "k" if len(ks) != 1 else f"k = {ks[0]}"
    series = []
    for key, label in (("image", "CLIP image space"), ("representation", "relational space")):
        series.append((label, [mean_std([float(v[key]) for v in by_column[c]]) for c in shown]))
    fig = new_figure(max(5.2, 1.5 + 1.0 * len(shown)), 3.8)
    ax = fig.add_subplot()
    highest = grouped_bars(ax, shown, series)
    percent_axis(ax, f"same-class share of the {k_text}\nnearest neighbours (%)", highest)
    ax.set_xlabel("dataset (test split; runs of " + ", ".join(sorted(set(source.values()))) + ")")
    legend_above(ax, 2)
    fig.suptitle("Relational rows keep more same-class neighbours", fontsize=11)
    result.files = save_figure(fig, context.folder, result.name)
    return result


@register_figure("pseudo_label_filtering")
@styled
def draw_pseudo_label_filtering(context: FigureContext) -> FigureResult:
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
    for g in context.groups:
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
    shown = [c for c in context.columns if c in by_column]
    if not shown:
        result.skipped = "no ours run with pseudo_labels diagnostics"
        return result
    series = [
        (label, [mean_std([float(v[key]) for v in by_column[c]]) for c in shown])
        for key, label in (("acc_before", "before filtering"), ("acc_after", "after filtering"))
    ]
    fig = new_figure(max(5.2, 1.5 + 1.0 * len(shown)), 3.8)
    ax = fig.add_subplot()
    kept = [float(np.mean([v["kept_fraction"] for v in by_column[c]])) for c in shown]
    ticks = [f"{c}\nkept {100 * k:.0f}%" for c, k in zip(shown, kept, strict=True)]
    highest = grouped_bars(ax, ticks, series)
    percent_axis(ax, "pseudo-label ACC, train split (%)", highest)
    ax.set_xlabel("dataset (kept: share of the train split that passes the filter)")
    legend_above(ax, 2)
    fig.suptitle("Pseudo-labels of ours: neighbourhood filtering", fontsize=11)
    result.files = save_figure(fig, context.folder, result.name)
    return result


@register_figure("relations_heatmap")
@styled
def draw_relations_heatmap(context: FigureContext) -> FigureResult:
    """Heat map of the relation rows stored with one ours (or ours-notrain) run: test images
    sorted by true class (rows), selected nouns grouped by the class whose mean relation to them
    is largest (columns), class boundaries drawn (paper Figure 3). Returns files or a reason."""
    result = FigureResult(
        "relations_heatmap",
        "Relation matrix (paper Figure 3)",
        "Ridge relation weights of a sample of test images (rows, sorted by true class) to the "
        "selected nouns (columns, grouped by the class they relate to most).",
    )
    run = context.pick(
        ("ours", "ours-notrain"),
        lambda r: has_arrays(r, "relations_sample", "relations_sample_labels", "y_true", "y_pred"),
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
    fig = new_figure(
        min(11.0, max(6.0, 2.5 + 0.06 * n_cols)), min(9.0, max(5.0, 1.5 + 0.025 * n_rows))
    )
    ax = fig.add_subplot()
    image = ax.imshow(
        matrix, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest"
    )
    row_sizes = [int((labels == c).sum()) for c in classes]
    col_sizes = [int((dominant == i).sum()) for i in range(len(classes))]
    class_labels = [names.get(int(c), f"class {c}") for c in classes]
    row_step = block_ticks(ax, "y", row_sizes, class_labels)
    col_step = block_ticks(ax, "x", col_sizes, class_labels)
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
    result.files = save_figure(fig, context.folder, result.name)
    return result


@register_figure("semantic_centers")
@styled
def draw_semantic_centers(context: FigureContext) -> FigureResult:
    """A table figure of one ours run's learned semantic centers: per cluster the matched class
    (Hungarian), the 5 nearest nouns of the learned center and the prompt it started from (the
    first 20 clusters when K is larger; paper Figure 1b). Returns files or a reason."""
    result = FigureResult(
        "semantic_centers",
        "Learned semantic centers (paper Figure 1b)",
        "Each learned center's 5 nearest nouns beside the class it is matched to; a class name "
        "among its nouns (marked) means the center found the class's own word.",
    )
    run = context.pick(
        ("ours",),
        lambda r: (
            isinstance(r.artefacts.get("center_nouns"), dict) and bool(r.artefacts["center_nouns"])
        ),
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
    fig = new_figure(max(7.0, 0.085 * total_width), 0.9 + 0.3 * (len(rows) + 1))
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
    result.files = save_figure(fig, context.folder, result.name)
    return result


@register_figure("ridge_selection")
@styled
def draw_ridge_selection(context: FigureContext) -> FigureResult:
    """Per dataset, the label-free criterion that chose ours' ridge penalty (the GCV error over
    the relative grid, divided by its minimum; mean over seeds of ours-notrain, else ours) with
    each seed's chosen value marked. Returns the files or a skip reason."""
    result = FigureResult(
        "ridge_selection",
        "Ridge penalty chosen without labels",
        "Generalized cross-validation error of the ridge regression of train images on the "
        "selected nouns against the relative ridge penalty (divided by its minimum, mean over "
        "seeds); dots: the penalty each run chose.",
    )
    curves: dict[str, list[dict[str, Any]]] = {}
    for preferred in ("ours-notrain", "ours"):
        for g in context.groups:
            if g.method != preferred or g.column in curves:
                continue
            found = [(r.record.artefacts or {}).get("selection") for r in g.runs]
            found = [s for s in found if isinstance(s, dict) and s.get("curve")]
            if found:
                curves[g.column] = found
    shown = [c for c in context.columns if c in curves]
    if not shown:
        result.skipped = "no ours/ours-notrain run that chose its ridge penalty (selection curve)"
        return result
    fig = new_figure(6.4, 3.8)
    ax = fig.add_subplot()
    for i, column in enumerate(shown):
        selections = curves[column]
        grid = np.asarray(selections[0]["grid"], dtype=float)
        same = [s for s in selections if len(s["curve"]) == len(grid)]
        relative = np.mean([np.asarray(s["curve"]) / min(s["curve"]) for s in same], axis=0)
        colour = SERIES_PALETTE[i % len(SERIES_PALETTE)]
        ax.plot(grid, relative, marker="o", markersize=4, color=colour, label=column)
        for s in same:
            chosen = float(s["chosen"])
            ax.plot([chosen], [relative[int(np.argmin(np.abs(grid - chosen)))]], "D", color=colour)
    ax.set_xscale("log")
    ax.set_xlabel("ridge_lambda (relative to the mean eigenvalue of T^T T)")
    ax.set_ylabel("GCV error / its minimum")
    ax.yaxis.grid(True, color="#dddddd", linewidth=0.6)
    legend_above(ax, min(4, len(shown)))
    fig.suptitle("ours: ridge penalty by generalized cross-validation", fontsize=11)
    result.files = save_figure(fig, context.folder, result.name)
    return result
