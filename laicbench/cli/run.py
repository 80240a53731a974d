"""``laicbench run``, ``status`` and ``list``: sweeps over the library's Sweep, and the
registered plugins."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from laicbench.api import registry
from laicbench.api.errors import UserError
from laicbench.cli.options import execution_options, sweep_config
from laicbench.cli.signals import EXIT_TERMINATED, sigterm_as_interrupt
from laicbench.data.features_file import backbone_label
from laicbench.run.records import RunRecord
from laicbench.run.spec import ALL_CLASSES, RunSpec, train_protocol

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
    run.add_argument(
        "--run-timeout",
        type=float,
        metavar="SECONDS",
        help="stop a run still going after this many seconds and record it as a timeout (the "
        "sweep goes on; default: no limit)",
    )

    status = sub.add_parser(
        "status",
        parents=[plugins, data, selection],
        help="done / missing / error counts per method x dataset of a sweep",
        description="Count, for the runs the same selection would run, those done (ok record of "
        "the current method version and source, made from today's inputs), failed (error or oom "
        "record), outdated (another method version, the method's source file changed, or a "
        "changed features file, precision, vocabulary or sample list), damaged (predictions "
        "file missing or corrupt, or a record file that cannot be used, named) and missing, and "
        "say why.",
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
    lst.add_argument(
        "--params",
        action="store_true",
        help="methods: every hyperparameter with its type, default, allowed values, "
        "per-dataset values and documentation",
    )
    lst.add_argument(
        "--format",
        choices=["table", "markdown"],
        default="table",
        help="with --params: 'markdown' prints the tables of the documentation's parameter page",
    )


def dispatch(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run the subcommand named by `args.command` (run, status or list)."""
    if args.command == "list":
        if args.params:
            return cmd_list_params(args.kind, args.format, out)
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


def cmd_list_params(kind: str, form: str, out: Console) -> int:
    """Print every registered method's hyperparameters (``laicbench.api.params.param_rows``):
    one rich table per method, or with `form` "markdown" the documentation's parameter page."""
    from laicbench.api.params import param_rows

    if kind != "methods":
        raise UserError(f"--params lists the hyperparameters of methods, not of {kind}")
    if form == "markdown":
        print(params_markdown(), end="")
        return EXIT_OK
    for entry in registry.methods.entries():
        table = Table(title=escape(f"{entry.name}: {entry.description}"), title_justify="left")
        for column in ("parameter", "type", "default", "allowed", "meaning"):
            table.add_column(column, no_wrap=column != "meaning", overflow="fold")
        for row in param_rows(entry.obj):
            meaning = row.doc + (f" Per dataset: {row.per_dataset}." if row.per_dataset else "")
            table.add_row(
                *(escape(v) for v in (row.name, row.type, row.default, row.allowed)),
                escape(meaning),
            )
        out.print(table)
    return EXIT_OK


PARAMS_PAGE_INTRO = """\
# Method parameters

<!-- generated by `laicbench list methods --params --format markdown` from the documentation
at each declaration; tests/test_method_params.py checks that it is up to date -->

Every hyperparameter of every built-in method, with the documentation written where it is
declared (an attribute docstring under the dataclass field, see
[Writing a plugin](plugins.md#hyperparameters)). Set one with `--grid METHOD.PARAM=V1,V2` or in
a config file's `[params.METHOD]` table ([Command line and configuration](cli.md)); every value
is checked against the type and the allowed values before any run starts. A parameter left at
`None` takes the per-dataset value listed for the run's dataset, else the fallback its meaning
names. What each method does and where it departs from its paper: [Methods](methods.md).
"""


def params_markdown() -> str:
    """The documentation's parameter page: the intro, then per registered method a table of its
    hyperparameters (name, type, default, allowed values, meaning with per-dataset values)."""
    from laicbench.api.params import param_rows

    lines = [PARAMS_PAGE_INTRO]
    for entry in registry.methods.entries():
        lines += ["", f"## {entry.name}", "", entry.description, ""]
        lines += ["| parameter | type | default | allowed | meaning |", "|---|---|---|---|---|"]
        for row in param_rows(entry.obj):
            meaning = row.doc + (f" Per dataset: {row.per_dataset}." if row.per_dataset else "")
            kind = row.type.replace(" | ", " or ")  # a pipe would split the table cell
            cells = [f"`{row.name}`", _code(kind), _code(row.default), row.allowed, meaning]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _space(method_cls) -> str:
    """The parameters a method's search space covers, or why it is not tunable."""
    if "interactive" in method_cls.tags:
        return "not tunable (interactive)"
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
    finished: list[tuple[RunSpec, RunRecord]] = []
    todo = len(sweep.plan.todo)
    progress = progress_bars(err)
    with sigterm_as_interrupt() as guard:
        try:
            sweep.check()
            guard.install()  # starting Ray put its own SIGTERM handler in place
            for why in sweep.plan.unusable:  # named, then rerun (the new record replaces it)
                err.print(f"laicbench: warning: rerunning: {why}", markup=False, highlight=False)
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
                f"[yellow]{'terminated' if guard.received else 'interrupted'}[/]: "
                f"{len(finished)} of {todo} runs finished and were stored; rerun the same "
                "command to do the rest"
            )
            return EXIT_TERMINATED if guard.received else EXIT_INTERRUPTED

    failed = result.failed
    out.print(
        f"[bold]{len(result.finished) - len(failed)} new, {len(result.skipped)} skipped (already "
        f"done), {len(failed)} failed[/] - records in {result.results_dir}"
    )
    for label in sorted({spec.attack.label for spec in result.specs if spec.attack}):
        out.print(f"test images attacked by {label}", markup=False, highlight=False)
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
    attacks = sorted({spec.attack.label for spec in sweep.specs if spec.attack is not None})
    attacked = f" (test images attacked by {', '.join(attacks)})" if attacks else ""
    table = Table(title=f"sweep status in {store.root}{attacked}")
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
    for column in ("method", "dataset", "backbone", "seed", "params", "learns from", "status"):
        table.add_column(column)
    for spec in specs:
        params = ", ".join(f"{k}={v}" for k, v in spec.params.items())
        status = "done (skip)" if spec.run_id in done else "to run"
        backbone = backbone_label(spec.backbone)
        dataset = spec.dataset + (f" (attacked: {spec.attack.label})" if spec.attack else "")
        cells = (spec.method, dataset, backbone, str(spec.seed), params, learns_from(spec))
        table.add_row(*(escape(c) for c in cells), status)
    out.print(table)


def learns_from(spec: RunSpec) -> str:
    """What a run learns from, for the dry run: "own train split" ("own images (test only)" for
    a test-only set), or in the shift track the source's train split and classes ("imagenet
    train, all classes"; a training-free method selects its nouns there: "nouns: imagenet
    train, all classes")."""
    from laicbench.data.resolve import resolve_dataset

    if spec.train_on is None:
        test_only = resolve_dataset(spec.dataset).test_only
        return "own images (test only)" if test_only else "own train split"
    source, classes = train_protocol(spec.train_on)
    what = f"{source} train, {'all classes' if classes == ALL_CLASSES else 'the set’s classes'}"
    return f"nouns: {what}" if "training-free" in registry.methods.get(spec.method).tags else what


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
    from laicbench.report.tables import BLOCK_ORDER, TAG_MARKS, TAG_NOTES, row_kind

    def kind(row) -> str:
        try:
            tags = registry.methods.get(row.method).tags
        except UserError:  # a plugin no longer importable: its record's oracle flag only
            tags = frozenset()
        return row_kind(bool(row.oracle), tags)

    rows = sorted(summary.itertuples(), key=lambda row: BLOCK_ORDER.index(kind(row)))
    shown = set()
    for row in rows:
        name = f"{row.method} [{row.variant}]" if row.variant else row.method
        block = kind(row)
        shown.add(block)
        if block in ("oracle", "interactive"):
            name = f"{name} ({block}{' ' + TAG_MARKS[block] if block in TAG_MARKS else ''})"
        elif block in TAG_MARKS:
            name = f"{name} {TAG_MARKS[block]}"
        cells = [
            format_mean_std(getattr(row, f"{m}_mean"), getattr(row, f"{m}_std")) for m in METRICS
        ]
        table.add_row(escape(name), row.dataset, str(row.n), *cells)
    marks = [TAG_NOTES[block] for block in TAG_MARKS if block in shown]
    if marks:
        table.caption = " ".join(marks)
    out.print(table)
