"""Wall time and peak memory of the methods on synthetic features (``laicbench bench methods``).

``cifar10`` size: 50,000 train / 10,000 test 512-d features in K = 10 clusters, the 146,347-noun
bank, every selected method run end to end (optionally with one parameter scaled down, the time
extrapolated linearly to its default), followed by the steps the method declares for this size.
``imagenet`` size: 1,281,167 x 512 train, 50,000 test, K = 1,000, k_s = 4,271: the steps that
dominate each method, as the method declares them (``Method.bench_steps``: shared primitives
from ``laicbench.api.bench``, its own steps from its plugin), are timed at full size on a measured
slice and extrapolated, with the factor stated. Each measurement runs in a fresh process, so its
peak resident memory is its own.

A method runs where sweeps run it (``Resources.device_for``): with ``--device cuda`` the methods
with a GPU share and their steps run on the GPU, the others on the CPU. On a GPU a step is
preceded by a warm-up (CUDA's context, cuBLAS and the common kernels load outside the timer, so
one-off start-up costs are not extrapolated), timed with the GPU synchronised (``timed``), and
its peak GPU memory is measured (reset before the step).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from laicbench.api.bench import N_NOUNS, SIZES, synthetic, timed


@dataclass
class Measurement:
    """One timed step: seconds measured, estimated full-size seconds, peak RSS (MiB), how, the
    device it ran on and, on a GPU, its peak GPU memory (MiB)."""

    name: str
    measured_s: float
    estimated_s: float
    peak_rss_mb: float
    note: str = ""
    device: str = "cpu"
    peak_gpu_mb: float | None = None


@dataclass
class DeviceJob:
    """A benchmark job and the device it runs on (its method's, by the sweeps' rule)."""

    job: Callable[[], tuple[float, float, str]]
    device: str

    def __call__(self) -> tuple[float, float, str]:
        return self.job()


def warm_up(device: str) -> None:
    """Pay CUDA's one-off costs on `device` before a timed step: the context, cuBLAS's handle
    and the kernels most steps use (matrix products, softmax, reductions, top-k, sorting,
    scattering, sampling)."""
    import torch

    x = torch.randn(512, 512, device=device)
    y = torch.softmax(x @ x.T, dim=1)
    y.topk(8, dim=1)
    y.argmax(dim=1).sort()
    torch.zeros_like(y).scatter_(1, y.argmax(dim=1, keepdim=True), 1.0).sum(dim=0)
    torch.multinomial(y[0], 4, replacement=True)
    torch.cuda.synchronize(device)


def run_job(fn: Callable[[], tuple[float, float, str]]) -> tuple[float, float, str, float | None]:
    """(seconds measured, seconds estimated, how, peak GPU MiB or None) of `fn`; a job on a GPU
    (a ``DeviceJob``) is warmed up first and its peak GPU memory counted from just before it."""
    device = getattr(fn, "device", "cpu")
    if not device.startswith("cuda"):
        return (*fn(), None)
    import torch

    warm_up(device)
    torch.cuda.reset_peak_memory_stats(device)
    measured, estimated, note = fn()
    return measured, estimated, note, torch.cuda.max_memory_allocated(device) / 2**20


def _child(conn, fn: Callable[[], tuple[float, float, str]]) -> None:
    import resource

    try:
        measured, estimated, note, peak_gpu = run_job(fn)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.send((measured, estimated, note, peak, peak_gpu, None))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        conn.send((0.0, 0.0, "", 0.0, None, repr(exc)))


def measure(name: str, fn: Callable[[], tuple[float, float, str]]) -> Measurement:
    """Run `fn` in a fresh process (``run_job``); it returns (seconds measured, seconds
    estimated at full size, how the estimate was made). Adds the process's peak resident memory
    and, for a job on a GPU, its device and peak GPU memory."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(child, fn), daemon=True)  # dies with the parent
    proc.start()
    measured, estimated, note, peak, peak_gpu, error = parent.recv()
    proc.join()
    device = getattr(fn, "device", "cpu")
    note = f"failed: {error}" if error else note
    return Measurement(name, measured, estimated, peak, note, device, peak_gpu)


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


def scaled_default(cls: type, param: str) -> Any:
    """The value parameter `param` of method class `cls` takes in a CIFAR-10-size bench run at
    its defaults (a per-dataset setting or a fallback where the default is None; None for a
    name that is not a parameter): what --scale extrapolates to."""
    if param not in cls.param_names():
        return None
    size = SIZES["cifar10"]
    value = cls.value_in_run(param, size["dataset"], size["n_train"], size["k"])
    if value is None:
        value = _training_config(cls, size).get(param)
    return value


def _training_config(cls: type, size: dict[str, Any]) -> dict[str, Any]:
    """The run's training settings where a method resolves them by a rule of its own in a
    ``training_config`` method (SAC's epochs by K, TAC's by dataset); {} without one."""
    import inspect

    config = getattr(cls, "training_config", None)
    if config is None:
        return {}
    args = {"dataset": size["dataset"], "n_train": size["n_train"], "n_clusters": size["k"]}
    accepted = inspect.signature(config).parameters
    return config(cls(), **{name: value for name, value in args.items() if name in accepted})


def cifar10_jobs(
    methods: list[str], device: str, scaled: dict[str, tuple[str, Any]] | None = None
) -> list[tuple[str, Callable]]:
    """End-to-end jobs per method at CIFAR-10 size, each followed by the steps the method
    declares for this size (``Method.bench_steps``), as (label, ``DeviceJob``): each on the
    device a sweep on `device` runs its method on (``Resources.device_for``). `scaled` maps a
    method to (parameter, value): that method runs with the value, its time extrapolated
    linearly to its default."""
    from laicbench.api import registry

    jobs: list[tuple[str, Callable]] = []
    for name in methods:
        cls = registry.methods.get(name)
        run_device = cls.resources.device_for(device)
        params: dict[str, Any] = {}
        factor = 1.0
        if name in (scaled or {}):
            param, value = scaled[name]
            default = scaled_default(cls, param)
            params = {param: value}
            factor = default / value
        jobs.append((name, DeviceJob(_RunMethod(name, run_device, params, factor), run_device)))
        steps = cls.bench_steps("cifar10", run_device)
        jobs.extend((label, DeviceJob(job, run_device)) for label, job in steps)
    return jobs


def imagenet_jobs(methods: list[str], device: str) -> list[tuple[str, Callable]]:
    """The dominant steps of `methods` at ImageNet-1K size (``Method.bench_steps``), as (label,
    ``DeviceJob``) on the device a sweep on `device` runs each method on, each step once per
    device (steps that several methods share are listed once, in the order first declared)."""
    from laicbench.api import registry

    jobs: dict[tuple[str, str], Callable] = {}
    for name in methods:
        run_device = registry.methods.get(name).resources.device_for(device)
        for label, job in registry.methods.get(name).bench_steps("imagenet", run_device):
            jobs.setdefault((label, run_device), DeviceJob(job, run_device))
    return [(label, job) for (label, _), job in jobs.items()]
