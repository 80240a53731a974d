"""Wall time and peak memory of the methods on synthetic features (``laicbench bench methods``).

``cifar10`` size: 50,000 train / 10,000 test 512-d features in K = 10 clusters, the 146,347-noun
bank, every selected method run end to end (optionally with one parameter scaled down, the time
extrapolated linearly to its default), followed by the steps the method declares for this size.
``imagenet`` size: 1,281,167 x 512 train, 50,000 test, K = 1,000, k_s = 4,271: the steps that
dominate each method, as the method declares them (``Method.bench_steps``: shared primitives from
here, its own steps from its plugin), are timed at full size on a measured slice and
extrapolated, with the factor stated. Each measurement runs in a fresh process, so its peak
resident memory is its own.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

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


@dataclass
class Measurement:
    """One timed step: seconds measured, estimated full-size seconds, peak RSS (MiB), how."""

    name: str
    measured_s: float
    estimated_s: float
    peak_rss_mb: float
    note: str = ""


def _child(conn, fn: Callable[[], tuple[float, float, str]]) -> None:
    import resource

    try:
        measured, estimated, note = fn()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.send((measured, estimated, note, peak, None))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        conn.send((0.0, 0.0, "", 0.0, repr(exc)))


def measure(name: str, fn: Callable[[], tuple[float, float, str]]) -> Measurement:
    """Run `fn` in a fresh process; it returns (seconds measured, seconds estimated at full
    size, how the estimate was made). Adds the process's peak resident memory."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(child, fn), daemon=True)  # dies with the parent
    proc.start()
    measured, estimated, note, peak, error = parent.recv()
    proc.join()
    if error:
        return Measurement(name, measured, estimated, peak, f"failed: {error}")
    return Measurement(name, measured, estimated, peak, note)


def timed(fn: Callable[[], Any]) -> float:
    """Seconds `fn()` takes."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _bundle(size: str, device: str, text_encoder: bool):
    from laicbench.api.features import DatasetFeatures, FeatureBundle, Need
    from laicbench.data.vocab import wordnet_nouns

    cfg = SIZES[size]
    x_train, y_train = synthetic(cfg["n_train"], cfg["k"], 0)
    x_test, y_test = synthetic(cfg["n_test"], cfg["k"], 1)
    nouns, _ = synthetic(N_NOUNS, 4 * cfg["k"], 2)

    def encoder():
        from laicbench.api.backbone_spec import BackboneSpec
        from laicbench.data.backbone import load_backbone

        return load_backbone(BackboneSpec.parse("ViT-B-32:random"), device).text_encoder

    data = DatasetFeatures(
        x_train,
        x_test,
        y_train,
        y_test,
        [f"class {i}" for i in range(cfg["k"])],
        noun_words=list(wordnet_nouns()),
        noun_features_loader=lambda: nouns,
        # each noun the same in TAC's 7 templates: a view, no copy (a cached bank is memory-mapped)
        noun_template_features_loader=lambda: np.broadcast_to(nouns, (7, *nouns.shape)),
        text_encoder_loader=encoder if text_encoder else None,
    )
    return FeatureBundle(data, frozenset(Need), cfg["dataset"], device), cfg["k"]


class _RunMethod:
    """Picklable job: run one method end to end on cifar10-size synthetic features."""

    def __init__(self, method: str, device: str, params: dict[str, Any], factor: float):
        self.method, self.device, self.params, self.factor = method, device, params, factor

    def __call__(self) -> tuple[float, float, str]:
        from laicbench.api import registry

        cls = registry.methods.get(self.method)
        bundle, k = _bundle("cifar10", self.device, text_encoder=True)
        method = cls.from_params(self.params)
        seconds = timed(lambda: method.fit_predict(bundle, k, seed=0))
        note = "end to end" + (
            f" with {self.params}, x {self.factor:g} for the default epochs" if self.params else ""
        )
        return seconds, seconds * self.factor, note


def cifar10_jobs(
    methods: list[str], device: str, scaled: dict[str, tuple[str, Any]] | None = None
) -> list[tuple[str, Callable]]:
    """End-to-end jobs per method at CIFAR-10 size, each followed by the steps the method
    declares for this size (``Method.bench_steps``). `scaled` maps a method to (parameter,
    value): that method runs with the value, its time extrapolated linearly to its default."""
    from laicbench.api import registry

    jobs: list[tuple[str, Callable]] = []
    for name in methods:
        cls = registry.methods.get(name)
        params: dict[str, Any] = {}
        factor = 1.0
        if name in (scaled or {}):
            param, value = scaled[name]
            default = cls().get_params()[param]
            params = {param: value}
            factor = default / value
        jobs.append((name, _RunMethod(name, device, params, factor)))
        jobs.extend(cls.bench_steps("cifar10", device))
    return jobs


class PrimitiveStep:
    """Picklable job: one shared primitive at ImageNet-1K size, timed and extrapolated. Methods
    list the ones they depend on in ``bench_steps("imagenet", device)``."""

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
        from laicbench.cluster.tensors import unit_rows

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
                sums.index_add_(0, (block @ centers.T).argmax(dim=1), block)

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


def imagenet_jobs(methods: list[str], device: str) -> list[tuple[str, Callable]]:
    """The dominant steps of `methods` at ImageNet-1K size (``Method.bench_steps``), each once
    (steps that several methods share are listed once, in the order first declared)."""
    from laicbench.api import registry

    jobs: dict[str, Callable] = {}
    for name in methods:
        for label, job in registry.methods.get(name).bench_steps("imagenet", device):
            jobs.setdefault(label, job)
    return list(jobs.items())
