"""The report's view of ``laicbench tune``: the study records under ``<results dir>/_tune``, the
tuning table (default / label-free tuned / oracle-tuned test ACC per method and dataset, the gain
of label-free tuning with a paired test over seeds, the share of the oracle's headroom it
recovers), the parameter points of the main table's ``--tuned`` view, and the tuning figure.

Everything comes from stored records: the studies say which parameters each search chose, the
evaluation runs (ordinary records) give the test ACC. The runs a search used only to choose
(its selection seeds) are left out of the report's other tables and figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from laicbench.api.errors import UserError
from laicbench.files import short_hash
from laicbench.report.figures import (
    FigureResult,
    grouped_bars,
    new_figure,
    percent_axis,
    save_figure,
    styled,
)
from laicbench.report.stat_tables import Table
from laicbench.report.stats import PAIRED_T, WILCOXON, WILCOXON_MIN_PAIRS, format_p, paired_test
from laicbench.report.tables import Run, column_labels, method_order, table_dataset
from laicbench.tune.objectives import ORACLE
from laicbench.tune.study import TUNE_SUBDIR, read_study_record

Key = tuple[str, str, str]  # (method, table dataset, backbone)


@dataclass(frozen=True)
class TunedStudy:
    """A finished study as the report uses it: its cell, objective, budget, the params hashes
    of the default and the chosen parameters, the evaluation seeds and the runs it selected
    with."""

    method: str
    dataset: str
    backbone: str
    objective: str
    label_free: bool
    budget: int
    default_hash: str
    tuned_hash: str
    chosen: dict[str, Any]
    evaluation_seeds: tuple[int, ...]
    selection_seeds: tuple[int, ...]
    selection_runs: frozenset[str]
    updated_at: str
    path: Path

    @property
    def key(self) -> Key:
        """(method, table dataset, backbone)."""
        return (self.method, self.dataset, self.backbone)


def load_studies(results_dir: str | Path) -> list[TunedStudy]:
    """The finished studies (a best trial found) below `results_dir`; of several studies of one
    cell and objective (other budgets, seeds), the one updated last."""
    root = Path(results_dir).expanduser().absolute() / TUNE_SUBDIR
    latest: dict[tuple[Key, str], TunedStudy] = {}
    for path in sorted(root.rglob("*.json")) if root.is_dir() else []:
        data = read_study_record(path)
        if data is None or data.get("status") != "done" or not data.get("best"):
            continue
        try:
            study = _study(data, path)
        except (KeyError, TypeError, ValueError):
            continue  # a record of another version of the format
        slot = (study.key, study.objective)
        if slot not in latest or study.updated_at > latest[slot].updated_at:
            latest[slot] = study
    return list(latest.values())


def _study(data: dict[str, Any], path: Path) -> TunedStudy:
    evaluation = data["evaluation"]
    return TunedStudy(
        method=data["method"],
        dataset=table_dataset(data["dataset"], data.get("train_on")),
        backbone=data["backbone"],
        objective=data["objective"]["name"],
        label_free=bool(data["objective"]["label_free"]),
        budget=int(data["budget"]),
        default_hash=short_hash(evaluation["default_params"]),
        tuned_hash=short_hash(evaluation["params"]),
        chosen=dict(data["best"]["sampled"]),
        evaluation_seeds=tuple(int(s) for s in evaluation["seeds"]),
        selection_seeds=tuple(int(s) for s in data["selection_seeds"]),
        selection_runs=frozenset(r["run_id"] for t in data["trials"] for r in t["runs"]),
        updated_at=str(data.get("updated_at", "")),
        path=path,
    )


def selection_only(studies: Sequence[TunedStudy], runs: Sequence[Run]) -> set[str]:
    """The run ids that served only to choose parameters: runs of a study's trials that are not
    evaluation runs (default or chosen parameters with an evaluation seed) of any study."""
    evaluation = set()
    for study in studies:
        for run in runs:
            if (run.method, run.dataset, run.backbone) == study.key and (
                run.seed in study.evaluation_seeds
                and run.params_hash in (study.default_hash, study.tuned_hash)
            ):
                evaluation.add(run.run_id)
    return {run_id for study in studies for run_id in study.selection_runs} - evaluation


def _acc_by_seed(runs: Sequence[Run]) -> dict[tuple[Key, str], dict[int, float]]:
    out: dict[tuple[Key, str], dict[int, float]] = {}
    for run in runs:
        if run.k_factor == 1 and run.metrics.get("acc") is not None:
            key = ((run.method, run.dataset, run.backbone), run.params_hash)
            out.setdefault(key, {})[run.seed] = float(run.metrics["acc"])
    return out


def tuned_points(studies: Sequence[TunedStudy], objective: str) -> dict[Key, str]:
    """{(method, table dataset, backbone): params hash of the chosen parameters} of the studies
    of `objective` (the main table's ``--tuned`` view); UserError for the oracle or an objective
    no study used."""
    if objective == ORACLE:
        raise UserError(
            "--tuned oracle: the oracle's choice uses the test labels; it is in the tuning "
            "table, never in the ranked main table"
        )
    chosen = {s.key: s.tuned_hash for s in studies if s.objective == objective}
    if not chosen:
        used = sorted({s.objective for s in studies if s.label_free})
        raise UserError(
            f"--tuned {objective}: no finished tuning study with that objective in the results "
            f"dir (studies: {', '.join(used) or 'none'}; run laicbench tune first)"
        )
    return chosen


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def _cell(values: dict[int, float] | None) -> str:
    if not values:
        return "-"
    mean, std = _mean_std(list(values.values()))
    return f"{mean:.2f} ± {std:.2f} ({len(values)})"


@dataclass
class TuningRow:
    """The numbers of one row of the tuning table: test ACC per evaluation seed of the default,
    the label-free tuned (objective named; None: no label-free study) and the oracle-tuned
    parameters."""

    key: Key
    objective: str | None
    budget: int
    default: dict[int, float]
    tuned: dict[int, float]
    oracle: dict[int, float]
    chosen: dict[str, Any]

    def gain(self) -> tuple[float, float] | None:
        """(mean of tuned − default over their common seeds, paired test p), or None."""
        seeds = sorted(set(self.default) & set(self.tuned))
        if self.objective is None or not seeds:
            return None
        diff = [self.tuned[s] - self.default[s] for s in seeds]
        p = paired_test([self.tuned[s] for s in seeds], [self.default[s] for s in seeds]).p
        return float(np.mean(diff)), p

    def headroom(self) -> float | None:
        """The share (%) of the oracle's gain over the default that label-free tuning gains
        (means over the seeds each has); None without both, or when the oracle gains nothing."""
        if self.objective is None or not (self.default and self.tuned and self.oracle):
            return None
        default = float(np.mean(list(self.default.values())))
        room = float(np.mean(list(self.oracle.values()))) - default
        if room <= 0:
            return None
        return 100.0 * (float(np.mean(list(self.tuned.values()))) - default) / room


def tuning_rows(studies: Sequence[TunedStudy], runs: Sequence[Run]) -> list[TuningRow]:
    """One row per (method, dataset, backbone) and label-free objective with a study (a row
    without objective when only the oracle was tuned), in table order."""
    acc = _acc_by_seed(runs)
    oracle = {s.key: s for s in studies if not s.label_free}
    rows = []
    keys = sorted({s.key for s in studies}, key=lambda k: (method_order(k[0]), k[1], k[2]))
    for key in keys:
        own = [s for s in studies if s.key == key and s.label_free]
        free = sorted(own, key=lambda s: s.objective)
        reference = oracle.get(key)
        base = free[0] if free else reference
        default = _seeds(acc.get((key, base.default_hash)), base.evaluation_seeds)
        oracle_acc = (
            _seeds(acc.get((key, reference.tuned_hash)), reference.evaluation_seeds)
            if reference
            else {}
        )
        for study in free or [None]:
            tuned = {}
            if study is not None:
                tuned = _seeds(acc.get((key, study.tuned_hash)), study.evaluation_seeds)
            rows.append(
                TuningRow(
                    key,
                    study.objective if study else None,
                    base.budget,
                    default,
                    tuned,
                    oracle_acc,
                    study.chosen if study else {},
                )
            )
    return rows


def _seeds(values: dict[int, float] | None, seeds: Sequence[int]) -> dict[int, float]:
    return {s: v for s, v in (values or {}).items() if s in seeds}


def tuning_table(studies: Sequence[TunedStudy], runs: Sequence[Run]) -> Table | None:
    """The tuning table, or None without studies."""
    rows = tuning_rows(studies, runs)
    if not rows:
        return None
    labels = column_labels(runs)
    body = []
    for row in rows:
        method, dataset, backbone = row.key
        gain = row.gain()
        headroom = row.headroom()
        chosen = ", ".join(f"{k}={_short(v)}" for k, v in row.chosen.items())
        body.append(
            [
                method,
                labels.get((dataset, backbone), dataset),
                row.objective or "-",
                str(row.budget),
                _cell(row.default),
                _cell(row.tuned),
                _cell(row.oracle),
                "-" if gain is None else f"{gain[0]:+.2f}",
                "-" if gain is None or math.isnan(gain[1]) else format_p(gain[1]),
                "-" if headroom is None else f"{headroom:.0f}%",
                chosen or "-",
            ]
        )
    selection = sorted({s for study in studies for s in study.selection_seeds})
    evaluation = sorted({s for study in studies for s in study.evaluation_seeds})
    caption = (
        "Test ACC (%) over the evaluation seeds (mean ± std, seeds in parentheses) of each "
        "method's default parameters, of the parameters chosen by a label-free objective (named; "
        "the same budget of trials for every method, laicbench tune) and of those chosen by the "
        "oracle (test ACC on the selection seeds: it uses labels, measures the headroom and is "
        f"never ranked). Gain: label-free tuned − default, mean over common seeds, with the "
        f"{PAIRED_T} (the {WILCOXON} from {WILCOXON_MIN_PAIRS} seeds). Headroom recovered: "
        "gain / (oracle-tuned − default); '-' where the oracle gains nothing. Chosen: the "
        "label-free choice. Selection seeds "
        f"{', '.join(map(str, selection))}; evaluation seeds {', '.join(map(str, evaluation))}."
    )
    return Table(
        name="tuning",
        title="Tuning: default, label-free tuned and oracle-tuned",
        header=[
            "method",
            "dataset",
            "objective",
            "trials",
            "default ACC",
            "tuned ACC",
            "oracle-tuned ACC",
            "gain",
            "p",
            "headroom recovered",
            "chosen",
        ],
        rows=body,
        caption=caption,
    )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@styled
def draw_tuning(studies: Sequence[TunedStudy], runs: Sequence[Run], folder: Path) -> FigureResult:
    """One panel per tuned method: test ACC (mean ± std over the evaluation seeds) per dataset
    of the default, each label-free tuned and the oracle-tuned parameters."""
    result = FigureResult(
        "tuning",
        "Tuning: default vs label-free tuned vs oracle-tuned",
        "Test ACC per method and dataset, mean ± std over the evaluation seeds: default "
        "parameters, those chosen by each label-free objective, and those chosen by the oracle "
        "(test ACC: the headroom, never ranked).",
    )
    rows = tuning_rows(studies, runs)
    if not rows:
        result.skipped = "no finished tuning study (laicbench tune)"
        return result
    labels = column_labels(runs)
    methods = sorted({r.key[0] for r in rows}, key=method_order)
    fig = new_figure(max(5.2, 2.2 + 1.4 * len({r.key[1:] for r in rows})), 3.2 * len(methods))
    objectives = sorted({r.objective for r in rows if r.objective})  # the same colours throughout
    legend: dict[str, object] = {}
    for i, method in enumerate(methods):
        own = [r for r in rows if r.key[0] == method]
        columns = list(dict.fromkeys(r.key[1:] for r in own))
        names = [labels.get(c, c[0]) for c in columns]
        series = [("default", [_bar(_first(own, c).default) for c in columns])]
        for objective in objectives:
            by_column = {r.key[1:]: r for r in own if r.objective == objective}
            values = [_bar(by_column[c].tuned) if c in by_column else None for c in columns]
            series.append((f"tuned: {objective}", values))
        series.append(("oracle-tuned", [_bar(_first(own, c).oracle) for c in columns]))
        ax = fig.add_subplot(len(methods), 1, i + 1)
        highest = grouped_bars(ax, names, series)
        percent_axis(ax, "test ACC (%)", highest)
        ax.set_title(method, loc="left")
        if len(series) > len(legend):
            legend = dict(zip(*ax.get_legend_handles_labels()[::-1], strict=True))
    fig.legend(
        list(legend.values()),
        list(legend),
        loc="outside upper center",
        ncol=min(len(legend), 4),
        frameon=False,
    )
    result.files = save_figure(fig, folder, result.name)
    return result


def _first(rows: list[TuningRow], column: tuple[str, str]) -> TuningRow:
    return next(r for r in rows if r.key[1:] == column)


def _bar(values: dict[int, float]) -> tuple[float, float] | None:
    return _mean_std(list(values.values())) if values else None
