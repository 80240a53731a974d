"""Data commands: ``features`` (pre-warm the cache), ``cache ls|verify|clear``, ``validate``."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from rich.console import Console
from rich.table import Table

from laicbench.api.errors import UserError
from laicbench.data.cache import FeatureCache

EXIT_OK, EXIT_PROBLEMS = 0, 1


def add_commands(sub, plugins: argparse.ArgumentParser, data: argparse.ArgumentParser) -> None:
    """Register the data subcommands on the `sub` subparsers action."""
    features = sub.add_parser(
        "features",
        parents=[plugins, data],
        help="extract and cache features of datasets (pre-warm the cache)",
        description="Extract image features of both splits (and, unless --no-nouns, the WordNet "
        "noun features; with --noun-templates, their per-template features too) of each "
        "dataset into the feature cache.",
    )
    features.add_argument("--datasets", required=True, help="comma-separated dataset names")
    features.add_argument(
        "--backbone", help="ARCH:PRETRAINED or a comma list of them (default ViT-B-32:openai)"
    )
    features.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    features.add_argument("--no-nouns", action="store_true", help="skip the noun features")
    features.add_argument(
        "--noun-templates",
        action="store_true",
        help="also the noun features per prompt template (what ntk-sc reads)",
    )

    cache = sub.add_parser(
        "cache",
        parents=[data],
        help="list, verify or clear the feature cache",
        description="ls: entries with size and status; verify: recompute checksums; clear: "
        "delete entries (all, or the keys given).",
    )
    cache.add_argument("action", choices=["ls", "verify", "clear"])
    cache.add_argument("keys", nargs="*", help="entry keys (clear only; default: all)")

    validate = sub.add_parser(
        "validate",
        parents=[plugins, data],
        help="check datasets on disk: counts and classes",
    )
    validate.add_argument("--datasets", required=True, help="comma-separated dataset names")


def dispatch(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run the data subcommand named by `args.command`."""
    from laicbench.cli.options import sweep_config

    settings = sweep_config(args).data_settings()
    if args.command == "features":
        return cmd_features(args, settings, out)
    if args.command == "cache":
        return cmd_cache(args.action, args.keys, FeatureCache(settings.cache_dir), out)
    return cmd_validate(args, settings, out, err)


def _image_datasets(names: str, settings):
    from laicbench.data.image_dataset import ImageDataset
    from laicbench.data.resolve import resolve_dataset
    from laicbench.run.config import split_list
    from laicbench.run.plan import expand_datasets

    datasets = [resolve_dataset(name, settings) for name in expand_datasets(split_list(names))]
    for ds in datasets:
        if not isinstance(ds, ImageDataset):
            raise UserError(f"dataset {ds.name!r} is not read from image files; nothing to do")
    return datasets


def cmd_features(args: argparse.Namespace, settings, out: Console) -> int:
    """Extract and cache the features of each dataset."""
    from laicbench.api.backbone_spec import DEFAULT_BACKBONE
    from laicbench.run.config import split_list
    from laicbench.run.provenance import resolve_device

    device = resolve_device(args.device)
    backbones = split_list(args.backbone) if args.backbone else [None]
    for ds in _image_datasets(args.datasets, settings):
        for requested in backbones:
            backbone = ds.backbone_for(requested, DEFAULT_BACKBONE)
            data = ds.load(backbone, device, settings)
            if not args.no_nouns:
                _ = data.noun_features
            if args.noun_templates:
                _ = data.noun_template_features
            keys = ", ".join(f"{k}={v}" for k, v in data.info["cache_keys"].items())
            out.print(
                f"{ds.name} ({backbone}): {len(data.labels_train)} train / "
                f"{len(data.labels_test)} test images cached ({keys}) in {data.info['cache_dir']}"
            )
    return EXIT_OK


def cmd_cache(action: str, keys: list[str], cache: FeatureCache, out: Console) -> int:
    """ls, verify or clear the cache."""
    if not cache.root.is_dir():
        why = "not a directory" if cache.root.exists() else "absent"
        raise UserError(
            f"no feature cache at {cache.root} ({why}); give the folder with --cache-dir or "
            "$LAICBENCH_CACHE"
        )
    entries = cache.entries()
    if action == "clear":
        known = {e.key for e in entries}
        for key in keys:
            if key not in known:
                raise UserError(f"no cache entry {key!r} in {cache.root}")
        targets = keys or sorted(known)
        for key in targets:
            cache.remove(key)
        out.print(f"removed {len(targets)} entries from {cache.root}")
        return EXIT_OK
    table = Table(title=f"feature cache {cache.root}")
    for column in ("key", "description", "size", "created", "status"):
        table.add_column(column, overflow="fold")
    bad = 0
    for entry in entries:
        problems = cache.problems(entry.key, checksums=action == "verify")
        bad += bool(problems)
        manifest = entry.manifest if isinstance(entry.manifest, dict) else {}
        created = manifest.get("created_at", "")
        table.add_row(
            entry.key,
            manifest.get("description", ""),
            f"{entry.size_bytes / 2**20:.1f} MiB",
            datetime.fromisoformat(created).strftime("%Y-%m-%d %H:%M") if created else "",
            "; ".join(problems)
            if problems
            else ("ok (checksums)" if action == "verify" else "sizes ok (checksums: cache verify)"),
        )
    out.print(table)
    if action == "verify":
        out.print(f"{len(entries) - bad} intact, {bad} damaged (rebuilt on next use)")
    return EXIT_PROBLEMS if bad and action == "verify" else EXIT_OK


def cmd_validate(args: argparse.Namespace, settings, out: Console, err: Console) -> int:
    """Check counts and class lists of datasets on disk."""
    from laicbench.data.image_dataset import DatasetMissingError

    table = Table(title="datasets")
    for column in ("dataset", "classes", "train", "test", "root"):
        table.add_column(column, overflow="fold")
    failed = 0
    for ds in _image_datasets(args.datasets, settings):
        try:
            report = ds.validate()
        except DatasetMissingError as exc:
            failed += 1
            print(f"{ds.name}: {exc}", file=sys.stderr)
            continue
        table.add_row(
            ds.name,
            str(ds.n_classes),
            str(report["train"]["count"]),
            str(report["test"]["count"]),
            report["root"],
        )
    if table.rows:
        out.print(table)
    return EXIT_PROBLEMS if failed else EXIT_OK
