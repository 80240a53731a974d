"""``laicbench run``, ``status`` and ``list``: sweeps over the library's Sweep, and the
registered plugins."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from laicbench.api import registry
from laicbench.cli.options import execution_options, sweep_config
from laicbench.run.records import RunRecord
from laicbench.run.spec import RunSpec

EXIT_OK, EXIT_FAILED_RUNS, EXIT_INTERRUPTED = 0, 1, 130


def add_commands(sub, plugins, data, selection) -> None:
    """Register ``run``, ``status`` and ``list`` on the `sub` subparsers action."""
    run = sub.add_parser(
        "run",
        parents=[plugins, data, selection, execution_options()],
        help="run methods x datasets x seeds and store one record per run",
        description="Run methods x datasets x seeds. With no arguments: every method on the demo "
        "benchmark with seeds 0-2. Finished runs are skipped (resume is the default).",
    )
    run.add_argument(
        "--overwrite",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rerun runs that have a record (--no-overwrite undoes a config file's true)",
    )
    run.add_argument("--dry-run", action="store_true", help="print the runs without running them")

    status = sub.add_parser(
        "status",
        parents=[plugins, data, selection],
        help="done / missing / error counts per method x dataset of a sweep",
        description="Count, for the runs the same selection would run, those done (ok record of "
        "the current method version, made from today's inputs), failed (error or oom record), "
        "outdated (older method version, or a changed features file, precision, vocabulary or "
        "sample list), damaged (predictions file missing or corrupt) and missing, and say why.",
    )
    status.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    status.set_defaults(dry_run=False)

    lst = sub.add_parser(
        "list",
        parents=[plugins],
        help="list registered methods, datasets or report figures",
        description="List registered plugins with a one-line description and where each is "
        "defined.",
    )
    lst.add_argument("kind", choices=["methods", "datasets", "figures"])


def dispatch(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run the subcommand named by `args.command` (run, status or list)."""
    if args.command == "list":
        return cmd_list(args.kind, out)
    if args.command == "status":
        return cmd_status(args, out)
    return cmd_run(args, out, err)


def cmd_list(kind: str, out: Console) -> int:
    """Print the registered methods, datasets or figures (methods with their tags)."""
    reg = {"methods": registry.methods, "datasets": registry.datasets}.get(kind, registry.figures)
    table = Table(title=f"laicbench {kind}", show_lines=False)
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("aliases")
    if kind == "methods":
        table.add_column("tags")
        table.add_column("tuned by laicbench tune")
    table.add_column("description")
    table.add_column("defined in", overflow="fold")
    for entry in reg.entries():
        extra = [", ".join(sorted(entry.obj.tags)), _space(entry.obj)] if kind == "methods" else []
        table.add_row(
            entry.name,
            ", ".join(entry.aliases),
            *extra,
            escape(entry.description),
            escape(f"{entry.defined_in} ({entry.origin})"),
        )
    out.print(table)
    return EXIT_OK


def _space(method_cls) -> str:
    """The parameters a method's search space covers, or why it is not tunable."""
    if method_cls.oracle:
        return "not tunable (oracle)"
    return ", ".join(method_cls.param_space) or "not tunable"


def progress_bars(err: Console) -> Progress:
    """The progress display of a sweep: on stderr, so that stdout holds only the summary."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def cmd_run(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Plan, check and execute a sweep; print the summary and the results table."""
    from laicbench.run.sweep import Sweep

    sweep = Sweep(sweep_config(args))
    if args.dry_run:
        _print_dry_run(sweep, out)
        return EXIT_OK
    sweep.check()
    finished: list[tuple[RunSpec, RunRecord]] = []
    todo = len(sweep.plan.todo)
    progress = progress_bars(err)
    try:
        with progress:
            task = progress.add_task(f"runs ({sweep.executor.name})", total=todo)

            def on_start(spec: RunSpec) -> None:
                progress.update(task, description=spec.run_id)

            def on_done(spec: RunSpec, record: RunRecord) -> None:
                finished.append((spec, record))
                progress.advance(task)

            result = sweep.execute(on_start, on_done)
            progress.update(task, description="runs")
    except KeyboardInterrupt:
        err.print(
            f"[yellow]interrupted[/]: {len(finished)} of {todo} runs finished and "
            "were stored; rerun the same command to do the rest"
        )
        return EXIT_INTERRUPTED

    failed = result.failed
    out.print(
        f"[bold]{len(result.finished) - len(failed)} new, {len(result.skipped)} skipped (already "
        f"done), {len(failed)} failed[/] - records in {result.results_dir}"
    )
    for spec, record in failed:
        error = record.error or {}
        message = error.get("message") or ""
        out.print(
            f"[red]{record.status}[/] {spec.run_id}: {error.get('type')}: "
            f"{message.splitlines()[0] if message else ''}"
        )
    _print_results_table(result.records, out)
    out.print(
        f"regenerate the report: laicbench report --results-dir {result.results_dir}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return EXIT_FAILED_RUNS if failed else EXIT_OK


def cmd_status(args: argparse.Namespace, out: Console) -> int:
    """Print done / failed / outdated / damaged / missing counts per method x dataset, and why
    runs are outdated, failed or damaged."""
    from collections import Counter

    from laicbench.run.sweep import Sweep

    sweep = Sweep(sweep_config(args))
    store = sweep.store
    counts: dict[tuple[str, str], dict[str, int]] = {}
    reasons: Counter[str] = Counter()
    states = ("done", "failed", "outdated", "damaged", "missing")
    for spec, state, why in sweep.states():
        cell = counts.setdefault((spec.method, spec.dataset), dict.fromkeys(states, 0))
        cell[state] += 1
        if why:
            reasons[f"{state}: {why}"] += 1
    table = Table(title=f"sweep status in {store.root}")
    for column in ("method", "dataset", *states):
        table.add_column(column, justify="left" if column in ("method", "dataset") else "right")
    for (method, dataset), cell in counts.items():
        table.add_row(method, dataset, *(str(cell[s]) for s in states))
    out.print(table)
    totals = {s: sum(c[s] for c in counts.values()) for s in states}
    out.print(", ".join(f"{totals[s]} {s}" for s in states))
    for reason, n in sorted(reasons.items()):
        out.print(f"  {n} {reason}", markup=False, highlight=False)
    return EXIT_OK


def _print_dry_run(sweep, out: Console) -> None:
    specs = sweep.specs
    done = {spec.run_id for spec, _ in sweep.plan.done}
    table = Table(title=f"{len(specs)} runs ({len(sweep.plan.todo)} to run, {len(done)} done)")
    for column in ("method", "dataset", "backbone", "seed", "params", "status"):
        table.add_column(column)
    for spec in specs:
        params = ", ".join(f"{k}={v}" for k, v in spec.params.items())
        status = "done (skip)" if spec.run_id in done else "to run"
        table.add_row(spec.method, spec.dataset, spec.backbone, str(spec.seed), params, status)
    out.print(table)


def _print_results_table(records: list[RunRecord], out: Console) -> None:
    from laicbench.report.aggregate import METRICS, format_mean_std, mean_std_table, records_frame

    frame = records_frame(records)
    if frame.empty:
        return
    summary = mean_std_table(frame, by=("method", "variant", "dataset"))
    table = Table(title="NMI / ACC / ARI (%), mean ± std over seeds")
    for column in ("method", "dataset", "n", *(m.upper() for m in METRICS)):
        justify = "left" if column in ("method", "dataset") else "right"
        table.add_column(column, justify=justify, no_wrap=True)
    for oracle in (False, True):
        for row in summary[summary["oracle"] == oracle].itertuples():
            name = f"{row.method} [{row.variant}]" if row.variant else row.method
            name = f"{name} (oracle)" if oracle else name
            cells = [
                format_mean_std(getattr(row, f"{m}_mean"), getattr(row, f"{m}_std"))
                for m in METRICS
            ]
            table.add_row(escape(name), row.dataset, str(row.n), *cells)
    out.print(table)
