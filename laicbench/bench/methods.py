"""Wall time and peak memory of the methods on synthetic features (``laicbench bench methods``).

``cifar10`` size: 50,000 train / 10,000 test 512-d features in K = 10 clusters, the 146,347-noun
bank, every registered method run end to end (the prompt learning of ``ours`` for a stated number
of epochs, extrapolated linearly to its default). ``imagenet`` size: 1,281,167 x 512 train,
50,000 test, K = 1,000, k_s = 4,271: the steps that dominate each method are timed at full size
on a measured slice and extrapolated, with the factor stated. Each measurement runs in a fresh
process, so its peak resident memory is its own.
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


def synthetic(n: int, k: int, seed: int, dim: int = DIM) -> tuple[np.ndarray, np.ndarray]:
    """`n` unit vectors around `k` random centers (float32) and their labels."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, dim)).astype(np.float32)
    labels = rng.integers(k, size=n)
    x = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 65536):
        y = labels[start : start + 65536]
        block = centers[y] + 1.5 * rng.standard_normal((len(y), dim)).astype(np.float32)
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


def _timed(fn: Callable[[], Any]) -> float:
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
        seconds = _timed(lambda: method.fit_predict(bundle, k, seed=0))
        note = "end to end" + (
            f" with {self.params}, x {self.factor:g} for the default epochs" if self.params else ""
        )
        return seconds, seconds * self.factor, note


def cifar10_jobs(
    methods: list[str], device: str, ours_epochs: int | None
) -> list[tuple[str, Callable]]:
    """End-to-end jobs per method at CIFAR-10 size, and the per-step timing of ``ours``'s prompt
    learning; with `ours_epochs`, ``ours`` runs that many epochs, extrapolated to its default."""
    from laicbench.api import registry

    jobs: list[tuple[str, Callable]] = []
    for name in methods:
        params: dict[str, Any] = {}
        factor = 1.0
        if name == "ours" and ours_epochs is not None:
            default = registry.methods.get(name)().get_params()["epochs"]
            params = {"epochs": ours_epochs}
            factor = default / ours_epochs  # dominated by prompt learning, linear in epochs
        jobs.append((name, _RunMethod(name, device, params, factor)))
        if name == "ours":
            jobs.append(("ours: prompt-learning step", _PromptStepJob(device)))
    return jobs


class _Step:
    """Picklable job: one dominant step at ImageNet size, timed and extrapolated."""

    def __init__(self, step: str, device: str):
        self.step, self.device = step, device

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
        t_probe = _timed(lambda: spherical_kmeans(x, probe, n_init=1, max_iter=0, **kw))
        t_init = t_probe * k / probe
        points = sample if sample < len(x) else len(x)
        data = unit_rows(x[:points], self.device)
        centers = unit_rows(x[:k], self.device)

        def lloyd_step():  # one assignment of every point and one center update, chunked
            sums = torch.zeros_like(centers)
            for start in range(0, len(data), 16384):
                block = data[start : start + 16384]
                sums.index_add_(0, (block @ centers.T).argmax(dim=1), block)

        t_iter = _timed(lloyd_step)
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

        seconds = _timed(assign)
        return seconds, seconds, "softmax over 4,271 centers for all 146,347 nouns, chunked"

    def _counterparts(self):
        from laicbench.cluster.nouns import text_counterparts

        x = self._train()
        selected, _ = synthetic(21_355, 1000, 3)
        seconds = _timed(lambda: text_counterparts(x, selected, device=self.device))
        return seconds, seconds, "all 1.28M train images against 21,355 selected nouns"

    def _knn(self):
        from laicbench.cluster.knn import cosine_knn

        x = self._train()
        q = 8192
        seconds = _timed(lambda: cosine_knn(x[:q], 50, keys=x, device=self.device))
        factor = len(x) / q
        note = (
            f"50-NN of {q:,} queries against all 1.28M; x {factor:.0f} for all queries, x 2 "
            "spaces for TAC"
        )
        return seconds, seconds * factor * 2, note

    def _tac_heads(self):
        import torch

        from laicbench.methods.tac import ClusterHead, tac_loss

        heads = (ClusterHead(DIM, 1000).to(self.device), ClusterHead(DIM, 1000).to(self.device))
        opt = torch.optim.Adam([p for h in heads for p in h.parameters()], betas=(0.9, 0.99))
        steps = 10

        def train():
            for _ in range(steps):
                batch = tuple(torch.randn(8192, DIM, device=self.device) for _ in range(4))
                loss, _ = tac_loss(heads, batch, 5.0, 5.0)
                opt.zero_grad()
                loss.backward()
                opt.step()

        seconds = _timed(train)
        return seconds, seconds * 15_600 / steps, f"{steps} steps of batch 8,192; x 15,600 steps"

    def _prompt_steps(self):
        k = SIZES["imagenet"]["k"]
        n_train = SIZES["imagenet"]["n_train"]
        timing = prompt_step_timing(self.device, k, n_train, steps=2)
        steps = _ours_steps(n_train)
        note = (
            f"{timing.describe()}; all {k:,} prompts through the text tower and all "
            f"{n_train:,} images per step; x {steps:,} steps (ours's default epochs and "
            "batch, everything kept: an upper bound)"
        )
        return timing.seconds, timing.step_s * steps, note


@dataclass
class PromptStepTiming:
    """Seconds per prompt-learning step and its parts: the text tower's forward, the image side
    (logits and their gradient for every image, chunked) and the tower's backward."""

    seconds: float  # all timed steps
    step_s: float
    forward_s: float
    images_s: float
    backward_s: float
    peak_gpu_gib: float | None = None  # on CUDA

    def describe(self) -> str:
        """'X ms per step (text tower forward a%, image side b%, tower backward c%)'."""
        share = {
            "text tower forward": self.forward_s,
            "image side": self.images_s,
            "tower backward": self.backward_s,
        }
        parts = ", ".join(f"{name} {100 * s / self.step_s:.0f}%" for name, s in share.items())
        gpu = f", peak GPU memory {self.peak_gpu_gib:.1f} GiB" if self.peak_gpu_gib else ""
        return f"{1000 * self.step_s:.0f} ms per step ({parts}){gpu}"


def prompt_step_timing(device: str, k: int, n_images: int, steps: int) -> PromptStepTiming:
    """Time `steps` full-batch prompt-learning steps of ``ours`` (K = `k` prompts through the
    ViT-B-32 text tower, the gradient of `n_images` images) after one warm-up step."""
    import torch

    from laicbench.api.backbone_spec import BackboneSpec
    from laicbench.cluster.prompts import PromptLearner, image_side_backward
    from laicbench.data.backbone import load_backbone

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)

    encoder = load_backbone(BackboneSpec.parse("ViT-B-32:random"), device).text_encoder
    learner = PromptLearner(encoder, [f"a photo of a noun{i}." for i in range(k)], 4)
    opt = torch.optim.SGD([learner.ctx], lr=0.016, momentum=0.9)
    x = torch.nn.functional.normalize(torch.randn(n_images, DIM, device=device), dim=1)
    y = torch.randint(k, (n_images,), device=device)
    parts = [0.0, 0.0, 0.0]
    start = 0.0
    for step in range(steps + 1):  # step 0 warms up
        if step == 1:
            sync()
            start = time.perf_counter()
            parts = [0.0, 0.0, 0.0]
        t0 = time.perf_counter()
        centers = learner()
        sync()
        t1 = time.perf_counter()
        detached = centers.detach().requires_grad_()
        image_side_backward(x, y, detached, tau_p=0.05, balance_weight=0.0, chunk=65536)
        sync()
        t2 = time.perf_counter()
        opt.zero_grad()
        centers.backward(detached.grad)
        sync()
        t3 = time.perf_counter()
        opt.step()
        for i, span in enumerate((t1 - t0, t2 - t1, t3 - t2)):
            parts[i] += span
    sync()
    seconds = time.perf_counter() - start
    gpu = torch.cuda.max_memory_allocated(device) / 2**30 if device.startswith("cuda") else None
    return PromptStepTiming(seconds, seconds / steps, *(p / steps for p in parts), gpu)


def _ours_steps(n_train: int) -> int:
    """Prompt-learning steps of ``ours`` at its defaults on `n_train` images (all kept)."""
    from laicbench.methods.ours import Ours

    params = Ours().get_params()
    batch = min(params["batch_size"] or n_train, n_train)  # None: the full batch
    return params["epochs"] * -(-n_train // batch)


class _PromptStepJob:
    """Picklable job: the per-step timing of ``ours`` at CIFAR-10 size (K = 10)."""

    def __init__(self, device: str):
        self.device = device

    def __call__(self) -> tuple[float, float, str]:
        n_train = SIZES["cifar10"]["n_train"]
        timing = prompt_step_timing(self.device, SIZES["cifar10"]["k"], n_train, 10)
        steps = _ours_steps(n_train)
        note = f"{timing.describe()}; x {steps:,} steps at the defaults (everything kept)"
        return timing.seconds, timing.step_s * steps, note


IMAGENET_STEPS = {
    "tac-notrain / tac / ours: noun-selection k-means": "kmeans_select",
    "tac-notrain / tac / ours: noun assignment": "noun_assignment",
    "tac-notrain / tac: text counterparts": "counterparts",
    "tac / ours: exact k-NN": "knn",
    "tac: cluster-head training": "tac_heads",
    "clip-kmeans / ours: k-means K=1000": "kmeans_pseudo",
    "ours: prompt learning": "prompt_steps",
}


def imagenet_jobs(device: str) -> list[tuple[str, Callable]]:
    """The dominant steps at ImageNet-1K size."""
    return [(name, _Step(step, device)) for name, step in IMAGENET_STEPS.items()]
