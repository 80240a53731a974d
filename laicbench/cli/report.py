"""``laicbench report``: tables and figures regenerated from stored records."""

from __future__ import annotations

import argparse

from rich.console import Console

from laicbench.run.config import DEFAULT_RESULTS_DIR, split_list


def add_commands(
    sub: argparse._SubParsersAction,
    plugins: argparse.ArgumentParser,
    data: argparse.ArgumentParser,
) -> None:
    """Register ``report`` and ``rescore`` on the `sub` subparsers action (`plugins`: the
    --include-path option, so that plugin methods' defaults and order are known; `data`: the
    data flags, with which rescore finds the features of the runs)."""
    report = sub.add_parser(
        "report",
        parents=[plugins],
        help="tables (Markdown, LaTeX, CSV, Parquet) and figures from stored records",
        description="Regenerate the report of a results dir from its stored records only (no "
        "method is run, no feature computed): the LAIC main table (methods x datasets x "
        "NMI/ACC/ARI, mean ± std over seeds, with the papers' reported numbers where known), "
        "one table of all records, and the figures, linked from index.md. Failed records, "
        "outdated ones (another method version or source, or inputs other than today's, as "
        "'laicbench status' judges them; --allow-outdated keeps them, marked) and damaged ones "
        "are left out (counted and named in one warning). Records of methods that are not "
        "importable here are reported from what the records store.",
    )
    report.add_argument(
        "--results-dir", default=DEFAULT_RESULTS_DIR, metavar="DIR",
        help=f"the records to report (default: {DEFAULT_RESULTS_DIR})",
    )  # fmt: skip
    report.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: the sibling 'report' of a results dir named 'runs', so "
        "results/runs -> results/report; else <results-dir>/report); an earlier report there "
        "is replaced once the new one is complete",
    )
    report.add_argument("--methods", help="comma-separated methods to report (default: all)")
    report.add_argument("--datasets", help="comma-separated datasets to report (default: all)")
    report.add_argument(
        "--confusion",
        metavar="RUN_ID",
        help="run whose confusion matrix is drawn, e.g. ours/demo-10/tiny-random/seed0-<hash> "
        "(default: a run of a method tagged featured, ours, with seed 0 on the first dataset, "
        "else the first run)",
    )
    report.add_argument(
        "--reference",
        metavar="CSV",
        help="reported numbers (method,dataset,nmi,acc,ari,backbone,source); default: "
        "<results-dir>/../reference/reported.csv, else the source checkout's "
        "results/reference/reported.csv; 'none' for no reported rows",
    )
    report.add_argument(
        "--tuned",
        metavar="OBJECTIVE",
        help="the main table's tuned view: each method at the parameters its label-free tuning "
        "study with OBJECTIVE chose (laicbench tune; e.g. generalization); methods without one "
        "keep their defaults, marked *",
    )
    report.add_argument(
        "--allow-outdated",
        action="store_true",
        help="use outdated records too (another method version or source, or inputs other "
        "than today's: a regenerated features file, another precision...), their cells of the "
        "main tables marked §; by default they are left out and counted",
    )
    rescore = sub.add_parser(
        "rescore",
        parents=[plugins, data],
        help="bring stored records to the current metrics from their stored predictions",
        description="Recompute the scores of stored records from their predictions files, "
        "without rerunning any method: the metrics against the labels (ACC, NMI, ARI, AMI, "
        "balanced and many-to-one accuracy), the cluster sizes and, where the run's features "
        "can be loaded (through the feature cache, with the same fingerprint as the run's), "
        "the label-free metrics (silhouette, Davies-Bouldin, Calinski-Harabasz). By default "
        "only records that lack a current score are rewritten.",
    )
    rescore.add_argument(
        "--results-dir", default=DEFAULT_RESULTS_DIR, metavar="DIR",
        help=f"the records to rescore (default: {DEFAULT_RESULTS_DIR})",
    )  # fmt: skip
    rescore.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    rescore.add_argument(
        "--all", action="store_true", help="rescore every ok record, not only outdated ones"
    )


def dispatch(args: argparse.Namespace, out: Console) -> int:
    """Run ``report`` or ``rescore`` as asked by `args`; print what was written. Returns the
    exit status."""
    if args.command == "rescore":
        return _rescore(args, out)
    from laicbench.report.build import build_report

    reference = True
    if args.reference is not None:
        reference = False if args.reference.strip().lower() == "none" else args.reference
    report = build_report(
        args.results_dir,
        out=args.out,
        methods=split_list(args.methods) if args.methods else None,
        datasets=split_list(args.datasets) if args.datasets else None,
        confusion=args.confusion,
        reference=reference,
        tuned=args.tuned,
        allow_outdated=args.allow_outdated,
    )
    drawn = [f for f in report.figures if not f.skipped]
    skipped = [f.name for f in report.figures if f.skipped]
    out.print(
        f"report of {len(report.runs)} runs: {report.out / 'index.md'}, "
        f"{report.out / 'index.html'} "
        f"({len(drawn)} figures" + (f", skipped: {', '.join(skipped)}" if skipped else "") + ")",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return 0


def _rescore(args: argparse.Namespace, out: Console) -> int:
    from rich.progress import Progress

    from laicbench.cli.options import sweep_config
    from laicbench.run.provenance import resolve_device
    from laicbench.run.rescore import rescore

    settings = sweep_config(args).data_settings()
    with Progress(console=out, transient=True) as progress:
        task = progress.add_task("rescoring records", total=None)
        result = rescore(
            args.results_dir,
            settings,
            device=resolve_device(args.device),
            everything=args.all,
            on_record=lambda _: progress.advance(task),
        )
    missing = result.without_internal.items()
    lines = [f"rescored {result.rescored} record(s) in {args.results_dir}"]
    lines += [f"  without label-free metrics: {n} ({why})" for why, n in missing]
    lines += [f"  not rescored: {n} ({why})" for why, n in result.skipped.items()]
    out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
    return 0
