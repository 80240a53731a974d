"""``laicbench bench``: measured speed and memory of laicbench's own work."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from laicbench.api.errors import UserError


def add_commands(sub) -> None:
    """Register ``bench`` and its targets on the `sub` subparsers action."""
    bench = sub.add_parser("bench", help="benchmarks: feature throughput, methods, sweeps, tuning")
    targets = bench.add_subparsers(dest="target", metavar="TARGET", required=True)
    features = targets.add_parser(
        "features",
        help="image and text encoding throughput vs the GEMM-bound limit",
        description="Image encoding throughput beside the GEMM-bound limit measured in the same "
        "run, and truncated vs full-context text encoding. Random weights cost the same compute "
        "as trained ones, so the default backbone needs no download.",
    )
    features.add_argument("--backbone", default="ViT-B-32:random", help="default ViT-B-32:random")
    features.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    features.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    features.add_argument("--images", type=int, default=128, help="images to encode (default 128)")
    features.add_argument("--prompts", type=int, default=512, help="distinct prompts (default 512)")
    features.add_argument("--batch-size", type=int, default=64, help="image batch (default 64)")
    features.add_argument("--out", help="also write the figures as JSON to this file")

    methods = targets.add_parser(
        "methods",
        help="wall time and peak memory of each method on synthetic CIFAR-10 / ImageNet-1K size",
        description="CIFAR-10 size: every method end to end on 50k/10k synthetic 512-d features. "
        "ImageNet-1K size: the dominant steps at full size, measured and extrapolated (each row "
        "says how). Every measurement runs in a fresh process (peak RSS is its own).",
    )
    methods.add_argument("--size", choices=["cifar10", "imagenet", "both"], default="both")
    methods.add_argument("--methods", default="all", help="comma list of methods (default all)")
    methods.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    methods.add_argument(
        "--scale",
        action="append",
        default=[],
        metavar="METHOD.PARAM=VALUE",
        help="run METHOD with PARAM=VALUE at CIFAR-10 size and extrapolate its whole time "
        "linearly to the parameter's default (meaningful for a parameter the time is "
        "proportional to, e.g. epochs of a method dominated by training); repeatable",
    )
    methods.add_argument("--out", help="also write the figures as JSON to this file")

    sweep = targets.add_parser(
        "sweep",
        help="the same CPU-bound demo runs with the local executor and with Ray",
        description="Wall time of N CPU-bound demo runs in-process vs as Ray Tune trials, the "
        "speedup and Ray's overhead per trial.",
    )
    sweep.add_argument("--runs", type=int, default=8, help="number of runs (default 8)")
    sweep.add_argument(
        "--seconds", type=float, default=5.5, help="seconds per run (default 5.5: at least 5)"
    )
    sweep.add_argument("--cpus", type=int, help="CPUs for Ray (default: all)")
    sweep.add_argument(
        "--repeats", type=int, default=3, help="local-vs-Ray comparisons, medians reported (3)"
    )
    sweep.add_argument("--out", help="also write the figures as JSON to this file")

    report = targets.add_parser(
        "report",
        help="status and report time on many records (copies of a few real demo runs)",
        description="Make a results dir of N records (each method's first seed run for real on "
        "the demo, its record and predictions copied for the other seeds), then time laicbench "
        "status and laicbench report on it, in this process. The folder is removed afterwards.",
    )
    report.add_argument("--records", type=int, default=5000, help="records (default 5,000)")
    report.add_argument(
        "--cells",
        type=int,
        default=1,
        help="methods the records are spread over, records/cells seeds each (1-5; default 1)",
    )
    report.add_argument("--out", help="also write the figures as JSON to this file")

    tune = targets.add_parser(
        "tune",
        help="Ray Tune's overhead per trial of a tuning search against a plain run",
        description="A budget-N tune (laicbench tune) on a fresh local Ray, then the same "
        "configurations as a plain sweep on the same Ray; then both in-process. The overhead "
        "per trial is the tune's wall time minus the plain runs', over the trials.",
    )
    tune.add_argument("--budget", type=int, default=20, help="trials per method (default 20)")
    tune.add_argument(
        "--methods", default="clip-kmeans,tac-notrain", help="default clip-kmeans,tac-notrain"
    )
    tune.add_argument("--dataset", default="demo-50", help="default demo-50")
    tune.add_argument(
        "--objective",
        default="silhouette",
        help="default silhouette (read from the records: the search's own cost is measured)",
    )
    tune.add_argument("--cpus", type=int, help="CPUs for Ray (default: all)")
    tune.add_argument("--repeats", type=int, default=1, help="comparisons, medians reported (1)")
    tune.add_argument("--out", help="also write the figures as JSON to this file")


def dispatch(args: argparse.Namespace, out: Console) -> int:
    """Run the benchmark named by `args.target`."""
    if args.target == "methods":
        return _methods(args, out)
    if args.target == "sweep":
        return _sweep(args, out)
    if args.target == "tune":
        return _tune(args, out)
    if args.target == "report":
        return _report(args, out)
    return _features(args, out)


def _write(path: str | None, result) -> None:
    if path:
        Path(path).write_text(json.dumps(result, indent=2, default=str) + "\n")


def _methods(args: argparse.Namespace, out: Console) -> int:
    from dataclasses import asdict

    from laicbench.bench.methods import cifar10_jobs, imagenet_jobs, measure
    from laicbench.run.config import split_list
    from laicbench.run.plan import expand_methods
    from laicbench.run.provenance import resolve_device

    device = resolve_device(args.device)
    names = expand_methods(split_list(args.methods))
    scaled = {}
    for item in args.scale:
        method, param, value = _scaled(item, names)
        scaled[method] = (param, value)
    jobs = []
    if args.size in ("cifar10", "both"):
        jobs += [("cifar10", n, j) for n, j in cifar10_jobs(names, device, scaled)]
    if args.size in ("imagenet", "both"):
        jobs += [("imagenet", n, j) for n, j in imagenet_jobs(names, device)]
    table = Table(title=f"methods benchmark on {device}")
    columns = ("size", "method / step", "device", "measured", "estimated", "peak RSS", "peak GPU")
    for column in (*columns, "how"):
        table.add_column(column, overflow="fold")
    results = []
    for size, name, job in jobs:
        m = measure(name, job)
        results.append({"size": size, **asdict(m)})
        gpu = "" if m.peak_gpu_mb is None else f"{m.peak_gpu_mb / 1024:.2f} GiB"
        table.add_row(
            size,
            name,
            m.device,
            f"{m.measured_s:.1f} s",
            _duration(m.estimated_s),
            f"{m.peak_rss_mb / 1024:.2f} GiB",
            gpu,
            m.note,
        )
        out.print(
            f"{size} {name} on {m.device}: {m.measured_s:.1f} s measured, "
            f"{_duration(m.estimated_s)} estimated, peak {m.peak_rss_mb / 1024:.2f} GiB"
            + (f", GPU {gpu}" if gpu else "")
        )
    out.print(table)
    _write(args.out, {"device": device, "results": results})
    return 0


def _scaled(item: str, methods: list[str]) -> tuple[str, str, float]:
    """(method, parameter, value) of a --scale METHOD.PARAM=VALUE; UserError when it is not a
    positive number for a numeric parameter of a benchmarked method."""
    from laicbench.api import registry
    from laicbench.bench.methods import scaled_default

    key, sep, text = item.partition("=")
    method, dot, param = key.partition(".")
    if not sep or not dot:
        raise UserError(f"--scale {item}: expected METHOD.PARAM=VALUE, e.g. ours.epochs=5")
    method = registry.methods.canonical(method.strip())
    if method not in methods:
        raise UserError(f"--scale {item}: method {method!r} is not among --methods")
    default = scaled_default(registry.methods.get(method), param.strip())
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if isinstance(default, bool) or not isinstance(default, (int, float)) or value <= 0:
        raise UserError(f"--scale {item}: expected a positive value of a numeric parameter")
    value = int(value) if isinstance(default, int) and value.is_integer() else value
    return method, param.strip(), value


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _sweep(args: argparse.Namespace, out: Console) -> int:
    from laicbench.bench.sweep import bench_sweep

    if args.runs < 1 or args.seconds <= 0 or args.repeats < 1:
        raise UserError("--runs, --seconds and --repeats must be positive")
    result = bench_sweep(args.runs, args.seconds, args.cpus, args.repeats)
    runs = result["repeats"]
    title = (
        f"sweep benchmark: {result['runs']} runs, {result['cpus']} CPUs, clip-kmeans "
        f"n_init {result['n_init']} (calibrated), {len(runs)} repeats"
    )
    rows = [
        ("local executor wall time", "local_wall_s", "{:.1f} s"),
        ("mean run time, local", "local_mean_run_s", "{:.2f} s"),
        ("Ray start-up (once per sweep)", "ray_start_s", "{:.1f} s"),
        ("Ray wall time (after start-up)", "ray_wall_s", "{:.1f} s"),
        ("mean run time, in a Ray trial", "ray_mean_run_s", "{:.2f} s"),
        ("speedup local / Ray", "speedup", "{:.2f}x"),
        ("speedup counting Ray start-up", "speedup_with_ray_start", "{:.2f}x"),
        ("Tune start-up (until the first trial)", "tune_start_s", "{:.1f} s"),
        ("Ray overhead per trial, all in", "ray_overhead_per_trial_s", "{:.2f} s"),
        (
            "Ray overhead per trial after start-up",
            "ray_overhead_per_trial_after_start_s",
            "{:.2f} s",
        ),
    ]
    table = _repeats_table(title, result, rows)
    table.add_row("same metrics both ways", str(result["median"]["same_metrics"]), "", "")
    out.print(table)
    _write(args.out, result)
    return 0


def _report(args: argparse.Namespace, out: Console) -> int:
    from laicbench.bench.report import BENCH_METHODS, bench_report

    if args.records < 1 or not 1 <= args.cells <= len(BENCH_METHODS):
        raise UserError(f"--records must be positive and --cells 1 to {len(BENCH_METHODS)}")
    result = bench_report(args.records, args.cells)
    table = Table(
        title=f"report benchmark: {result['records']:,} records, {result['cells']} cell(s) of "
        f"{result['seeds_per_cell']:,} seeds"
    )
    table.add_column("measure")
    table.add_column("seconds", justify="right")
    for label, key in [
        ("making the records (not timed against the target)", "make_records_s"),
        ("laicbench status (every run's state)", "status_s"),
        ("laicbench report (tables and figures)", "report_s"),
    ]:
        table.add_row(label, f"{result[key]:.1f}")
    out.print(table)
    _write(args.out, result)
    return 0


def _repeats_table(title: str, result: dict, rows: list[tuple[str, str, str]]) -> Table:
    """A table of (label, key, format) rows: the median, min and max over `result`'s repeats."""
    table = Table(title=title)
    table.add_column("measure")
    for column in ["median", "min", "max"]:
        table.add_column(column, justify="right")
    runs = result["repeats"]
    for label, key, fmt in rows:
        values = [r[key] for r in runs]
        table.add_row(
            label,
            fmt.format(result["median"][key]),
            fmt.format(min(values)),
            fmt.format(max(values)),
        )
    return table


def _tune(args: argparse.Namespace, out: Console) -> int:
    from laicbench.bench.tune import bench_tune
    from laicbench.run.config import split_list
    from laicbench.tune.objectives import get_objective

    if args.budget < 1 or args.repeats < 1:
        raise UserError("--budget and --repeats must be positive")
    objective = get_objective(args.objective).name
    methods = tuple(split_list(args.methods))
    result = bench_tune(args.budget, methods, args.dataset, objective, args.cpus, args.repeats)
    median = result["median"]
    title = (
        f"tune benchmark: budget {result['budget']}, {', '.join(methods)} on "
        f"{result['dataset']}, objective {objective}: {median['trials']:.0f} trials, "
        f"{median['runs']:.0f} distinct runs, {len(result['repeats'])} repeat(s)"
    )
    rows = [
        ("Ray start-up and checks", "ray_start_s", "{:.1f} s"),
        ("tune on Ray (searches)", "tune_ray_s", "{:.1f} s"),
        ("the same runs, plain run on Ray", "run_ray_s", "{:.1f} s"),
        ("tune in-process (searches)", "tune_local_s", "{:.1f} s"),
        ("the same runs, plain run in-process", "run_local_s", "{:.1f} s"),
        (
            "Ray Tune's overhead per trial (vs plain run on Ray)",
            "ray_overhead_per_trial_s",
            "{:.2f} s",
        ),
        (
            "overhead per trial, tune on Ray vs plain run in-process",
            "ray_overhead_per_trial_vs_local_run_s",
            "{:.2f} s",
        ),
        ("in-process search overhead per trial", "local_overhead_per_trial_s", "{:.2f} s"),
    ]
    table = _repeats_table(title, result, rows)
    table.add_row("same choice both ways", str(median["same_choice"]), "", "")
    out.print(table)
    _write(args.out, result)
    return 0


def _features(args: argparse.Namespace, out: Console) -> int:
    from laicbench.api.backbone_spec import BackboneSpec
    from laicbench.bench.features import bench_features
    from laicbench.data.backbone import load_backbone
    from laicbench.run.provenance import resolve_device

    if min(args.images, args.prompts, args.batch_size) < 1:
        raise UserError("--images, --prompts and --batch-size must be positive")
    device = resolve_device(args.device)
    backbone = load_backbone(BackboneSpec.parse(args.backbone), device)
    result = bench_features(
        backbone, device, args.images, args.prompts, args.batch_size, args.precision
    )
    text = result["text"]
    table = Table(title=f"features benchmark: {result['backbone']} on {device} ({args.precision})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("matmul 2048^3", f"{result['gemm_gflop_per_s']:.0f} GFLOP/s"),
        ("image encoder cost", f"{result['image_gflop_per_item']:.2f} GFLOP/image"),
        ("GEMM-bound limit", f"{result['image_gemm_bound_per_s']:.1f} images/s"),
        ("image encoding", f"{result['image_per_s']:.1f} images/s"),
        ("fraction of the limit", f"{100 * result['image_fraction_of_bound']:.0f}%"),
        ("text, full 77-token context", f"{text['full_context_per_s']:.1f} prompts/s"),
        ("text, truncated + length-sorted", f"{text['truncated_per_s']:.1f} prompts/s"),
        ("text speedup", f"{text['speedup']:.1f}x"),
        ("text max abs difference", f"{text['max_abs_diff']:.2e}"),
        ("mean prompt length", f"{text['mean_tokens']:.1f} tokens"),
    ]
    for row in rows:
        table.add_row(*row)
    out.print(table)
    _write(args.out, result)
    return 0
