"""The vocabulary a method declares its benchmark steps in (``Method.bench_steps``, timed by
``laicbench bench methods``): the benchmark sizes, seeded synthetic features, a timer, and the
shared primitive steps that several methods depend on (noun-selection k-means, noun assignment,
text counterparts, exact k-NN, K = 1,000 k-means), each timed once for all of them.

A step is a (label, job) pair: the job is a picklable callable returning (seconds measured,
seconds estimated at full size, how the estimate was made); it runs in a fresh process. Importing
this module imports neither torch nor the profiler; a job imports what it times when it runs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

BenchJob = Callable[[], tuple[float, float, str]]
BenchStep = tuple[str, BenchJob]

SIZES = {
    "cifar10": {"n_train": 50_000, "n_test": 10_000, "k": 10, "dataset": "cifar10"},
    "imagenet": {"n_train": 1_281_167, "n_test": 50_000, "k": 1000, "dataset": "imagenet"},
}
N_NOUNS = 146_347
DIM = 512
CONNECTED_NOISE = 2.5


def synthetic(
    n: int, k: int, seed: int, dim: int = DIM, noise: float = 1.5
) -> tuple[np.ndarray, np.ndarray]:
    """`n` unit vectors around `k` random centers (float32), each the normalised sum of its
    center and `noise` x standard normal, and their labels. At the default noise 1,000 clusters
    are far apart (a k-NN graph splits into them); ``CONNECTED_NOISE`` joins them into one
    connected graph, as real features are, for the steps whose cost depends on that."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, dim)).astype(np.float32)
    labels = rng.integers(k, size=n)
    x = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 65536):
        y = labels[start : start + 65536]
        block = centers[y] + noise * rng.standard_normal((len(y), dim)).astype(np.float32)
        x[start : start + len(y)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return x, labels


def timed(fn: Callable[[], Any]) -> float:
    """Seconds `fn()` takes, its CUDA work included: once this process uses CUDA, every GPU is
    synchronised before and after (kernels run asynchronously; without it a step's time would
    be the time to launch them)."""
    synchronize_cuda()
    t = time.perf_counter()
    fn()
    synchronize_cuda()
    return time.perf_counter() - t


def synchronize_cuda() -> None:
    """Wait for every GPU's queued work, when this process has used CUDA (nothing otherwise:
    torch is not imported for it)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return
    for index in range(torch.cuda.device_count()):
        torch.cuda.synchronize(index)


class PrimitiveStep:
    """Picklable job: one shared primitive at ImageNet-1K size, timed and extrapolated. Methods
    list the ones they depend on in ``bench_steps("imagenet", device)``; a method's own step may
    subclass it to reuse its timed k-means (``_kmeans``) on the synthetic train split
    (``_train``)."""

    LABELS = {
        "kmeans_select": "noun selection: spherical k-means, k_s = 4,271",
        "noun_assignment": "noun selection: softmax assignment of every noun",
        "counterparts": "text counterparts of every train image",
        "knn": "exact 50-NN of the train images",
        "kmeans_pseudo": "spherical k-means, K = 1,000",
    }

    def __init__(self, step: str, device: str):
        self.step, self.device = step, device

    @classmethod
    def job(cls, step: str, device: str) -> tuple[str, PrimitiveStep]:
        """(label, job) of primitive `step`."""
        return cls.LABELS[step], cls(step, device)

    def __call__(self) -> tuple[float, float, str]:
        return getattr(self, "_" + self.step)()

    @staticmethod
    def _train() -> np.ndarray:
        return synthetic(SIZES["imagenet"]["n_train"], SIZES["imagenet"]["k"], 0)[0]

    def _kmeans(self, x: np.ndarray, k: int, n_init: int, label: str) -> tuple[float, float, str]:
        import torch

        from laicbench.cluster.kmeans import spherical_kmeans
        from laicbench.cluster.tensors import label_sums, unit_rows

        sample = min(len(x), 256 * k)
        kw = dict(seed=0, device=self.device, sample_size=sample if sample < len(x) else None)
        probe = 32  # k-means++ costs the same per center: time 32 centers, scale to k
        t_probe = timed(lambda: spherical_kmeans(x, probe, n_init=1, max_iter=0, **kw))
        t_init = t_probe * k / probe
        points = sample if sample < len(x) else len(x)
        data = unit_rows(x[:points], self.device)
        centers = unit_rows(x[:k], self.device)

        def lloyd_step():  # one assignment of every point and one center update, chunked
            sums = torch.zeros_like(centers)
            for start in range(0, len(data), 16384):
                block = data[start : start + 16384]
                sums += label_sums(block, (block @ centers.T).argmax(dim=1), k)

        t_iter = timed(lloyd_step)
        estimate = n_init * (t_init + 300 * t_iter)
        note = (
            f"{label}: k-means++ init {t_init:.0f} s (32 centers timed, x {k / probe:.0f}) + "
            f"{t_iter:.1f} s per Lloyd iteration on {points:,} points; x {n_init} restarts x "
            "(init + 300 iterations), an upper bound"
        )
        return t_probe + t_iter, estimate, note

    def _kmeans_select(self):
        return self._kmeans(self._train(), 4271, 10, "k_s = 4,271")

    def _kmeans_pseudo(self):
        return self._kmeans(self._train(), 1000, 20, "K = 1,000")

    def _noun_assignment(self):
        import torch

        from laicbench.cluster.nouns import normalise

        nouns, _ = synthetic(N_NOUNS, 4000, 2)
        centers = normalise(synthetic(4271, 4271, 3)[0], self.device)

        def assign():
            for start in range(0, N_NOUNS, 16384):
                block = normalise(nouns[start : start + 16384], self.device)
                torch.softmax(centers @ block.T, dim=0).max(dim=0)

        seconds = timed(assign)
        return seconds, seconds, "softmax over 4,271 centers for all 146,347 nouns, chunked"

    def _counterparts(self):
        from laicbench.cluster.nouns import text_counterparts

        x = self._train()
        selected, _ = synthetic(21_355, 1000, 3)
        seconds = timed(lambda: text_counterparts(x, selected, device=self.device))
        return seconds, seconds, "all 1.28M train images against 21,355 selected nouns"

    def _knn(self):
        from laicbench.cluster.knn import cosine_knn

        x = self._train()
        q = 8192
        seconds = timed(lambda: cosine_knn(x[:q], 50, keys=x, device=self.device))
        factor = len(x) / q
        note = (
            f"50-NN of {q:,} queries against all 1.28M; x {factor:.0f} for all queries, x 2 "
            "spaces for TAC"
        )
        return seconds, seconds * factor * 2, note


class RepeatedStep:
    """Picklable job: a method's own repeated step at ImageNet-1K size, `probe` calls timed after
    one warm-up call and extrapolated to `total` calls. `build(device)` (a module-level function
    of the method's plugin, so that the job pickles) returns the zero-argument step; `what`
    says what one call is."""

    def __init__(
        self,
        build: Callable[[str], Callable[[], Any]],
        device: str,
        total: float,
        what: str,
        probe: int = 10,
    ):
        self.build, self.device, self.total = build, device, total
        self.what, self.probe = what, probe

    def __call__(self) -> tuple[float, float, str]:
        step = self.build(self.device)
        step()  # warm-up: allocations, first-call overheads
        seconds = timed(lambda: [step() for _ in range(self.probe)])
        per_call = seconds / self.probe
        note = f"{self.probe} calls of {self.what} ({per_call:.3g} s each) x {self.total:,.0f}"
        return seconds, per_call * self.total, note
