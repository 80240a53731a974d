"""Option groups shared by several subcommands, and the SweepConfig that flags describe."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import NoReturn

from laicbench.api.errors import UserError
from laicbench.run.config import (
    DEFAULT_MAX_RUNS,
    DEFAULT_RESULTS_DIR,
    SweepConfig,
    config_value,
    load_config,
)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see '{self.prog} --help')")


def plugin_options() -> argparse.ArgumentParser:
    """--include-path: folders of plugin files."""
    plugins = Parser(add_help=False)
    plugins.add_argument(
        "--include-path",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of plugin files (*.py) registering extra methods or datasets; repeatable",
    )
    return plugins


def data_options() -> argparse.ArgumentParser:
    """The data flags (--data-root, --cache-dir, --precision, ...): the DataSettings fields."""
    data = Parser(add_help=False)
    data.add_argument(
        "--data-root",
        help="folder holding the datasets (default: $LAICBENCH_DATA or ~/.cache/laicbench/data)",
    )
    data.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
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
    return data


def selection_options() -> argparse.ArgumentParser:
    """What a sweep runs and where its records go (--methods, --datasets, --seeds, ...)."""
    selection = Parser(add_help=False)
    selection.add_argument(
        "--methods",
        help="comma-separated method names, 'all', or 'default' (the default: every method not "
        "tagged heavy, see 'laicbench list methods')",
    )
    selection.add_argument(
        "--datasets",
        help="comma-separated dataset names, or 'all' for the eight benchmarks (default: demo)",
    )
    selection.add_argument("--seeds", help="seeds as N, N-M or a comma list (default: 0-2)")
    selection.add_argument(
        "--backbone",
        help="open_clip ARCH:PRETRAINED or tiny-random, or a comma list of them (each is its own "
        "run; default: ViT-B-32:openai; simulated datasets use their own)",
    )
    selection.add_argument(
        "--train-on",
        metavar="DATASET",
        help="shift track: methods that train learn on this dataset's train split and label the "
        "test-only sets' images, as VLM4Cluster runs it (imagenet = imagenet:all: all 1,000 "
        "classes, K = 1,000; imagenet:subset: its images of the set's classes, K = the set's); "
        "default: the set's own images",
    )
    selection.add_argument(
        "--nouns-from",
        choices=("source", "target"),
        help="shift track (with --train-on): where training-free methods that read the noun bank "
        "select their nouns: source (the --train-on dataset's train images, VLM4Cluster's; the "
        "default) or target (the shift set's own images)",
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
    selection.add_argument(
        "--k-factor",
        type=int,
        metavar="F",
        help="over-clustering: ask every method for F x K clusters, scored with many-to-one "
        "accuracy besides the usual metrics (default 1)",
    )
    selection.add_argument(
        "--attack",
        metavar="NAME",
        help="adversarial track: perturb the test images of image datasets before encoding "
        "them: pgd (white-box, L-infinity, against the clean embedding) or anyattack (a "
        "pretrained decoder, --attack-param checkpoint=PATH); default none (clean)",
    )
    selection.add_argument(
        "--attack-param",
        dest="attack_params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter of the attack, e.g. eps=8/255, steps=10, step_size=2/255 (repeatable)",
    )
    selection.add_argument(
        "--max-runs",
        type=int,
        metavar="N",
        help="refuse a sweep of more than N runs before expanding it "
        f"(default {DEFAULT_MAX_RUNS:,})",
    )
    return selection


def execution_options() -> argparse.ArgumentParser:
    """Where and how runs execute (--device, --executor, --address, --num-cpus, --num-gpus)."""
    execution = Parser(add_help=False)
    execution.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    execution.add_argument(
        "--executor",
        choices=["ray", "local"],
        help="ray (default; $LAICBENCH_EXECUTOR overrides): runs in parallel as Ray Tune trials; "
        "local: one after another in this process, for debugging",
    )
    execution.add_argument(
        "--address",
        help="attach to a Ray cluster (auto or HOST:PORT) started with ray start --head",
    )
    execution.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (default: all)")
    execution.add_argument(
        "--num-gpus", type=int, help="GPUs of a local Ray (default: all visible)"
    )
    return execution


def sweep_config(args: argparse.Namespace) -> SweepConfig:
    """The SweepConfig of `args`: the --config file's fields (defaults where absent), each
    replaced by its flag when the flag is given; --grid entries add to the file's grid."""
    config = load_config(getattr(args, "config", None))
    for f in fields(SweepConfig):
        value = getattr(args, f.name, None)
        if f.name in ("grid", "attack_params") or value is None or value == []:
            continue
        setattr(config, f.name, config_value(f.name, value, "--" + f.name.replace("_", "-")))
    for item in getattr(args, "grid", None) or []:
        key, sep, values = item.partition("=")
        if not sep:
            raise UserError(f"--grid {item}: expected METHOD.PARAM=V1,V2,...")
        config.grid[key.strip()] = values
    for item in getattr(args, "attack_params", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--attack-param {item}: expected KEY=VALUE, e.g. eps=8/255")
        config.attack_params[key.strip()] = value.strip()
    config.check()
    return config
