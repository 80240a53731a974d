"""The one-command check of laicbench's GPU path, for a machine with a CUDA GPU.

    .venv/bin/python scripts/device_check.py [--out results/device-check] [--budget-s 480]

In order of importance, each stage within what is left of the budget (8 minutes by default,
sized for one H100-class GPU; a stage cut short says so in the summary):

1. the GPU tests (``tests/test_gpu.py``): every method with a GPU share gives the same labels
   twice on CUDA with the same seed, and CUDA and CPU partitions of demo-10 agree;
2. the demo sweep (the default methods on demo-10, seeds 0-2, local executor) with
   ``--device cuda`` against the same sweep with ``--device cpu``: metrics per method on both,
   the largest metric difference and the lowest ARI between a run's two partitions;
3. ``laicbench bench features --device cuda`` (fp32 and fp16 rows);
4. ``laicbench bench methods --size cifar10 --device cuda`` for every method, those with a
   GPU share first (the long trainings scaled down and extrapolated, as each row says).

Every stage's output goes to a log under ``--out`` (benchmark figures also as JSON); the summary
names the card. Exit status 0 when every stage passed, 1 otherwise, 2 without a GPU (one line,
at once).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Long trainings run scaled down at CIFAR-10 size and are extrapolated to their defaults.
SCALES = [
    "ours.epochs=10",
    "sic.epochs=10",
    "scan.epochs=10",
    "temi.epochs=5",
    "turtle.iterations=600",
]
# The lowest ARI between the CPU and CUDA partitions of one demo run (tests/test_gpu.py's).
MIN_ARI = 0.8


def cuda_card() -> str | None:
    """The name of the first CUDA GPU, or None when torch sees none."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def methods_gpu_first() -> list[str]:
    """Every registered method, those with a GPU share first (the budget may cut the rest)."""
    from laicbench.api import registry

    registry.methods.load_builtins()
    names = [e.name for e in registry.methods.entries()]
    return sorted(names, key=lambda n: registry.methods.get(n).resources.gpus == 0)


def stage(name: str, command: list[str], log: Path, seconds: float) -> tuple[str, float]:
    """Run `command` with its output in `log`, for at most `seconds`; (outcome, seconds)."""
    if seconds < 10:
        return "skipped: the budget is spent", 0.0
    print(f"[device check] {name} (at most {seconds:.0f} s) ...", flush=True)
    start = time.perf_counter()
    with log.open("w") as out:
        try:
            code = subprocess.run(
                command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=seconds
            ).returncode
            outcome = "passed" if code == 0 else f"failed (exit {code}, see {log})"
        except subprocess.TimeoutExpired:
            outcome = f"cut short after {seconds:.0f} s (partial output in {log})"
    return outcome, time.perf_counter() - start


def demo_sweep(device: str, results: Path) -> list[str]:
    """The command of the demo sweep on `device` into `results`."""
    return [
        str(BIN / "laicbench"),
        "run",
        "--methods", "default",
        "--datasets", "demo",
        "--seeds", "0-2",
        "--executor", "local",
        "--device", device,
        "--results-dir", str(results),
    ]  # fmt: skip


def compare_demo(cpu_dir: Path, cuda_dir: Path) -> tuple[list[str], bool]:
    """Lines comparing the two demo sweeps run by run, and whether they agree (every run ok on
    both devices and every pair of partitions at ARI >= MIN_ARI)."""
    from sklearn.metrics import adjusted_rand_score

    from laicbench.run.records import ResultStore, load_arrays

    def runs(folder: Path) -> dict[str, tuple[object, Path]]:
        store = ResultStore(folder)
        out = {}
        for path in store.record_paths():
            record = json.loads(path.read_text())
            out[path.relative_to(folder).as_posix()] = (record, path)
        return out

    cpu, cuda = runs(cpu_dir), runs(cuda_dir)
    lines, agree = [], bool(cpu) and set(cpu) == set(cuda)
    by_method: dict[str, list[tuple[float, float, float]]] = {}
    for key in sorted(set(cpu) & set(cuda)):
        (a, a_path), (b, b_path) = cpu[key], cuda[key]
        if a["status"] != "ok" or b["status"] != "ok":
            lines.append(f"  {key}: cpu {a['status']}, cuda {b['status']}")
            agree = False
            continue
        ari = adjusted_rand_score(load_arrays(a_path)["y_pred"], load_arrays(b_path)["y_pred"])
        delta = max(abs(a["metrics"][m] - b["metrics"][m]) for m in ("acc", "nmi", "ari"))
        by_method.setdefault(a["method"]["name"], []).append((ari, delta, b["fit_time_s"]))
        agree = agree and ari >= MIN_ARI
    lines.append("  method: lowest partition ARI cpu/cuda, largest |metric difference|, fit s")
    for method, rows in sorted(by_method.items()):
        lowest = min(r[0] for r in rows)
        largest = max(r[1] for r in rows)
        fit = sum(r[2] for r in rows) / len(rows)
        lines.append(f"  {method}: {lowest:.4f}, {largest:.4f}, {fit:.2f}")
    return lines, agree


def main(argv: list[str] | None = None) -> int:
    """Run the device check; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "results" / "device-check"))
    parser.add_argument("--budget-s", type=float, default=480.0, help="default 480 (8 min)")
    args = parser.parse_args(argv)
    card = cuda_card()
    if card is None:
        print(
            "device check: no CUDA GPU is visible to torch; run it on a machine with one",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + args.budget_s

    def left() -> float:
        return deadline - time.perf_counter()

    summary = [f"device check on {card} ({time.strftime('%Y-%m-%d')}), logs in {out}"]
    ok = True

    def record(name: str, result: tuple[str, float]) -> None:
        nonlocal ok
        outcome, seconds = result
        ok = ok and outcome == "passed"
        summary.append(f"{name}: {outcome} in {seconds:.0f} s")

    pytest = [str(BIN / "pytest"), "-q", "-m", "gpu", "tests/test_gpu.py"]
    record("GPU tests", stage("GPU tests", pytest, out / "gpu-tests.log", min(left(), 120)))

    demo = {d: out / f"demo-{d}" for d in ("cuda", "cpu")}
    for device, folder in demo.items():
        command = [*demo_sweep(device, folder), "--overwrite"]
        log = out / f"demo-{device}.log"
        name = f"demo sweep on {device}"
        record(name, stage(name, command, log, min(left(), 45)))
    lines, agree = compare_demo(demo["cpu"], demo["cuda"])
    ok = ok and agree
    summary.append(f"demo, CUDA against CPU ({'agree' if agree else 'DIFFER'}):")
    summary.extend(lines)

    laicbench = str(BIN / "laicbench")
    for precision in ("fp32", "fp16"):
        command = [laicbench, "bench", "features", "--device", "cuda", "--precision", precision]
        command += ["--out", str(out / f"bench-features-{precision}.json")]
        name = f"bench features {precision}"
        record(name, stage(name, command, out / f"bench-features-{precision}.log", min(left(), 30)))

    command = [laicbench, "bench", "methods", "--size", "cifar10", "--device", "cuda"]
    command += ["--methods", ",".join(methods_gpu_first())]
    command += [f"--scale={s}" for s in SCALES]
    command += ["--out", str(out / "bench-methods.json")]
    name = "bench methods --size cifar10 --device cuda"
    record(name, stage(name, command, out / "bench-methods.log", left() - 5))

    text = "\n".join(summary)
    (out / "summary.txt").write_text(text + "\n")
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
