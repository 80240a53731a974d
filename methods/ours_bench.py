"""The benchmark steps of the 2026 method: one full-batch prompt-learning step split into the
text tower's forward, the image side and the tower's backward (``laicbench bench methods``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from laicbench.api import DIM, SIZES


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


class PromptStepJob:
    """Picklable job: the per-step timing of ``ours``'s prompt learning at `size` (CIFAR-10: K =
    10, 10 steps timed; ImageNet-1K: K = 1,000, 2 steps timed), extrapolated to its defaults."""

    def __init__(self, size: str, device: str):
        self.size, self.device = size, device

    def __call__(self) -> tuple[float, float, str]:
        k, n_train = SIZES[self.size]["k"], SIZES[self.size]["n_train"]
        timing = prompt_step_timing(self.device, k, n_train, 10 if self.size == "cifar10" else 2)
        steps = _ours_steps(n_train)
        if self.size == "cifar10":
            note = f"{timing.describe()}; x {steps:,} steps at the defaults (everything kept)"
        else:
            note = (
                f"{timing.describe()}; all {k:,} prompts through the text tower and all "
                f"{n_train:,} images per step; x {steps:,} steps (ours's default epochs and "
                "batch, everything kept: an upper bound)"
            )
        return timing.seconds, timing.step_s * steps, note
