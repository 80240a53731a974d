"""``laicbench report``: tables and figures regenerated from the records of a results dir.

The report reads stored records (and the ``.pred.npz`` arrays beside them) only: it never
computes features or runs a method. Records that failed (error, oom), that an older version of
their method made, or whose method is not registered are left out, counted in one warning.

Output (``--out``, default: ``<results-dir>/../report`` when the results dir is called ``runs``
as the default ``results/runs`` is, else ``<results-dir>/report``)::

    index.md             links to everything, provenance footer
    index.html           the same as one self-contained web page (sortable, filterable tables)
    main_table.md/.tex   the LAIC main table (Markdown, LaTeX booktabs)
    runs.csv/.parquet    one row per record
    figures/*.png/.pdf   the figures

Everything is written into a temporary sibling folder that replaces the output folder only when
complete, so a failed report leaves the previous one (or nothing) behind, never a partial one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from laicbench.api import registry
from laicbench.api.errors import UserError, did_you_mean
from laicbench.data.features_file import backbone_label
from laicbench.files import check_writable_dir, short_hash, staging_dir
from laicbench.report.figures import (
    FigureContext,
    FigureResult,
    draw_confusion,
    draw_sensitivity,
    has_arrays,
)
from laicbench.report.html import HTML_NAME, HtmlReport
from laicbench.report.html import render as render_html
from laicbench.report.stat_tables import (
    Table,
    confidence_frame,
    confidence_table,
    label_free_tables,
    overclustering_table,
    ranks,
    ranks_table,
    robustness_table,
    shift_table,
    stability_table,
)
from laicbench.report.tables import (
    OUTDATED_MARK,
    Run,
    build_main_table,
    column_labels,
    dataset_order,
    find_sweeps,
    load_reference,
    main_points,
    method_order,
    runs_frame,
    table_dataset,
    to_latex,
    to_markdown,
)
from laicbench.report.tuning import (
    TunedStudy,
    draw_tuning,
    load_studies,
    selection_only,
    tuned_points,
    tuning_table,
)
from laicbench.run.plan import TodayInputs, run_state
from laicbench.run.records import (
    PREDICTIONS_SUFFIX,
    RECORD_SUFFIX,
    NewerRecordError,
    ResultStore,
    RunRecord,
    predictions_intact,
    predictions_path,
)
from laicbench.run.rescore import needs_rescore
from laicbench.run.spec import path_part

if TYPE_CHECKING:
    import pandas as pd

REPORT_MARKER = ".laicbench-report"
REFERENCE_NAME = Path("reference") / "reported.csv"
LEFT_OUT_ORDER = ("failed", "outdated", "damaged", "unreadable")


def default_out(results_dir: str | Path) -> Path:
    """The default output folder of a report of `results_dir`: the sibling ``report`` when the
    results dir is named ``runs`` (``results/runs`` -> ``results/report``), else
    ``<results-dir>/report``."""
    root = Path(results_dir).expanduser().absolute()
    return root.parent / "report" if root.name == "runs" else root / "report"


def find_reference(results_dir: str | Path) -> Path | None:
    """The reported-numbers CSV for `results_dir`: ``<results-dir>/../reference/reported.csv``
    when present, else the repository's ``results/reference/reported.csv`` next to the package
    (present in a source checkout, absent from a plain install), else None."""
    root = Path(results_dir).expanduser().absolute()
    candidates = [
        root.parent / REFERENCE_NAME,
        Path(__file__).resolve().parents[2] / "results" / REFERENCE_NAME,
    ]
    return next((p for p in candidates if p.is_file()), None)


def _run_from_record(
    path: Path,
    record: RunRecord,
    root: Path,
    today: Callable[[RunRecord], dict | None],
    registered: set[str] | None = None,
) -> Run:
    """The Run of a record, with its state by the rule ``status`` and resume use
    (``run_state``: method version and source, and inputs against `today`'s, ``TodayInputs``);
    a record whose method is not registered here, a plugin not importable, is trusted as
    stored. `registered`: the registered method names, when the caller has them."""
    name = record.method.name
    if registered is None:
        registered = set(registry.methods.names())
    if record.ok and not record.metrics:
        state = "failed"
    elif name not in registered:
        state = "done" if record.ok else "failed"
    else:
        state = run_state(record, today(record))
    if state in ("done", "outdated") and not predictions_intact(path, record):
        state = "damaged"
    run_id = record.run_id or str(path.relative_to(root))[: -len(RECORD_SUFFIX)]
    return Run(
        path=path,
        record=record,
        run_id=run_id,
        method=name,
        dataset=table_dataset(record.dataset.name, record.train_on),
        backbone=backbone_label(record.backbone, record.dataset.info),
        seed=record.seed,
        params=record.method.params,
        params_hash=short_hash(record.method.params),
        oracle=record.method.oracle,
        state=state,
    )


def load_runs(results_dir: str | Path) -> tuple[list[Run], list[Path]]:
    """(every record below `results_dir` as a Run, the record files that cannot be read).

    UserError when the folder is missing, not a folder, or holds no laicbench records;
    NewerRecordError naming a record that a newer release wrote.
    """
    root = Path(results_dir).expanduser().absolute()
    if not root.exists():
        raise UserError(f"results dir {root} does not exist")
    if not root.is_dir():
        raise UserError(f"results dir {root} is not a directory")
    records: list[tuple[Path, RunRecord]] = []
    unreadable: list[Path] = []
    registered = set(registry.methods.names())
    for path in ResultStore(root).record_paths():
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError):  # truncated, corrupted, absurdly nested:
            # counted and named, not dropped
            unreadable.append(path)
            continue
        if not isinstance(data, dict) or data.get("schema_version") is None:
            continue  # some other JSON file, not a laicbench record
        try:
            records.append((path, RunRecord.from_dict(data)))
        except NewerRecordError as exc:  # never mixed with this release's records
            raise NewerRecordError(f"{path}: {exc}") from None
        except ValueError:  # a record without the fields every record has, or mistyped ones
            unreadable.append(path)
    if not records:
        raise UserError(
            f"no laicbench records in {root} (expected <method>/<dataset>/<backbone>/"
            "seed<N>-<hash>.json files written by 'laicbench run')"
        )
    today = TodayInputs([record for _, record in records])
    return [
        _run_from_record(path, record, root, today, registered) for path, record in records
    ], unreadable


def select_runs(
    runs: list[Run], methods: Sequence[str] | None = None, datasets: Sequence[str] | None = None
) -> list[Run]:
    """The runs of the given methods and datasets (names or aliases; None: all); UserError
    naming a method or dataset that has no record."""
    runs = _only(runs, methods, "method", registry.methods, method_order)
    return _only(runs, datasets, "dataset", registry.datasets, dataset_order)


def _only(runs: list[Run], names, kind: str, reg: registry.Registry, order) -> list[Run]:
    """The runs whose `kind` ("method" or "dataset") is one of `names` (all when None)."""
    if not names:
        return runs
    have = sorted({getattr(r, kind) for r in runs}, key=order)
    wanted = set()
    for name in names:
        canonical = _canonical(reg, name)
        if canonical not in have:
            raise UserError(
                f"--{kind}s: no records of {kind} {name!r}{did_you_mean(name, have)}; "
                f"{kind}s with records: {', '.join(have)}"
            )
        wanted.add(canonical)
    return [r for r in runs if getattr(r, kind) in wanted]


def _canonical(reg: registry.Registry, name: str) -> str:
    try:
        return reg.canonical(name)
    except UserError:
        return name


def left_out_counts(
    runs: Sequence[Run], unreadable: Sequence[Path] = (), kept: Sequence[str] = ()
) -> dict[str, int]:
    """{reason: count} of the records the report leaves out (failed, outdated, damaged,
    unreadable; not the states in `kept`), zero counts dropped, in that order."""
    reasons = [reason for reason in LEFT_OUT_ORDER if reason not in kept]
    counts = {reason: sum(r.state == reason for r in runs) for reason in reasons}
    counts["unreadable"] = len(unreadable)
    return {k: v for k, v in counts.items() if v}


def left_out_message(
    counts: dict[str, int], named: Sequence[str] = (), root: Path | None = None
) -> str | None:
    """'left out 3 records: 2 failed, 1 damaged (a/b/c.json)' (None when nothing was left
    out); `named` are the record files of accidents (damaged, unreadable), shown relative to
    `root`, the first three of them."""
    total = sum(counts.values())
    if not total:
        return None
    parts = ", ".join(f"{n} {reason}" for reason, n in counts.items())
    message = f"left out {total} record{'s' if total != 1 else ''}: {parts}"
    if named:
        shown = [str(Path(p).relative_to(root)) if root else str(p) for p in named[:3]]
        more = f" and {len(named) - 3} more" if len(named) > 3 else ""
        message += f" (damaged or unreadable: {', '.join(shown)}{more}; rerun to repair)"
    return message


@dataclass
class Report:
    """What ``build_report`` wrote: the output folder, the runs used, the left-out counts, the
    tables' and figures' files (relative to `out`) and the figures that were skipped."""

    out: Path
    runs: list[Run]
    left_out: dict[str, int]
    tables: list[str] = field(default_factory=list)
    figures: list[FigureResult] = field(default_factory=list)
    statistics: list[Table] = field(default_factory=list)
    unscored: int = 0  # records used that lack the scores of the current scoring version
    outdated: int = 0  # outdated records kept on purpose (--allow-outdated), their cells marked
    backbone_tables: list[tuple[str, str]] = field(default_factory=list)  # (backbone, stem)
    studies: list[TunedStudy] = field(default_factory=list)  # finished tuning studies
    selection_runs: int = 0  # runs tuning studies made only to choose, used by the tuning table
    tuned: str | None = None  # the objective of the main table's tuned view


def _statistical_tables(
    folder: Path,
    runs: list[Run],
    over: list[Run],
    points: dict,
    labels: dict[tuple[str, str], str],
    attacked: list[Run] | None = None,
) -> list[Table]:
    """Write the tables beside the main table (confidence intervals, with their CSV and
    Parquet; ranks; seed stability; label-free; over-clustering; robustness, from the runs on
    `attacked` test images) and return them."""
    tables: list[Table] = []
    if points:
        cells = confidence_frame(points, labels)
        cells.to_csv(folder / "cells.csv", index=False)
        cells.to_parquet(folder / "cells.parquet", index=False)
        tables.append(confidence_table(cells))
        rank_tests = ranks(points)
        if rank_tests:
            tables.append(ranks_table(rank_tests))
        tables.append(stability_table(points, labels))
        tables.extend(label_free_tables(runs, labels) or ())
        shift = shift_table(points)
        if shift is not None:
            tables.append(shift)
    overclustering = overclustering_table(over, column_labels(over))
    if overclustering is not None:
        tables.append(overclustering)
    clean = [*runs, *over]
    robustness = robustness_table(clean, attacked or [], column_labels([*clean, *(attacked or [])]))
    if robustness is not None:
        tables.append(robustness)
    outdated = sum(r.state == "outdated" for r in clean)
    for table in tables:
        if outdated:  # kept on purpose (--allow-outdated): every table says so
            table.caption += (
                f" Includes {outdated} outdated run(s) kept with --allow-outdated (their cells "
                f"of the main table are marked {OUTDATED_MARK})."
            )
        (folder / f"{table.name}.md").write_text(table.to_markdown())
        (folder / f"{table.name}.tex").write_text(table.to_latex())
    return tables


def _warn_stderr(message: str) -> None:
    print(f"laicbench: warning: {message}", file=sys.stderr)


def build_report(
    results_dir: str | Path,
    out: str | Path | None = None,
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    confusion: str | None = None,
    reference: str | Path | bool = True,
    warn: Callable[[str], None] = _warn_stderr,
    tuned: str | None = None,
    allow_outdated: bool = False,
) -> Report:
    """Write the report of the records in `results_dir` to `out` (default: ``default_out``).

    `methods`/`datasets` restrict the records (names or aliases); `confusion` is the run id whose
    confusion matrix is drawn (default: a method tagged featured, seed 0, on the first dataset,
    else the first run); `reference` is the reported-numbers CSV (True: ``find_reference``;
    False: none); `tuned` is a label-free tuning objective: the main table then shows each
    method at the parameters its tuning study chose. Outdated records (another method version or
    source, or inputs other than today's: the rule of ``status``) are left out, unless
    `allow_outdated`: then they are used and their cells of the main tables are marked §.
    `warn` receives one line counting the records left out, if any. Returns the Report;
    UserError (nothing written) when there is nothing to report or an argument is wrong.

    The runs tuning studies made only to choose parameters (their selection seeds) are used by
    the tuning table alone, not by the other tables and figures.
    """
    root = Path(results_dir).expanduser().absolute()
    all_runs, unreadable = load_runs(root)
    selected = select_runs(all_runs, methods, datasets)
    usable = ("done", "outdated") if allow_outdated else ("done",)
    counts = left_out_counts(selected, unreadable, kept=usable)
    accidents = [r.path for r in selected if r.state == "damaged"] + list(unreadable)
    message = left_out_message(counts, accidents, root)
    if counts.get("outdated"):
        message += "; --allow-outdated keeps the outdated ones, their cells marked"
    cells = {(r.method, r.dataset, r.backbone) for r in selected}
    shown = {
        (r.dataset, r.record.backbone): r.backbone for r in selected
    }  # a features file's label
    studies = [
        dataclasses.replace(s, backbone=shown.get((s.dataset, s.backbone), s.backbone))
        for s in load_studies(root)
    ]
    studies = [s for s in studies if s.key in cells]
    if tuned is not None:
        tuned_points(studies, tuned)  # UserError now, before anything is written
    hidden = selection_only(studies, selected)
    runs = [r for r in selected if r.state in usable and r.run_id not in hidden]
    if not runs:
        raise UserError(f"no usable records in {root}" + (f" ({message})" if message else ""))
    out_dir = Path(out).expanduser().absolute() if out is not None else default_out(root)
    _check_out(out_dir, root)
    try:
        check_writable_dir(out_dir.parent, "--out")
    except UserError as exc:  # a read-only results dir: the report can go elsewhere
        raise UserError(f"{exc}; write the report elsewhere with --out DIR") from None
    reference_path = find_reference(root) if reference is True else reference or None
    reference_frame = load_reference(reference_path) if reference_path else None
    confusion_run = _confusion_run(all_runs, runs, confusion)
    if message:
        warn(message)

    report = Report(out=out_dir, runs=runs, left_out=counts, studies=studies, tuned=tuned)
    report.selection_runs = sum(r.run_id in hidden for r in selected)
    report.outdated = sum(r.state == "outdated" for r in runs)
    if report.outdated:
        warn(
            f"kept {report.outdated} outdated record(s) (--allow-outdated): their cells of the "
            "main tables are marked §"
        )
    report.unscored = sum(needs_rescore(r.record) for r in runs)
    if report.unscored:
        warn(
            f"{report.unscored} record(s) lack the newer scores (AMI, balanced and many-to-one "
            "accuracy, cluster sizes, label-free metrics); fill them from the stored predictions "
            f"with: laicbench rescore --results-dir {root}"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out_dir)
    tmp = staging_dir(out_dir.parent, prefix=f".{out_dir.name}-", suffix=".tmp")
    try:
        (tmp / STAGING_OWNER).write_text(_owner())
        _write_report(report, tmp, selected, reference_frame, reference_path, confusion_run)
        (tmp / STAGING_OWNER).unlink()
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _check_out(out_dir: Path, root: Path) -> None:
    """UserError unless `out_dir` may be (re)placed: absent, empty or an earlier report, and not
    the results dir or a folder holding it."""
    if out_dir == root or out_dir in root.parents:
        raise UserError(f"--out {out_dir}: would replace the results dir {root}")
    blocker = next((p for p in out_dir.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UserError(f"--out {out_dir}: {blocker} is a file, not a directory")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise UserError(f"--out {out_dir}: exists and is not a directory")
        if any(out_dir.iterdir()) and not (out_dir / REPORT_MARKER).exists():
            raise UserError(
                f"--out {out_dir}: not empty and not an earlier laicbench report; "
                "choose another folder"
            )


def _confusion_run(all_runs: list[Run], runs: list[Run], run_id: str | None) -> Run | None:
    """The run whose confusion matrix is drawn; UserError for an unknown or unusable run id."""
    if run_id is None:
        return None
    wanted = run_id.strip().removesuffix(RECORD_SUFFIX).removesuffix(PREDICTIONS_SUFFIX)
    for run in all_runs:
        if run.run_id == wanted:
            if run.state != "done" and run not in runs:
                raise UserError(f"--confusion {run_id}: that run is left out ({run.state})")
            if run not in runs:
                raise UserError(f"--confusion {run_id}: not among the selected methods/datasets")
            if not predictions_path(run.path).is_file():
                raise UserError(f"--confusion {run_id}: its predictions file is missing")
            return run
    ids = [r.run_id for r in runs]
    raise UserError(f"--confusion: no run {run_id!r}{did_you_mean(wanted, ids)}")


STAGING_OWNER = ".laicbench-staging-owner"  # "host pid" of the report writing the folder


def _owner() -> str:
    return f"{socket.gethostname()} {os.getpid()}"


def remove_stale_staging(out_dir: Path) -> list[Path]:
    """Remove the hidden folders that reports killed midway left beside `out_dir` (a staging
    ``.<name>-*.tmp`` whose writer is gone, a replaced ``.<name>-old-*``); returns them. A
    staging folder of a report still running on this host is kept; one written on another host
    (shared storage) is removed after a day."""
    removed = []
    prefix = f".{out_dir.name}-"
    try:
        siblings = [p for p in out_dir.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    for path in siblings:
        if not path.is_dir() or path.is_symlink():
            continue
        stem = path.name[len(prefix) :]
        if stem.startswith("old-") or (path.name.endswith(".tmp") and _abandoned(path)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _abandoned(staging: Path) -> bool:
    """Whether the report that made `staging` is gone (see ``remove_stale_staging``)."""
    try:
        age = time.time() - staging.stat().st_mtime
    except OSError:
        return False
    try:
        host, pid = (staging / STAGING_OWNER).read_text().split()
    except (OSError, ValueError):
        return age > 60  # no owner written yet: a minute's grace
    if host != socket.gethostname():
        return age > 86_400
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move the finished `tmp` to `out_dir`, replacing an earlier report there."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}-old-{uuid.uuid4().hex[:8]}")
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_report(
    report: Report,
    folder: Path,
    selected: list[Run],
    reference: pd.DataFrame | None,
    reference_path: Path | None,
    confusion_run: Run | None,
) -> None:
    runs = report.runs
    # the order keys once per method and dataset, not once per record
    methods_at = {m: method_order(m) for m in {r.method for r in selected}}
    datasets_at = {d: dataset_order(d) for d in {r.dataset for r in selected}}
    order = sorted(
        selected,
        key=lambda r: (
            methods_at[r.method],
            datasets_at[r.dataset],
            r.backbone,
            r.params_hash,
            r.seed,
        ),
    )
    frame = runs_frame(order)
    frame.to_csv(folder / "runs.csv", index=False)
    frame.to_parquet(folder / "runs.parquet", index=False)
    attacked = [r for r in runs if r.attack is not None]  # the robustness table's only
    runs = [r for r in runs if r.attack is None]
    over = [r for r in runs if r.k_factor > 1]
    runs = [r for r in runs if r.k_factor == 1]  # the tables and figures of K clusters
    view = (report.tuned, tuned_points(report.studies, report.tuned)) if report.tuned else None
    table = build_main_table(runs, reference, view) if runs else None
    markdown = to_markdown(table) if table else "No run with K clusters (only over-clustering).\n"
    (folder / "main_table.md").write_text(markdown)
    report.tables = ["main_table.md", "runs.csv", "runs.parquet"]
    if table:
        (folder / "main_table.tex").write_text(to_latex(table))
        report.tables.insert(1, "main_table.tex")

    backbones = sorted({r.backbone for r in runs})
    if len(backbones) > 1:  # the backbone comparison: one main table per backbone
        for backbone in backbones:
            stem = f"main_table-{path_part(backbone)}"
            own = build_main_table([r for r in runs if r.backbone == backbone], reference, view)
            (folder / f"{stem}.md").write_text(to_markdown(own))
            (folder / f"{stem}.tex").write_text(to_latex(own, label=f"tab:main-{stem}"))
            report.backbone_tables.append((backbone, stem))
            report.tables += [f"{stem}.md", f"{stem}.tex"]

    labels = column_labels(runs)
    points = main_points(runs, view[1] if view else None)
    extra = _statistical_tables(folder, runs, over, points, labels, attacked)
    tuning = tuning_table(report.studies, [r for r in selected if r.state == "done"])
    if tuning is not None:
        (folder / f"{tuning.name}.md").write_text(tuning.to_markdown())
        (folder / f"{tuning.name}.tex").write_text(tuning.to_latex())
        extra.append(tuning)
    report.tables += [name for t in extra for name in (f"{t.name}.md", f"{t.name}.tex")]
    report.statistics = extra
    context = FigureContext.of(points, labels, folder / "figures")
    figures_dir = context.folder
    figures = [entry.obj(context) for entry in registry.figures.entries()]
    sweeps = find_sweeps(runs)
    by_param: dict[tuple[str, str], list] = {}
    for sweep in sweeps:
        by_param.setdefault((sweep.method, sweep.param), []).append(sweep)
    if by_param:
        figures.extend(draw_sensitivity(group, figures_dir) for group in by_param.values())
    else:
        figures.append(
            FigureResult(
                "sensitivity_<method>_<param>",
                "Sensitivity to a parameter",
                skipped="no sweep: no method has runs on one dataset that differ in one "
                "parameter only",
            )
        )
    if report.studies:
        done = [r for r in selected if r.state == "done"]
        figures.append(draw_tuning(report.studies, done, figures_dir))
    if confusion_run is None:  # a run of a featured method, else the first run
        confusion_run = context.pick(
            context.methods_tagged("featured"), lambda r: has_arrays(r, "y_true", "y_pred")
        )
    if confusion_run is None:
        ordered_done = [r for r in order if r.state == "done"]
        confusion_run = next((r for r in ordered_done if has_arrays(r, "y_true", "y_pred")), None)
    figures.append(draw_confusion(confusion_run, figures_dir))
    report.figures = figures

    (folder / REPORT_MARKER).write_text("written by laicbench report\n")
    all_labels = column_labels(report.runs)
    page = HtmlReport(
        summary=_summary(report, all_labels),
        files=[(name, name) for name in _listed_files(report)],
        table=table,
        column_keys={label: key for key, label in labels.items()},
        cells=confidence_frame(points, labels) if points else None,
        points=points,
        tags={r.method: r.tags for r in runs},
        tables=report.statistics,
        figures=report.figures,
        provenance=_footer(report.runs),
        out=report.out,
    )
    (folder / HTML_NAME).write_text(render_html(page))
    index = _index(report, markdown, reference_path, all_labels)
    (folder / "index.md").write_text(index)  # last: its presence means the report is complete


def _index(
    report: Report,
    main_table_md: str,
    reference_path: Path | None,
    labels: dict[tuple[str, str], str],
) -> str:
    runs = report.runs
    lines = ["# laicbench report", "", *_summary(report, labels)]
    lines += ["", "## Tables", ""]
    lines.append(f"- [The report as one web page]({HTML_NAME}), tables sortable and filterable")
    if "main_table.tex" in report.tables:
        lines.append("- [Main table (Markdown)](main_table.md), [LaTeX](main_table.tex)")
    lines += [
        f"- Main table of {backbone} only: [Markdown]({stem}.md), [LaTeX]({stem}.tex)"
        for backbone, stem in report.backbone_tables
    ]
    lines += [
        f"- [{table.title} (Markdown)]({table.name}.md), [LaTeX]({table.name}.tex)"
        for table in report.statistics
    ]
    lines.append(
        "- [All records (CSV)](runs.csv), [Parquet](runs.parquet): one row per record, "
        "with its state (done = used here)"
    )
    if report.statistics:
        lines.append(
            "- [Cells with confidence intervals (CSV)](cells.csv), [Parquet](cells.parquet): "
            "one row per main-table cell, mean, std and 95% interval of each metric"
        )
    if report.unscored:
        lines.append(
            f"- {report.unscored} record(s) were scored before AMI, balanced and many-to-one "
            "accuracy, cluster sizes and the label-free metrics existed: their cells of those "
            "are empty; `laicbench rescore --results-dir RESULTS` fills them from the stored "
            "predictions without rerunning any method."
        )
    if reference_path is None:
        lines.append(
            "- No reported rows: no reference file of reported numbers (none found or given)."
        )
    else:
        lines.append(f"- Reported numbers from `{reference_path}`.")
    lines += ["", main_table_md.rstrip(), ""]
    for table in report.statistics:
        lines += [table.to_markdown().rstrip(), ""]
    lines += ["## Figures", ""]
    drawn = [f for f in report.figures if not f.skipped]
    skipped = [f for f in report.figures if f.skipped]
    for fig in drawn:
        png, pdf = (f"figures/{p.name}" for p in fig.files)
        lines += [
            f"### {fig.title}",
            "",
            fig.description,
            "",
            f"![{fig.title}]({png})",
            "",
            f"[PNG]({png}), [PDF]({pdf})",
            "",
        ]
    if skipped:
        lines += ["### Skipped figures", ""]
        lines += [f"- {fig.title} (`{fig.name}`): {fig.skipped}." for fig in skipped]
        lines.append("")
    lines += ["---", ""]
    lines += _footer(runs)
    return "\n".join(lines) + "\n"


def _summary(report: Report, labels: dict[tuple[str, str], str]) -> list[str]:
    """The report's opening lines: what was run, and what was left out."""
    runs = report.runs
    lines = [
        f"{len(runs)} runs: {len({r.method for r in runs})} methods on "
        f"{len(labels)} dataset column(s), seeds "
        f"{', '.join(str(s) for s in sorted({r.seed for r in runs}))}."
    ]
    if report.selection_runs:
        lines.append(
            f"{report.selection_runs} runs that tuning searches made to choose parameters (their "
            "selection seeds) are used by the tuning table only."
        )
    message = left_out_message(report.left_out)
    if message:
        lines.append(
            f"Not used: {message} (error/oom records; outdated ones: another method version or "
            "source, or inputs other than today's, kept with --allow-outdated; damaged or "
            "unreadable ones; see the state column of runs.csv)."
        )
    if report.outdated:
        lines.append(
            f"Used on purpose (--allow-outdated): {report.outdated} outdated record(s); the "
            "cells they enter are marked § (see the state column of runs.csv)."
        )
    return lines


def _listed_files(report: Report) -> list[str]:
    """The table files of the report, the cells' CSV and Parquet among them when written."""
    cells = ["cells.csv", "cells.parquet"] if report.statistics else []
    return [*report.tables, *cells]


def _footer(runs: list[Run]) -> list[str]:
    commits: list[str] = []
    libraries: dict[str, list[str]] = {}
    for run in runs:
        env = run.record.environment or {}
        commit = env.get("git_commit")
        if commit and str(commit) not in commits:
            commits.append(str(commit))
        for name, version in (env.get("libraries") or {}).items():
            versions = libraries.setdefault(str(name), [])
            if version is not None and str(version) not in versions:
                versions.append(str(version))
    library_text = "; ".join(
        f"{name} {', '.join(versions) or 'unknown'}" for name, versions in sorted(libraries.items())
    )
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    backbones = sorted({r.backbone for r in runs})
    return [
        f"- laicbench commit(s) of the runs: {', '.join(commits) or 'unknown'}",
        f"- libraries of the runs: {library_text or 'unknown'}",
        f"- backbone(s): {', '.join(backbones)}",
        f"- generated: {generated} by `laicbench report`",
    ]
