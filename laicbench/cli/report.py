"""``laicbench report``: tables and figures regenerated from stored records."""

from __future__ import annotations

import argparse

from rich.console import Console

from laicbench.run.config import DEFAULT_RESULTS_DIR, split_list


def add_commands(sub: argparse._SubParsersAction, plugins: argparse.ArgumentParser) -> None:
    """Register ``report`` on the `sub` subparsers action (`plugins`: the --include-path
    option, so that plugin methods' defaults and order are known)."""
    report = sub.add_parser(
        "report",
        parents=[plugins],
        help="tables (Markdown, LaTeX, CSV, Parquet) and figures from stored records",
        description="Regenerate the report of a results dir from its stored records only (no "
        "method is run, no feature computed): the LAIC main table (methods x datasets x "
        "NMI/ACC/ARI, mean ± std over seeds, with the papers' reported numbers where known), "
        "one table of all records, and the figures, linked from index.md. Failed records, "
        "records of an older method version and damaged ones are left out (counted and named "
        "in one warning). Records of methods that are not importable here are reported from "
        "what the records store.",
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


def dispatch(args: argparse.Namespace, out: Console) -> int:
    """Write the report asked for by `args`; print where it went. Returns the exit status."""
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
    )
    drawn = [f for f in report.figures if not f.skipped]
    skipped = [f.name for f in report.figures if f.skipped]
    out.print(
        f"report of {len(report.runs)} runs: {report.out / 'index.md'} "
        f"({len(drawn)} figures" + (f", skipped: {', '.join(skipped)}" if skipped else "") + ")",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return 0
