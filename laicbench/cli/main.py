"""The ``laicbench`` command line: ``run`` and ``list``."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from laicbench import __version__
from laicbench.api import registry
from laicbench.api.errors import UserError
from laicbench.api.settings import DataSettings
from laicbench.run.config import DEFAULT_RESULTS_DIR, load_config, split_list
from laicbench.run.records import ResultStore
from laicbench.run.spec import RunSpec

EXIT_OK, EXIT_FAILED_RUNS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see '{self.prog} --help')")


def _subcommand_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The (sub)parser of the command `args` names: ``run``, ``bench methods``, ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return _subcommand_parser(chosen, args)
    return parser


def _unrecognized(parser: argparse.ArgumentParser, args, unknown: list[str]) -> UserError:
    """One-line error for `unknown` arguments, suggesting only options of the command given."""
    command = _subcommand_parser(parser, args)
    # compared without the dashes, which every option shares and which would make all look close
    options = {s.lstrip("-"): s for a in command._actions for s in a.option_strings}
    for arg in unknown:
        if not arg.startswith("-"):
            continue
        close = difflib.get_close_matches(arg.split("=")[0].lstrip("-"), options, n=3, cutoff=0.6)
        if close:
            names = " or ".join(repr(options[c]) for c in close)
            return UserError(
                f"unrecognized option {arg} (did you mean {names}?) (see '{command.prog} --help')"
            )
    return UserError(f"unrecognized arguments: {' '.join(unknown)} (see '{command.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``laicbench`` command."""
    plugins = _Parser(add_help=False)
    plugins.add_argument(
        "--include-path",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of plugin files (*.py) registering extra methods or datasets; repeatable",
    )
    data = _Parser(add_help=False)
    data.add_argument(
        "--data-root",
        help="folder holding the datasets (default: $LAICBENCH_DATA or ~/.cache/laicbench/data)",
    )
    data.add_argument(
        "--download",
        action="store_true",
        default=None,
        help="let torchvision download CIFAR/STL-10/DTD where the network allows",
    )
    data.add_argument(
        "--cache-dir",
        help="feature cache (default: $LAICBENCH_CACHE or ~/.cache/laicbench/features)",
    )
    data.add_argument(
        "--precision",
        choices=["auto", "fp32", "fp16", "bf16"],
        help="feature extraction precision (default auto: fp32 on CPU, fp16 on CUDA)",
    )
    data.add_argument(
        "--vocabulary",
        metavar="FILE",
        help="noun bank: a text file with one noun per line (default: the WordNet noun list)",
    )
    data.add_argument("--batch-size", type=int, help="image batch size (default 256)")
    data.add_argument("--workers", type=int, help="DataLoader workers (default 2)")
    parser = _Parser(
        prog="laicbench",
        description="Benchmark harness for language-assisted image clustering.",
    )
    parser.add_argument("--version", action="version", version=f"laicbench {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    selection = _Parser(add_help=False)
    selection.add_argument(
        "--methods", help="comma-separated method names, or 'all' (default: all)"
    )
    selection.add_argument(
        "--datasets",
        help="comma-separated dataset names, or 'all' for the eight benchmarks (default: demo)",
    )
    selection.add_argument("--seeds", help="seeds as N, N-M or a comma list (default: 0-2)")
    selection.add_argument(
        "--backbone",
        help="open_clip ARCH:PRETRAINED or tiny-random (default: ViT-B-32:openai; "
        "simulated datasets use their own)",
    )
    selection.add_argument(
        "--results-dir", help=f"where records go (default: {DEFAULT_RESULTS_DIR})"
    )
    selection.add_argument("--config", help="a TOML file with the same fields; flags override it")
    selection.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="METHOD.PARAM=V1,V2",
        help="sweep a hyperparameter (repeatable; points multiply); each point is its own run",
    )

    run = sub.add_parser(
        "run",
        parents=[plugins, data, selection],
        help="run methods x datasets x seeds and store one record per run",
        description="Run methods x datasets x seeds. With no arguments: every method on the demo "
        "benchmark with seeds 0-2. Finished runs are skipped (resume is the default).",
    )
    run.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    run.add_argument(
        "--overwrite", action="store_true", default=None, help="rerun runs that have a record"
    )
    run.add_argument("--dry-run", action="store_true", help="print the runs without running them")
    run.add_argument(
        "--executor",
        choices=["ray", "local"],
        help="ray (default; $LAICBENCH_EXECUTOR overrides): runs in parallel as Ray Tune trials; "
        "local: one after another in this process, for debugging",
    )
    run.add_argument(
        "--address",
        help="attach to a Ray cluster (auto or HOST:PORT) started with ray start --head",
    )
    run.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (default: all)")
    run.add_argument("--num-gpus", type=int, help="GPUs of a local Ray (default: all visible)")

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
        help="list registered methods or datasets",
        description="List registered plugins with a one-line description and where each is "
        "defined.",
    )
    lst.add_argument("kind", choices=["methods", "datasets"])

    from laicbench.cli import data as cli_data

    cli_data.add_commands(sub, plugins, data)
    from laicbench.cli import bench as cli_bench

    cli_bench.add_commands(sub)
    from laicbench.cli import report as cli_report

    cli_report.add_commands(sub, plugins)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``laicbench`` console script; returns the exit status."""
    # piped output (logs, CI) gets room for whole tables instead of rich's 80-column fallback
    out = Console() if sys.stdout.isatty() else Console(width=200)
    err = Console(stderr=True)
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
            argv = ["run", *argv]  # `laicbench [run options]` is `laicbench run [run options]`
        parser = build_parser()
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            raise _unrecognized(parser, args, unknown)
        for folder in getattr(args, "include_path", []):
            registry.load_plugin_folder(folder)
        if args.command == "list":
            return cmd_list(args.kind, out)
        if args.command == "run":
            return cmd_run(args, out, err)
        if args.command == "status":
            return cmd_status(args, out)
        if args.command == "bench":
            from laicbench.cli import bench as cli_bench

            return cli_bench.dispatch(args, out)
        if args.command == "report":
            from laicbench.cli import report as cli_report

            return cli_report.dispatch(args, out)
        from laicbench.cli import data as cli_data

        return cli_data.dispatch(args, out, err)
    except UserError as exc:
        print(f"laicbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def cmd_list(kind: str, out: Console) -> int:
    """Print the registered methods or datasets."""
    reg = registry.methods if kind == "methods" else registry.datasets
    table = Table(title=f"laicbench {kind}", show_lines=False)
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("aliases")
    table.add_column("description")
    table.add_column("defined in", overflow="fold")
    for entry in reg.entries():
        table.add_row(
            entry.name,
            ", ".join(entry.aliases),
            escape(entry.description),
            escape(f"{entry.defined_in} ({entry.origin})"),
        )
    out.print(table)
    return EXIT_OK


def _sweep_config(args: argparse.Namespace):
    config = load_config(args.config)
    if args.methods is not None:
        config.methods = split_list(args.methods)
    if args.datasets is not None:
        config.datasets = split_list(args.datasets)
    for name in ("seeds", "backbone", "results_dir", "device", "overwrite", "executor"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(config, name, value)
    for item in getattr(args, "grid", []):
        key, sep, values = item.partition("=")
        if not sep:
            raise UserError(f"--grid {item}: expected METHOD.PARAM=V1,V2,...")
        config.grid[key.strip()] = values
    if config.executor not in ("ray", "local"):
        raise UserError(f"executor {config.executor!r}: expected ray or local")
    return config


def data_settings(args: argparse.Namespace) -> DataSettings:
    """DataSettings from the data flags (defaults for those not given)."""
    given = {
        "data_root": args.data_root,
        "download": args.download,
        "cache_dir": args.cache_dir,
        "precision": args.precision,
        "vocabulary": args.vocabulary,
        "batch_size": args.batch_size,
        "num_workers": args.workers,
    }
    if given["batch_size"] is not None and given["batch_size"] < 1:
        raise UserError("--batch-size must be at least 1")
    if given["num_workers"] is not None and given["num_workers"] < 0:
        raise UserError("--workers must be 0 (load in the main process) or more")
    return DataSettings(**{k: v for k, v in given.items() if v is not None})


def cmd_run(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Expand, plan and execute a sweep; print the summary and the results table."""
    from laicbench.run.plan import (
        InputFingerprints,
        check_datasets,
        expand,
        plan,
        prepare_features,
        run_local,
    )
    from laicbench.run.provenance import resolve_device

    config = _sweep_config(args)
    specs = expand(config)
    remote_ray = config.executor == "ray" and args.address
    # the driver only extracts features; with a remote cluster the trials' GPUs are the cluster's
    device = resolve_device("auto" if remote_ray and config.device != "cpu" else config.device)
    settings = data_settings(args)
    store = ResultStore(config.results_dir)
    sweep = plan(specs, store, config.overwrite, InputFingerprints(device, settings))
    if args.dry_run:
        _print_dry_run(specs, sweep, out)
        return EXIT_OK
    store.check_writable()
    if sweep.todo:
        from laicbench.data.cache import default_cache_dir
        from laicbench.files import check_writable_dir

        check_writable_dir(settings.cache_dir or default_cache_dir(), "--cache-dir")
    if settings.vocabulary is not None:
        from laicbench.data.vocab import load_vocabulary

        load_vocabulary(settings.vocabulary)  # one line naming the file when it cannot be read
    check_datasets(sweep.todo, settings)
    # every executor: backbones and features are obtained before the first run, so unobtainable
    # weights or an unknown architecture stop the sweep with one line instead of error records
    prepare_features(sweep.todo, device, settings)
    use_ray = config.executor == "ray" and bool(sweep.todo)
    if use_ray:  # Ray's own problems (resources no node has, storage) before the progress bar
        from laicbench.run.executors.ray import prepare_cluster

        prepare_cluster(
            sweep.todo, store, settings, args.address, args.num_cpus, args.num_gpus, config.device
        )

    finished: list[tuple[RunSpec, dict[str, Any]]] = []
    progress = Progress(  # on stderr, so that stdout holds only the summary and the table
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
    try:
        with progress:
            task = progress.add_task("runs", total=len(sweep.todo))

            def on_start(spec: RunSpec) -> None:
                progress.update(task, description=spec.run_id)

            def on_done(spec: RunSpec, record: dict[str, Any]) -> None:
                finished.append((spec, record))
                progress.advance(task)

            if not use_ray:
                run_local(sweep.todo, store, device, settings, on_start=on_start, on_done=on_done)
            else:
                from laicbench.run.executors.ray import run_ray

                progress.update(task, description=f"runs (Ray, {len(sweep.todo)} trials)")
                run_ray(
                    sweep.todo,
                    store,
                    settings,
                    address=args.address,
                    num_cpus=args.num_cpus,
                    num_gpus=args.num_gpus,
                    include_paths=tuple(args.include_path),
                    device=config.device,
                    on_done=on_done,
                )
            progress.update(task, description="runs")
    except OSError as exc:
        raise UserError(f"cannot write results in {store.root}: {exc}") from exc
    except KeyboardInterrupt:
        err.print(
            f"[yellow]interrupted[/]: {len(finished)} of {len(sweep.todo)} runs finished and "
            "were stored; rerun the same command to do the rest"
        )
        return EXIT_INTERRUPTED

    failed = [(s, r) for s, r in finished if r["status"] != "ok"]
    out.print(
        f"[bold]{len(finished) - len(failed)} new, {len(sweep.done)} skipped (already done), "
        f"{len(failed)} failed[/] - records in {store.root}"
    )
    for spec, record in failed:
        out.print(
            f"[red]{record['status']}[/] {spec.run_id}: {record['error']['type']}: "
            f"{record['error']['message'].splitlines()[0] if record['error']['message'] else ''}"
        )
    _print_results_table([r for _, r in sweep.done] + [r for _, r in finished], out)
    out.print(
        f"regenerate the report: laicbench report --results-dir {store.root}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return EXIT_FAILED_RUNS if failed else EXIT_OK


def cmd_status(args: argparse.Namespace, out: Console) -> int:
    """Print done / failed / outdated / damaged / missing counts per method x dataset, and why
    runs are outdated, failed or damaged."""
    from collections import Counter

    from laicbench.run.plan import InputFingerprints, expand, stored_state
    from laicbench.run.provenance import resolve_device

    config = _sweep_config(args)
    store = ResultStore(config.results_dir)
    fingerprints = InputFingerprints(resolve_device(config.device), data_settings(args))
    counts: dict[tuple[str, str], dict[str, int]] = {}
    reasons: Counter[str] = Counter()
    states = ("done", "failed", "outdated", "damaged", "missing")
    for spec in expand(config):
        cell = counts.setdefault((spec.method, spec.dataset), dict.fromkeys(states, 0))
        state, why, _ = stored_state(spec, store, fingerprints)
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


def _print_dry_run(specs: list[RunSpec], sweep, out: Console) -> None:
    done = {spec.run_id for spec, _ in sweep.done}
    table = Table(title=f"{len(specs)} runs ({len(sweep.todo)} to run, {len(done)} done)")
    for column in ("method", "dataset", "backbone", "seed", "params", "status"):
        table.add_column(column)
    for spec in specs:
        params = ", ".join(f"{k}={v}" for k, v in spec.params.items())
        status = "done (skip)" if spec.run_id in done else "to run"
        table.add_row(spec.method, spec.dataset, spec.backbone, str(spec.seed), params, status)
    out.print(table)


def _print_results_table(records: list[dict[str, Any]], out: Console) -> None:
    from laicbench.report.summary import METRICS, format_mean_std, mean_std_table, records_frame

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


if __name__ == "__main__":
    sys.exit(main())
