"""``laicbench bench``: measured speed and memory of laicbench's own work."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from laicbench.errors import UserError


def add_commands(sub) -> None:
    """Register ``bench`` and its targets on the `sub` subparsers action."""
    bench = sub.add_parser("bench", help="benchmarks: feature throughput")
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


def dispatch(args: argparse.Namespace, out: Console) -> int:
    """Run the benchmark named by `args.target`."""
    from laicbench.backbone import BackboneSpec, load_backbone
    from laicbench.bench import bench_features
    from laicbench.provenance import resolve_device

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
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0
