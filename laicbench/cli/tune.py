"""``laicbench tune``: the same label-free search budget for every method, then the default and
the chosen parameters with the evaluation seeds."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from laicbench.api.errors import UserError
from laicbench.cli.options import execution_options, sweep_config
from laicbench.cli.run import EXIT_FAILED_RUNS, EXIT_INTERRUPTED, EXIT_OK, progress_bars
from laicbench.cli.signals import EXIT_TERMINATED, sigterm_as_interrupt
from laicbench.run.config import split_list


def add_commands(sub, plugins, data, selection) -> None:
    """Register ``tune`` on the `sub` subparsers action."""
    from laicbench.tune.objectives import DEFAULT_OBJECTIVE, OBJECTIVES
    from laicbench.tune.study import DEFAULT_BATCH, DEFAULT_BUDGET, DEFAULT_SELECTION_SEEDS

    tune = sub.add_parser(
        "tune",
        parents=[plugins, data, selection, execution_options()],
        help="search every method's hyperparameters with the same label-free budget",
        description="For each method x dataset x backbone, search the method's declared "
        "space (see 'laicbench list methods') with --budget trials (the same for every "
        "method), chosen by a label-free --objective, each trial an ordinary run per selection "
        "seed; then run the default and the chosen parameters with the evaluation seeds "
        "(--seeds, disjoint from the selection seeds). Optuna's TPE, seeded, on Ray Tune or "
        "in-process (--executor local), which choose the same parameters. Finished trials and "
        "runs are reused: rerun the same command to resume. docs/tuning.md has the protocol.",
    )
    tune.add_argument(
        "--budget",
        type=int,
        default=DEFAULT_BUDGET,
        help=f"trials per method x dataset x backbone and objective (default {DEFAULT_BUDGET})",
    )
    tune.add_argument(
        "--objective",
        default=DEFAULT_OBJECTIVE,
        help=f"what the search maximises or minimises, or a comma list (each its own study): "
        f"{', '.join(OBJECTIVES)} (default {DEFAULT_OBJECTIVE}; oracle = test ACC, only to "
        "measure the headroom, never ranked)",
    )
    tune.add_argument(
        "--selection-seeds",
        default=DEFAULT_SELECTION_SEEDS,
        help=f"the seeds every trial runs with; its value is their mean (default "
        f"{DEFAULT_SELECTION_SEEDS}; --seeds are the evaluation seeds, default 0-2)",
    )
    tune.add_argument(
        "--overlap-seeds",
        action="store_true",
        help="allow selection seeds that are also evaluation seeds (refused by default)",
    )
    tune.add_argument(
        "--search",
        choices=["tpe", "random"],
        default="tpe",
        help="tpe (default): Optuna's TPE sampler; random: Optuna's random sampler",
    )
    tune.add_argument("--search-seed", type=int, default=0, help="the sampler's seed (default 0)")
    tune.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        help=f"trials proposed together, run in parallel on Ray; the next batch is proposed "
        f"once all have ended, so the choice does not depend on timing (default {DEFAULT_BATCH})",
    )
    tune.add_argument(
        "--dry-run", action="store_true", help="print the search spaces and the trials only"
    )


def tuning_config(args: argparse.Namespace):
    """The TuningConfig of `args`."""
    from laicbench.tune.tuning import TuningConfig

    sweep = sweep_config(args)
    if sweep.attack not in (None, "none"):
        raise UserError(
            "--attack: tuning runs on clean images; tune, then run the chosen parameters with "
            "laicbench run --attack"
        )
    return TuningConfig(
        sweep=sweep,
        budget=args.budget,
        objectives=split_list(args.objective),
        selection_seeds=args.selection_seeds,
        search=args.search,
        search_seed=args.search_seed,
        batch=args.batch,
        overlap_seeds=args.overlap_seeds,
    )


def cmd_tune(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Plan, check and run the searches, then the evaluation runs; print the summary."""
    from laicbench.tune.tuning import Tuning

    tuning = Tuning(tuning_config(args))
    if args.dry_run:
        _print_dry_run(tuning, out)
        return EXIT_OK
    tuning.check()
    progress = progress_bars(err)
    planned = tuning.planned()
    counted = {"trials": 0, "runs": 0}
    with sigterm_as_interrupt() as guard:
        try:
            with progress:
                task = progress.add_task(
                    f"trials ({tuning.executor.name})", total=len(planned) * tuning.config.budget
                )

                def on_trial(study, trial) -> None:
                    counted["trials"] += 1
                    progress.update(task, description=f"{study.method} {study.objective.name}")
                    progress.advance(task)

                studies = tuning.search(on_trial)
                progress.update(task, description="trials")
                evaluation = tuning.evaluation_sweep(studies)
                evaluation.check()
                guard.install()  # starting Ray put its own SIGTERM handler in place
                runs = progress.add_task(
                    f"evaluation runs ({evaluation.executor.name})", total=len(evaluation.plan.todo)
                )

                def on_done(spec, record) -> None:
                    counted["runs"] += 1
                    progress.advance(runs)

                result = evaluation.execute(on_done=on_done)
        except KeyboardInterrupt:
            err.print(
                f"[yellow]{'terminated' if guard.received else 'interrupted'}[/]: "
                f"{counted['trials']} trials and {counted['runs']} evaluation "
                "runs finished and were stored; rerun the same command to resume"
            )
            return EXIT_TERMINATED if guard.received else EXIT_INTERRUPTED
    _print_summary(tuning, studies, result, out)
    return EXIT_FAILED_RUNS if result.failed else EXIT_OK


def _value(value) -> str:
    """A value for the summary: numbers with 4 significant digits."""
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_summary(tuning, studies, evaluation, out: Console) -> None:
    import numpy as np

    from laicbench.files import short_hash

    acc: dict[tuple[str, str, str, str], list[float]] = {}
    for spec, record in evaluation.skipped + evaluation.finished:
        if record.ok and record.metrics:
            key = (spec.method, spec.dataset, spec.backbone, spec.params_hash)
            acc.setdefault(key, []).append(record.metrics["acc"])

    def mean_acc(study, params) -> str:
        values = acc.get((study.method, study.dataset, study.backbone, short_hash(params)))
        return f"{np.mean(values):.2f}" if values else "-"

    table = Table(title="tuning: chosen parameters, and test ACC over the evaluation seeds")
    for column in ("method", "dataset", "objective", "trials", "runs now", "best", "chosen"):
        table.add_column(column)
    table.add_column("ACC default", justify="right")
    table.add_column("ACC tuned", justify="right")
    for result in studies:
        study, best = result.study, result.best
        chosen = ", ".join(f"{k}={_value(v)}" for k, v in best.sampled.items()) if best else ""
        oracle = "" if study.objective.label_free else " (oracle)"
        table.add_row(
            study.method,
            escape(study.dataset),
            study.objective.name + oracle,
            str(len(result.trials)),
            str(result.executed_runs),
            _value(best.value if best else None),
            escape(chosen or "(no trial succeeded)"),
            mean_acc(study, study.base_params),
            mean_acc(study, best.params) if best else "-",
        )
    out.print(table)
    for cell, reason in tuning.untuned():
        out.print(
            f"{cell.method} on {cell.dataset}: {reason}; default runs only",
            markup=False,
            highlight=False,
        )
    failed = evaluation.failed
    out.print(
        f"evaluation: {len(evaluation.finished) - len(failed)} new, {len(evaluation.skipped)} "
        f"skipped (already done), {len(failed)} failed - records in {evaluation.results_dir}",
        markup=False,
        highlight=False,
    )
    for spec, record in failed:
        message = (record.error or {}).get("message") or ""
        out.print(
            f"{record.status} {spec.run_id}: {message.splitlines()[0] if message else ''}",
            markup=False,
            highlight=False,
        )
    out.print(
        f"regenerate the report: laicbench report --results-dir {evaluation.results_dir}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _print_dry_run(tuning, out: Console) -> None:
    from laicbench.tune.study import read_study_record

    spaces = Table(title="search spaces")
    for column in ("method", "parameter", "range"):
        spaces.add_column(column)
    for cell in {c.method: c for c in tuning.cells}.values():
        reason = cell.untuned_reason()
        if reason:
            spaces.add_row(cell.method, "-", reason)
            continue
        for name, text in cell.declared_space().items():
            spaces.add_row(cell.method, name, escape(text))
    out.print(spaces)
    studies = tuning.planned()
    config = tuning.config
    table = Table(title=f"{len(studies)} studies of {config.budget} trials each")
    for column in ("method", "dataset", "backbone", "objective", "trials", "stored"):
        table.add_column(column)
    for study in studies:
        record = read_study_record(study.record_path(tuning.store.root))
        stored = "-" if record is None else f"{len(record.get('trials', []))} ({record['status']})"
        table.add_row(
            study.method,
            escape(study.dataset),
            study.backbone,
            study.objective.name,
            str(study.budget),
            stored,
        )
    out.print(table)
    n_sel = len(tuning.selection_seeds)
    evaluation_points = len(tuning.cells) + len(studies)
    out.print(
        f"{len(studies)} x {config.budget} trials x {n_sel} selection seed(s) "
        f"({', '.join(map(str, tuning.selection_seeds))}) = at most "
        f"{len(studies) * config.budget * n_sel} selection runs; evaluation: at most "
        f"{evaluation_points * len(tuning.evaluation_seeds)} runs (default and chosen "
        f"parameters, seeds {', '.join(map(str, tuning.evaluation_seeds))}); search "
        f"{config.search}, seed {config.search_seed}, batches of {config.batch}",
        markup=False,
        highlight=False,
    )


def dispatch(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run ``laicbench tune``."""
    return cmd_tune(args, out, err)
