"""CPU cost, before and after, of the steps of GPU methods that moved to torch (issue 23, section
3), at a small size on one thread: TURTLE's generalization score (scikit-learn's logistic
regression against ``laicbench.cluster.logistic``) and NTK-SC's dense diffusion (NumPy/SciPy
against torch). Here torch runs on the CPU; in a GPU run it runs on the GPU, so the CPU cost
there is the transfers alone. `laicbench bench methods` does not reach these paths at its sizes
(TURTLE's default has no gamma grid; CIFAR-10's 10,000 test images take NTK-SC's sparse path).

    .venv/bin/python scripts/measure_gpu_share_steps.py [--n 5000] [--n-rad 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from laicbench.methods.ntk_sc import kernel_graph, rad, transition
from laicbench.methods.turtle import generalization_score
from sklearn.linear_model import LogisticRegression

from laicbench.api.bench import synthetic
from laicbench.cluster.internal import held_out_predictions


def cpu_seconds(job):
    """(result of `job()`, CPU seconds it took)."""
    start = time.process_time()
    out = job()
    return out, time.process_time() - start


def scikit_learn_score(x: np.ndarray, labels: np.ndarray, folds: int) -> float:
    """TURTLE's generalization score as it was: scikit-learn's logistic regression per fold."""
    accuracies = [
        float(np.mean(labels[held_out] == predicted))
        for held_out, predicted in held_out_predictions(
            x, labels, folds, 0, lambda: LogisticRegression(C=1.0, max_iter=1000)
        )
    ]
    return float(np.mean(accuracies))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="train features of the score")
    parser.add_argument("--n-rad", type=int, default=1000, help="test images of the diffusion")
    args = parser.parse_args()
    torch.set_num_threads(1)

    x, labels = synthetic(args.n, 10, 0)
    rng = np.random.default_rng(1)
    redrawn = np.where(rng.random(args.n) < 0.2, rng.integers(10, size=args.n), labels)
    for name, pseudo in (("learnable labels", labels), ("20% of labels redrawn", redrawn)):
        before, t_before = cpu_seconds(lambda p=pseudo: scikit_learn_score(x, p, 10))
        after, t_after = cpu_seconds(
            lambda p=pseudo: generalization_score(torch.as_tensor(x), p, 10, 0)
        )
        print(
            f"TURTLE generalization score, {args.n} x {x.shape[1]}, K = 10, 10 folds, {name}: "
            f"scikit-learn {before:.4f} in {t_before:.1f} s CPU, torch {after:.4f} in "
            f"{t_after:.1f} s CPU"
        )

    images = synthetic(args.n_rad, 10, 2, noise=1.0)[0]
    nouns = synthetic(50, 10, 3)[0]
    transitions = [transition(kernel_graph(images, nouns, 0.04, 30))] * 7
    params = {"mu": 0.1, "lam": 10.0, "t_outer": 5, "t_diffuse": 8, "ta_cd": 4, "tol": 1e-4}
    (a_numpy, _, info), t_numpy = cpu_seconds(lambda: rad(transitions, **params))
    (a_torch, _, _), t_torch = cpu_seconds(lambda: rad(transitions, **params, device="cpu"))
    print(
        f"NTK-SC dense diffusion, N = {args.n_rad}, 7 templates, {info['steps']} steps: "
        f"NumPy/SciPy {t_numpy:.1f} s CPU, torch {t_torch:.1f} s CPU; largest difference "
        f"{abs(a_numpy - a_torch).max():.1e}"
    )


if __name__ == "__main__":
    main()
