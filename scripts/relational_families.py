"""Run label-free methods on the relational generator families and print a table of test ACC.

    python scripts/relational_families.py                       # every family, seeds 0 and 1
    python scripts/relational_families.py --families nuisance-1.6,no-class-nouns --seeds 0-2 \
        --methods ours-notrain,tac-notrain --params ours-notrain.relation_temperature=0.3

The families are ``laicbench.datasets.relational_families.FAMILIES`` (module docstring: the
model). Methods run in this process on the CPU through the same API a run uses (FeatureBundle,
fit_predict); labels are read only to score. ``ours`` needs a text tower, which these generators
do not have, so it is not offered here (its target is on the demo benchmarks). Prints one row per
family: mean ± std over seeds per method, and the ridge_lambda that ours-notrain chose.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from laicbench.datasets.relational_families import FAMILIES, family

from laicbench.api import registry
from laicbench.api.features import FeatureBundle
from laicbench.cluster.metrics import cluster_accuracy

DEFAULT_METHODS = ("ours-notrain", "tac-notrain", "clip-kmeans")


def parse_seeds(text: str) -> list[int]:
    """'0-2' or '0,3' -> seeds."""
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def parse_params(items: list[str]) -> dict[str, dict[str, object]]:
    """['method.name=value', ...] -> {method: {name: value}} (values as Python literals)."""
    import ast

    out: dict[str, dict[str, object]] = {}
    for item in items:
        key, value = item.split("=", 1)
        method, name = key.split(".", 1)
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        out.setdefault(method, {})[name] = parsed
    return out


def run_one(method: str, params: dict, name: str, seed: int, sizes: dict) -> tuple[float, dict]:
    """(test ACC in %, the method's artefacts) of `method` on family `name` drawn with `seed`."""
    setting = family(name, seed=seed, **sizes)
    data = setting.draw()
    cls = registry.methods.get(method)
    instance = cls(**params)
    bundle = FeatureBundle(data, cls.needs, f"family-{name}", "cpu")
    labels = instance.fit_predict(bundle, setting.n_classes, seed)
    return 100 * cluster_accuracy(data.labels_test, labels), getattr(instance, "artefacts_", {})


def main(argv: list[str] | None = None) -> int:
    """Run the families and print the markdown table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--seeds", default="0-1")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--params", action="append", default=[], help="method.name=value")
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=None)
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    params = parse_params(args.params)
    sizes = {k: v for k, v in (("n_train", args.n_train), ("n_test", args.n_test)) if v}
    seeds = parse_seeds(args.seeds)
    print("| family | " + " | ".join(methods) + " | lambda chosen |")
    print("|---" * (len(methods) + 2) + "|")
    for name in args.families.split(","):
        cells, chosen = [], []
        for method in methods:
            accs = []
            for seed in seeds:
                start = time.perf_counter()
                acc, artefacts = run_one(method, params.get(method, {}), name, seed, sizes)
                accs.append(acc)
                selection = artefacts.get("selection")
                if method == "ours-notrain" and isinstance(selection, dict):
                    chosen.append(f"{selection['chosen']:g}")
                took = time.perf_counter() - start
                print(f"  {name} {method} seed {seed}: {acc:.1f} ({took:.1f}s)", flush=True)
            cells.append(f"{np.mean(accs):.1f} ± {np.std(accs):.1f}")
        print(f"| {name} | " + " | ".join(cells) + f" | {', '.join(chosen) or '-'} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
