"""PGD: a white-box, untargeted L-infinity attack on the image tower (Madry et al., ICLR 2018).

Each image starts at a uniform random point of the eps-ball around it (seeded per sample), then
takes `steps` signed-gradient steps of size `step_size` that lower the cosine similarity between
its embedding and its clean embedding, each followed by the projection onto the eps-ball and
onto [0, 1]. It uses no labels: the clean embedding is the only reference, so the attack pushes
each image away from where CLIP put it. The random start matters: at the clean image the cosine
is at its maximum, where its gradient vanishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from laicbench.api.errors import UserError
from laicbench.api.params import AT_LEAST_ONE, Interval
from laicbench.data.attacks.base import Attack, sample_generator
from laicbench.data.extract import autocast_context

EPS = 8 / 255
STEP_SIZE = 2 / 255
SEED_RANGE = Interval(0, 2**31 - 1)


@dataclass
class PGD(Attack):
    """Projected gradient descent in pixel space, against the clean embedding."""

    eps: float = EPS
    """L-infinity radius in [0, 1] pixel units (8/255 by default)."""
    steps: int = 10
    """Gradient steps."""
    step_size: float = STEP_SIZE
    """Size of each signed-gradient step in pixel units (2/255 by default)."""
    random_start: bool = True
    """Start from a uniform random point of the eps-ball (without it the first gradient is zero
    at the clean image)."""
    seed: int = 0
    """Seed of the random starts (each sample's own generator: the result depends on neither
    the batch size nor the device)."""

    param_constraints: ClassVar = {
        "eps": Interval(0, 1, open_low=True),
        "steps": AT_LEAST_ONE,
        "step_size": Interval(0, 1, open_low=True),
        "seed": SEED_RANGE,
    }

    def check(self) -> None:
        """The steps must be able to reach the budget's edge and not wildly overshoot it."""
        if self.step_size > self.eps:
            raise UserError(
                f"--attack pgd: step_size={self.step_size:.4g} is larger than eps={self.eps:.4g}"
            )

    def perturb(self, pixels: torch.Tensor, first: int) -> torch.Tensor:
        """`pixels` after PGD: within `eps` of them (L-infinity) and in [0, 1]."""
        ctx = self.context
        clean = pixels.detach().float()
        with torch.no_grad(), autocast_context(ctx.device, ctx.precision):
            reference = ctx.model.encode_image(ctx.normalize(clean))
        reference = F.normalize(reference.float(), dim=-1)
        adv = clean.clone()
        if self.random_start:
            noise = torch.stack(
                [
                    torch.rand(clean.shape[1:], generator=sample_generator(self.seed, first + i))
                    for i in range(len(clean))
                ]
            )
            adv = (clean + (2 * noise.to(clean.device) - 1) * self.eps).clamp(0, 1)
        for _ in range(self.steps):
            adv.requires_grad_(True)
            with torch.enable_grad(), autocast_context(ctx.device, ctx.precision):
                embedding = ctx.model.encode_image(ctx.normalize(adv))
                similarity = F.cosine_similarity(embedding.float(), reference, dim=-1).sum()
            (grad,) = torch.autograd.grad(similarity, adv)
            with torch.no_grad():
                adv = adv - self.step_size * grad.sign()
                adv = torch.minimum(torch.maximum(adv, clean - self.eps), clean + self.eps)
                adv = adv.clamp(0, 1)
        return adv.detach()
