"""The tables of ``laicbench report``: the runs table and the LAIC main table (Markdown, LaTeX).

Everything here works on stored records (``Run``); nothing computes features or runs a method.
Per-cell mean ± std over seeds comes from ``laicbench.report.aggregate.mean_std_table``, the
aggregation that the CLI's summary uses too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from laicbench.api import registry
from laicbench.api.dataset import dataset_order
from laicbench.api.errors import UserError
from laicbench.cluster.metric_table import METRICS
from laicbench.files import canonical_json
from laicbench.report.aggregate import METRICS as TABLE_METRICS
from laicbench.report.aggregate import default_params, format_mean_std, mean_std_table, same_params
from laicbench.run.records import RunRecord

METRIC_LABELS = {m.name: m.label for m in METRICS}
# every score against the labels that a record may hold (scoring version 2)
SCORES = tuple(m.name for m in METRICS if not m.label_free)
AVG = "Avg."
RUNS_COLUMNS = [
    "run_id",
    "method",
    "method_version",
    "oracle",
    "dataset",
    "backbone",
    "seed",
    "params_hash",
    "params",
    "k_factor",
    "attack",
    *SCORES,
    "n_clusters_found",
    "largest_share",
    "smallest_share",
    "size_entropy",
    *(m.name for m in METRICS if m.label_free),
    "scoring_version",
    "wall_time_s",
    "peak_rss_mb",
    "status",
    "state",
]


@dataclass(frozen=True)
class Run:
    """One stored record, with the fields the report uses pulled out.

    `state` is 'done' (ok, current method version and source, today's inputs: used by the
    report), 'failed' (error or oom), 'outdated' (another version or source of the method made
    it, or other inputs than today's: used, marked, only with ``--allow-outdated``) or
    'damaged' (its predictions file is missing or corrupt).
    """

    path: Path
    record: RunRecord = field(repr=False, compare=False)
    run_id: str
    method: str
    dataset: str
    backbone: str
    seed: int
    params: dict[str, Any] = field(compare=False)
    params_hash: str
    oracle: bool
    state: str

    @property
    def metrics(self) -> dict[str, float]:
        """The record's metrics against the labels (x100); empty for failed runs."""
        return self.record.metrics or {}

    @property
    def internal_metrics(self) -> dict[str, float | None]:
        """The label-free metrics; empty for records scored before they existed (``laicbench
        rescore`` adds them)."""
        return self.record.internal_metrics or {}

    @property
    def train_on(self) -> str | None:
        """The dataset whose train split the method learned on, when not the run's own."""
        return self.record.train_on

    @property
    def k_factor(self) -> int:
        """The over-clustering factor of the run (1: asked for K clusters)."""
        return int(self.record.k_factor or 1)

    @property
    def attack(self) -> dict[str, Any] | None:
        """The attack on the run's test images (``{"name", "params"}``), None when clean."""
        return self.record.attack

    @property
    def attack_label(self) -> str:
        """The attack as a short label (``pgd(eps=0.03137, ...)``), '' when clean."""
        from laicbench.api.settings import AttackSpec

        return "" if self.attack is None else AttackSpec.from_dict(self.attack).label

    @property
    def diagnostics(self) -> dict[str, Any]:
        """The label-based diagnostics the harness stored (cluster_to_class, ...)."""
        return self.record.diagnostics or {}

    @property
    def artefacts(self) -> dict[str, Any]:
        """The method's per-run artefacts (selected nouns, center nouns, ...)."""
        return self.record.artefacts or {}

    @property
    def tags(self) -> frozenset[str]:
        """The method's tags: today's, for a registered method; else the record's."""
        try:
            return frozenset(registry.methods.get(self.method).tags)
        except UserError:
            return frozenset(self.record.method.tags or ())


def table_dataset(dataset: str, train_on: str | None) -> str:
    """The dataset name of a run in the tables: the dataset, or for a run that learned on
    another dataset's train split (the shift track) 'imagenet-r (from imagenet:all)' (records
    older than the protocol's name: 'imagenet:subset', what they did)."""
    from laicbench.run.spec import train_protocol

    return dataset if train_on is None else f"{dataset} (from {':'.join(train_protocol(train_on))})"


def runs_frame(runs: Iterable[Run]) -> pd.DataFrame:
    """One row per run (all states): the columns of RUNS_COLUMNS; params as canonical JSON."""
    rows = []
    for run in runs:
        metrics = run.metrics
        rows.append(
            {
                "run_id": run.run_id,
                "method": run.method,
                "method_version": run.record.method.version,
                "oracle": run.oracle,
                "dataset": run.dataset,
                "backbone": run.backbone,
                "seed": run.seed,
                "params_hash": run.params_hash,
                "params": canonical_json(run.params),
                "k_factor": run.k_factor,
                "attack": run.attack_label,
                **{m: _float(metrics.get(m)) for m in SCORES},
                "n_clusters_found": _float(run.record.n_clusters_found),
                **{k: _float(v) for k, v in (run.record.cluster_sizes or {}).items()},
                **{k: _float(v) for k, v in run.internal_metrics.items()},
                "scoring_version": int((run.record.scoring or {}).get("version", 1)),
                "wall_time_s": _float(run.record.wall_time_s),
                "peak_rss_mb": _float(run.record.peak_rss_mb),
                "status": run.record.status,
                "state": run.state,
            }
        )
    frame = pd.DataFrame(rows, columns=RUNS_COLUMNS)
    return frame.astype({"seed": "int64", "oracle": "bool", "k_factor": "int64"})


def _float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


# ------------------------------------------------------------------------------------------
# which runs the tables use


def _default_hash(defaults: dict[str, Any] | None, points: dict[str, list[Run]]) -> str | None:
    """The params hash among `points` whose parameters are the defaults (None when absent)."""
    if defaults is None:
        return None
    matching = [h for h, runs in points.items() if same_params(runs[0].params, defaults)]
    return max(matching, key=lambda h: (len(points[h]), h)) if matching else None


def column_key(run: Run) -> tuple[str, str]:
    """(dataset, backbone): one column group of the main table."""
    return (run.dataset, run.backbone)


def method_order(name: str) -> tuple[int, str]:
    """Sort key of methods: registry order, then unregistered names by name."""
    names = registry.methods.names()
    return (names.index(name), "") if name in names else (len(names), name)


def column_labels(runs: Iterable[Run]) -> dict[tuple[str, str], str]:
    """{(dataset, backbone): label}, in column order. The label is the dataset name, or
    'dataset (backbone)' for a dataset that was run with several backbones."""
    keys = sorted({column_key(r) for r in runs}, key=lambda k: (dataset_order(k[0]), k[1]))
    backbones: dict[str, int] = {}
    for dataset, _ in keys:
        backbones[dataset] = backbones.get(dataset, 0) + 1
    short = {b: short_backbone(b) for _, b in keys}
    if len(set(short.values())) < len(short):  # two checkpoints of one file name: keep paths
        short = {b: b for b in short}
    return {(d, b): (d if backbones[d] == 1 else f"{d} ({short[b]})") for d, b in keys}


def short_backbone(name: str) -> str:
    """A backbone name for labels: a checkpoint path shortened to its file name."""
    arch, _, weights = name.partition(":")
    return f"{arch}:{Path(weights).name}" if "/" in weights or "\\" in weights else name


@dataclass
class MainPoint:
    """The parameter point of one (method, dataset, backbone) cell and its runs; `tuned`: the
    point a tuning study chose (the main table's tuned view)."""

    runs: list[Run]
    is_default: bool
    tuned: bool = False


def main_points(
    runs: Iterable[Run], prefer: dict[tuple[str, str, str], str] | None = None
) -> dict[tuple[str, str, str], MainPoint]:
    """For each (method, dataset, backbone): the runs of the point the main table shows.

    That is the point `prefer` names for the cell (a params hash: the tuned view) when it has
    runs; else the method's default parameters when such runs exist; otherwise the point that
    differs from the defaults in the fewest parameters (then: the most seeds, then the smallest
    params hash), flagged ``is_default=False`` so the table can mark it.
    """
    cells: dict[tuple[str, str, str], dict[str, list[Run]]] = {}
    for run in runs:
        key = (run.method, run.dataset, run.backbone)
        cells.setdefault(key, {}).setdefault(run.params_hash, []).append(run)
    out: dict[tuple[str, str, str], MainPoint] = {}
    for key, points in cells.items():
        defaults = default_params(key[0])
        dhash = _default_hash(defaults, points)
        chosen_hash = (prefer or {}).get(key)
        if chosen_hash in points:
            chosen = sorted(points[chosen_hash], key=lambda r: r.seed)
            out[key] = MainPoint(chosen, chosen_hash == dhash, tuned=True)
            continue
        if dhash is not None:
            out[key] = MainPoint(sorted(points[dhash], key=lambda r: r.seed), True)
            continue

        def distance(item: tuple[str, list[Run]], defaults=defaults) -> tuple[int, int, str]:
            params = item[1][0].params
            differing = 0
            if defaults is not None:
                names = set(params) | set(defaults)
                differing = sum(
                    canonical_json(params.get(n)) != canonical_json(defaults.get(n)) for n in names
                )
            return (differing, -len(item[1]), item[0])

        _, chosen = min(points.items(), key=distance)
        out[key] = MainPoint(sorted(chosen, key=lambda r: r.seed), defaults is None)
    return out


# ------------------------------------------------------------------------------------------
# sweeps (sensitivity)


@dataclass
class Sweep:
    """Runs of one method on one dataset that differ in one parameter only."""

    method: str
    param: str
    dataset: str
    backbone: str
    points: list[tuple[Any, list[Run]]]  # (parameter value, runs), in value order
    default: Any = None
    has_default: bool = False


def find_sweeps(runs: Iterable[Run]) -> list[Sweep]:
    """Every one-parameter sweep among `runs`, per (method, dataset, backbone) and parameter.

    Parameter points (distinct params hashes) that agree on every parameter but one form a
    sweep of that one. With a multi-parameter grid, each parameter gets the slice through the
    default point when there is one (else the largest slice).
    """
    cells: dict[tuple[str, str, str], dict[str, list[Run]]] = {}
    for run in runs:
        cells.setdefault((run.method, run.dataset, run.backbone), {}).setdefault(
            run.params_hash, []
        ).append(run)
    sweeps = []
    for (method, dataset, backbone), points in cells.items():
        if len(points) < 2:
            continue
        params = {h: rs[0].params for h, rs in points.items()}
        names = sorted({n for p in params.values() for n in p})
        varying = [n for n in names if len({canonical_json(p.get(n)) for p in params.values()}) > 1]
        defaults = default_params(method)
        dhash = _default_hash(defaults, points)
        for name in varying:
            slices: dict[str, list[str]] = {}
            for h, p in params.items():
                rest = canonical_json({k: v for k, v in p.items() if k != name})
                slices.setdefault(rest, []).append(h)
            candidates = [
                hs
                for hs in slices.values()
                if len({canonical_json(params[h].get(name)) for h in hs}) > 1
            ]
            if not candidates:
                continue
            with_default = [hs for hs in candidates if dhash in hs]
            chosen = (
                with_default[0]
                if with_default
                else max(candidates, key=lambda hs: (len(hs), sorted(hs)))
            )
            values = [(params[h].get(name), points[h]) for h in chosen]
            values.sort(key=lambda item: _value_order(item[0]))
            sweeps.append(
                Sweep(
                    method=method,
                    param=name,
                    dataset=dataset,
                    backbone=backbone,
                    points=values,
                    default=None if defaults is None else defaults.get(name),
                    has_default=defaults is not None and name in defaults,
                )
            )
    sweeps.sort(key=lambda s: (method_order(s.method), s.param, dataset_order(s.dataset)))
    return sweeps


def _value_order(value: Any) -> tuple[int, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value))
    return (1, canonical_json(value))


# ------------------------------------------------------------------------------------------
# reference numbers


REFERENCE_COLUMNS = ("method", "dataset", *TABLE_METRICS, "backbone", "source")


def load_reference(path: str | Path) -> pd.DataFrame:
    """The reported numbers of `path` (CSV with REFERENCE_COLUMNS; empty metric = not reported),
    method names resolved to canonical ones where registered; UserError when unreadable."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"method": str, "dataset": str, "source": str})
    except (OSError, ValueError) as exc:
        raise UserError(f"reference file {path}: cannot read ({exc})") from exc
    missing = [c for c in REFERENCE_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"reference file {path}: missing column(s) {', '.join(missing)}")
    names = set(registry.methods.names())
    frame["method"] = [
        registry.methods.canonical(m) if m in names or _is_alias(m) else m for m in frame["method"]
    ]
    for metric in TABLE_METRICS:
        frame[metric] = pd.to_numeric(frame[metric], errors="coerce")
    frame["source"] = frame["source"].fillna("")
    frame["backbone"] = frame["backbone"].fillna("").astype(str)
    return frame


def _is_alias(name: str) -> bool:
    try:
        registry.methods.canonical(name)
    except UserError:
        return False
    return True


def same_backbone(run_backbone: str, reported_backbone: str) -> bool:
    """Whether a run's backbone ('ViT-B-32:openai') is the paper's ('ViT-B/32')."""
    arch = run_backbone.split(":", 1)[0].lower()
    return bool(reported_backbone) and arch == reported_backbone.replace("/", "-").lower()


# ------------------------------------------------------------------------------------------
# the main table


@dataclass
class Cell:
    """One value of the main table: a mean ± std over `n` seeds, a reported number or a delta.

    `rank` is 1 for the best and 2 for the second best of its column (0: not ranked).
    """

    mean: float | None = None
    std: float | None = None
    n: int | None = None
    rank: int = 0
    kind: str = "stat"  # stat | value | delta
    nondefault: bool = False
    tie: bool = False  # not significantly different from the column's best
    constant: bool = False  # the same difference to the column's best on every seed: no test
    untuned: bool = False  # in the tuned view: a method without a tuning study (its defaults)
    outdated: bool = False  # holds outdated runs, kept on purpose (report --allow-outdated)


@dataclass
class Row:
    """One row: a label, its block ('method', 'oracle', 'reported', 'delta'), its cells, the
    numbers of its notes and the method it belongs to."""

    label: str
    kind: str
    cells: list[Cell]
    notes: tuple[int, ...] = ()
    method: str = ""
    mark: str = ""  # the mark of its tag ('adapted', 'interactive'), explained under the table


@dataclass
class MainTable:
    """The LAIC main table, ready to be written as Markdown or LaTeX."""

    groups: list[str]  # column group labels (datasets, then Avg. when shown)
    rows: list[Row]
    caption: str
    notes: list[str]  # numbered footnotes (sources of reported rows)
    has_average: bool
    has_nondefault: bool
    comparisons: int = 0  # paired tests against the column's best, Holm-corrected together
    marks: list[str] = field(default_factory=list)  # what each row mark means ('◊ adapted: ...')

    @property
    def columns(self) -> list[tuple[str, str]]:
        """(group, metric) pairs, in order."""
        return [(g, m) for g in self.groups for m in TABLE_METRICS]


def build_main_table(
    runs: Sequence[Run],
    reference: pd.DataFrame | None = None,
    tuned: tuple[str, dict[tuple[str, str, str], str]] | None = None,
) -> MainTable:
    """The main table of `runs` (ok runs of current method versions).

    Rows: clustering methods in registry order, then the adapted ones (tag ``adapted``: inputs
    other than their paper's; a block of their own, marked, not ranked against the faithful
    reimplementations), then reported rows (with the delta to the reproduced value), then
    interactive methods (tag ``interactive``: simulated feedback from labels) and oracle methods,
    each a block of its own, marked, never ranked. Column groups: datasets (benchmark
    order, then others by name) x (NMI, ACC, ARI), and Avg. when every method row has every
    dataset (and there are at least two). Each (method, dataset) cell uses the default-parameter
    runs when there are any (see ``main_points``); the tuned view, `tuned` = (objective,
    {cell: params hash}), uses the parameters that objective's tuning studies chose.
    """
    points = main_points(runs, tuned[1] if tuned else None)
    labels = column_labels(runs)
    chosen = [run for point in points.values() for run in point.runs]
    nondefault = {k for k, point in points.items() if not point.is_default and not point.tuned}
    untuned = {k for k, point in points.items() if tuned and not point.tuned}
    outdated = {k for k, point in points.items() if any(r.state == "outdated" for r in point.runs)}
    frame = pd.DataFrame(
        [
            {
                "method": r.method,
                "dataset": labels[column_key(r)],
                "oracle": r.oracle,
                **{m: _float(r.metrics.get(m)) for m in TABLE_METRICS},
            }
            for r in chosen
        ],
        columns=["method", "dataset", "oracle", *TABLE_METRICS],
    )
    stats = mean_std_table(frame).set_index(["method", "dataset"])
    groups = list(labels.values())
    methods = sorted(frame["method"].unique(), key=method_order)
    oracle = {m: bool(frame.loc[frame["method"] == m, "oracle"].any()) for m in methods}
    kinds = {
        m: row_kind(oracle[m], {t for r in chosen if r.method == m for t in r.tags})
        for m in methods
    }
    ordered = sorted(methods, key=lambda m: BLOCK_ORDER.index(kinds[m]))
    has_average = len(groups) >= 2 and all((m, g) in stats.index for m in methods for g in groups)
    label_to_key = {label: key for key, label in labels.items()}

    rows: list[Row] = []
    for method in ordered:
        cells = []
        for group in groups:
            dataset, backbone = label_to_key[group]
            flagged = (method, dataset, backbone) in nondefault
            for metric in TABLE_METRICS:
                if (method, group) in stats.index:
                    s = stats.loc[(method, group)]
                    cells.append(
                        Cell(
                            float(s[f"{metric}_mean"]),
                            float(s[f"{metric}_std"]),
                            int(s["n"]),
                            nondefault=flagged,
                            untuned=(method, dataset, backbone) in untuned and not oracle[method],
                            outdated=(method, dataset, backbone) in outdated,
                        )
                    )
                else:
                    cells.append(Cell())
        if has_average:
            for i, _ in enumerate(TABLE_METRICS):
                values = [c.mean for c in cells[i :: len(TABLE_METRICS)]]
                cells.append(Cell(sum(values) / len(values), kind="value"))
        kind = kinds[method]
        rows.append(Row(method, kind, cells, method=method, mark=TAG_MARKS.get(kind, "")))

    _rank(rows)
    comparisons = _mark_ties(rows, groups, _per_seed(chosen, labels))
    notes: list[str] = []
    reported_rows = _reported_rows(rows, groups, label_to_key, reference, notes, has_average)
    upper = [r for r in rows if r.kind in ("method", "adapted")]
    lower = [r for r in rows if r.kind in ("interactive", "oracle")]
    backbones = sorted({r.backbone for r in chosen})
    return MainTable(
        groups=groups + ([AVG] if has_average else []),
        rows=upper + reported_rows + lower,
        marks=[TAG_NOTES[k] for k in TAG_MARKS if any(r.kind == k for r in rows)],
        caption=_caption(
            backbones,
            len(groups),
            has_average,
            bool(nondefault),
            bool(notes),
            comparisons,
            any(c.constant for r in rows for c in r.cells),
            bool(outdated),
        )
        + (_tuned_caption(tuned[0]) if tuned else ""),
        notes=notes,
        has_average=has_average,
        has_nondefault=bool(nondefault),
        comparisons=comparisons,
    )


# the blocks of the main table's method rows, in order (the reported block sits between
# "adapted" and "interactive"), the marks of the tagged ones and what the marks say
BLOCK_ORDER = ("method", "adapted", "interactive", "oracle")
TAG_MARKS = {"adapted": "◊", "interactive": "‡"}
TAG_NOTES = {
    "adapted": "◊ adapted: runs on inputs other than its paper's (e.g. noun-bank text in place "
    "of generated captions; docs/methods.md says what differs); shown apart from the faithful "
    "reimplementations and not ranked against them.",
    "interactive": "‡ interactive: learns from simulated user feedback drawn from the train "
    "labels (its record gives the feedback budget); not unsupervised clustering, never ranked.",
}


def row_kind(oracle: bool, tags: set[str] | frozenset[str]) -> str:
    """The block of a method's main-table row: 'interactive' (tag), 'oracle', 'adapted' (tag)
    or 'method' (a faithful clustering method, ranked)."""
    if "interactive" in tags:
        return "interactive"
    if oracle:
        return "oracle"
    return "adapted" if "adapted" in tags else "method"


def _per_seed(
    runs: Sequence[Run], labels: dict[tuple[str, str], str]
) -> dict[tuple[str, str, str], dict[int, float]]:
    """{(method, column label, metric): {seed: value}} of the table's runs."""
    out: dict[tuple[str, str, str], dict[int, float]] = {}
    for run in runs:
        for metric in TABLE_METRICS:
            value = run.metrics.get(metric)
            if value is not None:
                key = (run.method, labels[column_key(run)], metric)
                out.setdefault(key, {})[run.seed] = float(value)
    return out


def _mark_ties(
    rows: list[Row], groups: list[str], per_seed: dict[tuple[str, str, str], dict[int, float]]
) -> int:
    """Test the best clustering method of each dataset column against every other one on their
    common seeds (``stats.paired_test``), Holm-correct all tests of the table together and mark
    the cells not significantly different from their column's best (``Cell.tie``). Returns the
    number of tests. A cell whose difference to the best is the same on every seed is marked
    ``Cell.constant`` instead: no test, not counted, not significant."""
    from laicbench.report.stats import ALPHA, holm, paired_test

    ranked = [r for r in rows if r.kind == "method"]
    tests: list[tuple[Cell, float]] = []
    for g, group in enumerate(groups):
        for i, metric in enumerate(TABLE_METRICS):
            col = g * len(TABLE_METRICS) + i
            best = next((r for r in ranked if r.cells[col].rank == 1), None)
            if best is None:
                continue
            reference = per_seed.get((best.label, group, metric), {})
            for row in ranked:
                other = per_seed.get((row.label, group, metric), {})
                seeds = sorted(set(reference) & set(other))
                if row is best or row.cells[col].rank == 1 or len(seeds) < 2:
                    continue
                result = paired_test([reference[s] for s in seeds], [other[s] for s in seeds])
                if result.constant:
                    row.cells[col].constant = True
                else:
                    tests.append((row.cells[col], result.p))
    for (cell, _), adjusted in zip(tests, holm([p for _, p in tests]), strict=True):
        cell.tie = adjusted >= ALPHA
    return len(tests)


def _rank(rows: list[Row]) -> None:
    """Mark best (1) and second best (2) per column among clustering-method rows, comparing the
    values as printed (2 decimals) so that printed ties share a rank."""
    ranked = [r for r in rows if r.kind == "method"]
    if len(ranked) < 2:
        return
    for col in range(len(ranked[0].cells)):
        values = sorted(
            {round(r.cells[col].mean, 2) for r in ranked if r.cells[col].mean is not None},
            reverse=True,
        )
        if len(values) < 2:
            continue
        for row in ranked:
            cell = row.cells[col]
            if cell.mean is not None:
                value = round(cell.mean, 2)
                cell.rank = 1 if value == values[0] else 2 if value == values[1] else 0


def _reported_rows(
    rows: list[Row],
    groups: list[str],
    label_to_key: dict[str, tuple[str, str]],
    reference: pd.DataFrame | None,
    notes: list[str],
    has_average: bool,
) -> list[Row]:
    """'<method> (reported)' and '<method>: Δ reproduced − reported' rows for the methods and
    datasets of the table; appends the sources to `notes`."""
    if reference is None or reference.empty:
        return []
    out: list[Row] = []
    by_label = {r.label: r for r in rows}
    for row in rows:
        ref = reference[reference["method"] == row.label]
        if ref.empty:
            continue
        reported: list[Cell] = []
        delta: list[Cell] = []
        sources: list[str] = []
        for g, group in enumerate(groups):
            dataset, backbone = label_to_key[group]
            match = ref[ref["dataset"] == dataset]
            entry = match.iloc[0] if not match.empty else None
            for i, metric in enumerate(TABLE_METRICS):
                value = None if entry is None else entry[metric]
                value = None if value is None or pd.isna(value) else float(value)
                reported.append(Cell(value, kind="value"))
                mine = by_label[row.label].cells[g * len(TABLE_METRICS) + i].mean
                both = value is not None and mine is not None
                same = entry is not None and same_backbone(backbone, str(entry["backbone"]))
                delta.append(Cell(mine - value if both and same else None, kind="delta"))
                if value is not None and entry is not None:
                    source = str(entry["source"]).strip()
                    if entry["backbone"]:
                        source = f"{source} ({entry['backbone']})" if source else entry["backbone"]
                    if source and source not in sources:
                        sources.append(source)
        if all(c.mean is None for c in reported):
            continue
        if has_average:
            reported += [Cell(kind="value") for _ in TABLE_METRICS]
            delta += [Cell(kind="delta") for _ in TABLE_METRICS]
        numbers = []
        for source in sources:
            if source not in notes:
                notes.append(source)
            numbers.append(notes.index(source) + 1)
        out.append(Row(f"{row.label} (reported)", "reported", reported, tuple(numbers), row.label))
        if any(c.mean is not None for c in delta):
            out.append(
                Row(f"{row.label}: Δ reproduced − reported", "delta", delta, method=row.label)
            )
    return out


def _caption(
    backbones: list[str],
    n_datasets: int,
    average: bool,
    nondefault: bool,
    reported: bool,
    comparisons: int = 0,
    constant: bool = False,
    outdated: bool = False,
) -> str:
    from laicbench.report.stats import ALPHA, PAIRED_T, WILCOXON, WILCOXON_MIN_PAIRS

    parts = [
        "NMI, ACC and ARI (%) on the test split: mean ± std over seeds, the number of seeds in "
        "parentheses.",
        "Bold: best, underlined: second best per column among clustering methods.",
        "Oracle rows use the ground-truth class names and are not ranked.",
    ]
    if comparisons:
        parts.append(
            f"≈: not significantly different from the column's best at {ALPHA} ({PAIRED_T} "
            f"over the seeds both have, the {WILCOXON} from {WILCOXON_MIN_PAIRS} seeds; "
            f"Holm-corrected across the table's {comparisons} comparisons; a Wilcoxon p-value "
            "is never below its exact minimum, 2/2^n for n seeds)."
        )
    if constant:
        parts.append(
            "≡: differs from the column's best by the same amount on every seed (seeds that "
            "change nothing are repeats, not samples): not tested, not marked significant."
        )
    if average:
        parts.append(f"{AVG}: mean over the {n_datasets} datasets.")
    if reported:
        parts.append(
            "(reported): numbers from the papers, sources in the notes; Δ: reproduced minus "
            "reported, where both exist and the backbones agree."
        )
    if nondefault:
        parts.append(
            "†: no run with the method's default parameters; the closest parameter point is "
            "shown (see runs.csv)."
        )
    if outdated:
        parts.append(
            f"{OUTDATED_MARK}: made (in part) from inputs other than today's, or by another "
            "version or source of the method: outdated runs kept on purpose (report "
            "--allow-outdated; the state column of runs.csv names them)."
        )
    parts.append(f"Backbone: {', '.join(backbones)}.")
    return " ".join(parts)


def _tuned_caption(objective: str) -> str:
    return (
        f" Tuned view: each method at the parameters its label-free tuning chose (objective "
        f"{objective}, the same budget of trials for every method; laicbench tune); *: a method "
        "without such a study (not tunable, or not tuned), at its default parameters."
    )


# ------------------------------------------------------------------------------------------
# writers


OUTDATED_MARK = "§"  # a cell with outdated runs (report --allow-outdated)


def cell_text(cell: Cell) -> str:
    """The plain text of a cell (Markdown and LaTeX escape/decorate it)."""
    if cell.mean is None:
        return "-"
    if cell.kind == "delta":
        return f"{cell.mean:+.2f}"
    if cell.kind == "value":
        return f"{cell.mean:.2f}"
    return format_mean_std(cell.mean, cell.std or 0.0)


BLOCK_TITLES = {
    "adapted": "adapted reimplementations ◊ (inputs differ from the papers'; not ranked "
    "against the faithful ones)",
    "reported": "reported in the papers",
    "interactive": "interactive supervision ‡ (simulated feedback from labels; not ranked)",
    "oracle": "oracle references (use class names; not ranked)",
}


def _blocks(table: MainTable):
    """(title of the block that starts at this row, or None; row) for every row of `table`: the
    adapted, reported (reported rows and their deltas), interactive and oracle blocks get a
    title row."""
    seen: set[str] = set()
    for row in table.rows:
        block = "reported" if row.kind == "delta" else row.kind
        title = None
        if block in BLOCK_TITLES and block not in seen:
            seen.add(block)
            title = BLOCK_TITLES[block]
        yield title, row


def to_markdown(table: MainTable) -> str:
    """The main table as GitHub Markdown: caption, one header row ('<dataset> <METRIC>'),
    blocks separated by italic label rows, notes; bold = best, <ins> = second best."""
    header = ["method", *(f"{g} {METRIC_LABELS[m]}" for g, m in table.columns)]
    lines = [
        f"**Main table.** {table.caption}",
        "",
        "| " + " | ".join(header) + " |",
        "|:--" + "|--:" * len(table.columns) + "|",
    ]
    for block, row in _blocks(table):
        if block:
            lines.append(f"| *{block}* |" + " |" * len(table.columns))
        label = row.label + (f" {row.mark}" if row.mark else "")
        label += f" [{','.join(map(str, row.notes))}]" if row.notes else ""
        cells = [_markdown_cell(c) for c in row.cells]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    if table.notes:
        lines.append("")
        lines.extend(f"- [{i}] {note}" for i, note in enumerate(table.notes, 1))
    if table.marks:
        lines.append("")
        lines.extend(f"- {mark}" for mark in table.marks)
    return "\n".join(lines) + "\n"


def _markdown_cell(cell: Cell) -> str:
    text = cell_text(cell)
    if cell.mean is None:
        return text
    text = text.replace("|", "\\|")
    if cell.rank == 1:
        text = f"**{text}**"
    elif cell.rank == 2:
        text = f"<ins>{text}</ins>"
    if cell.n is not None:
        text += f" ({cell.n})"
    if cell.nondefault:
        text += " †"
    if cell.tie:
        text += " ≈"
    if cell.constant:
        text += " ≡"
    if cell.untuned:
        text += " *"
    if cell.outdated:
        text += f" {OUTDATED_MARK}"
    return text


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "−": r"$-$",
    "†": r"\textsuperscript{\dag}",
    "‡": r"\textsuperscript{\ddag}",
    "◊": r"$\diamond$",
    "§": r"\S{}",
    "≈": r"$\approx$",
    "≡": r"$\equiv$",
    "≥": r"$\geq$",
    "–": "--",
    "—": "---",
}


def latex_escape(text: str) -> str:
    """`text` with LaTeX's special characters (and ± Δ − †) escaped for text mode."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def to_latex(table: MainTable, label: str = "tab:main") -> str:
    """The main table as a LaTeX table (booktabs: \\toprule, \\midrule, \\bottomrule; needs
    \\usepackage{booktabs}); \\textbf = best, \\underline = second best."""
    n = len(table.columns)
    spec = "l" + "".join(" " + "c" * len(TABLE_METRICS) for _ in table.groups)
    lines = [
        "% generated by laicbench report; needs \\usepackage{booktabs}",
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{latex_escape(table.caption)}}}",
        f"\\label{{{label}}}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
    ]
    width = len(TABLE_METRICS)
    lines.append(
        " & "
        + " & ".join(f"\\multicolumn{{{width}}}{{c}}{{{latex_escape(g)}}}" for g in table.groups)
        + " \\\\"
    )
    lines.append(
        " ".join(
            f"\\cmidrule(lr){{{2 + i * width}-{1 + (i + 1) * width}}}"
            for i in range(len(table.groups))
        )
    )
    lines.append("Method & " + " & ".join(METRIC_LABELS[m] for _, m in table.columns) + " \\\\")
    lines.append("\\midrule")
    for block, row in _blocks(table):
        if block:
            lines.append("\\midrule")
            title = block[0].upper() + block[1:]
            lines.append(f"\\multicolumn{{{n + 1}}}{{l}}{{\\textit{{{title}}}}} \\\\")
        label = latex_escape(row.label + (f" {row.mark}" if row.mark else ""))
        if row.notes:
            label += f"\\textsuperscript{{{','.join(map(str, row.notes))}}}"
        lines.append(" & ".join([label, *(_latex_cell(c) for c in row.cells)]) + " \\\\")
    lines.append("\\bottomrule")
    lines.append("\\end{tabular}")
    if table.notes:
        lines.append("\\par\\smallskip\\footnotesize")
        lines.append(
            "\\\\\n".join(
                f"\\textsuperscript{{{i}}}{latex_escape(note)}"
                for i, note in enumerate(table.notes, 1)
            )
        )
    if table.marks:
        lines.append("\\par\\smallskip\\footnotesize")
        lines.append("\\\\\n".join(latex_escape(mark) for mark in table.marks))
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def _latex_cell(cell: Cell) -> str:
    if cell.mean is None:
        return "-"
    if cell.kind == "delta":
        return f"${cell.mean:+.2f}$"
    if cell.kind == "value":
        text = f"{cell.mean:.2f}"
    else:
        text = f"{cell.mean:.2f}\\,$\\pm$\\,{cell.std or 0.0:.2f}"
    if cell.rank == 1:
        text = f"\\textbf{{{text}}}"
    elif cell.rank == 2:
        text = f"\\underline{{{text}}}"
    if cell.n is not None:
        text += f"\\,{{\\scriptsize({cell.n})}}"
    if cell.nondefault:
        text += "\\textsuperscript{\\dag}"
    if cell.tie:
        text += "$^{\\approx}$"
    if cell.constant:
        text += "$^{\\equiv}$"
    if cell.untuned:
        text += "$^{*}$"
    if cell.outdated:
        text += "\\textsuperscript{\\ddag}"
    return text
