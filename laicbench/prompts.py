"""Learnable class-specific prompts through a frozen open_clip text tower (CoOp-style).

Each of the K prompts is [SOT] + L learnable context vectors + [EOT] in the token-embedding
space. Prompt k's context starts as the token embeddings of the last L content tokens of its
initial text (e.g. "a photo of a {noun}."); slots the text cannot fill start as N(0, 0.02^2), as
in CoOp. The text tower stays frozen; gradients reach only the context vectors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from laicbench.text_encoder import TextEncoder


class PromptLearner(nn.Module):
    """K learnable prompts; ``forward()`` returns their L2-normalised text features (K, d)."""

    def __init__(
        self,
        encoder: TextEncoder,
        init_texts: Sequence[str],
        n_ctx: int,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if n_ctx < 1 or n_ctx + 2 > encoder.context_length:
            raise ValueError(f"prompt length {n_ctx} must be in [1, {encoder.context_length - 2}]")
        self.encoder = encoder
        tokens = encoder.tokenize(init_texts)
        eot = tokens.argmax(dim=-1)
        with torch.no_grad():
            embedded = encoder.token_embedding(tokens).float()
        width = embedded.shape[-1]
        ctx = torch.randn(len(init_texts), n_ctx, width, generator=generator) * 0.02
        ctx = ctx.to(embedded.device)
        for k in range(len(init_texts)):
            content = embedded[k, 1 : int(eot[k])][-n_ctx:]
            ctx[k, n_ctx - len(content) :] = content
        self.ctx = nn.Parameter(ctx)
        self.register_buffer("sot", embedded[0, 0].clone())
        self.register_buffer("eot", embedded[0, int(eot[0])].clone())

    def forward(self) -> torch.Tensor:
        """The K prompt features, L2-normalised."""
        k, n_ctx, width = self.ctx.shape
        sequence = torch.cat(
            [self.sot.expand(k, 1, width), self.ctx, self.eot.expand(k, 1, width)], dim=1
        )
        eot_index = torch.full((k,), n_ctx + 1, dtype=torch.long, device=self.ctx.device)
        return F.normalize(self.encoder.encode_embeddings(sequence, eot_index).float(), dim=-1)


def train_prompts(
    learner: PromptLearner,
    optimiser: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    tau_p: float,
    balance_weight: float = 0.0,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Train `learner`'s context vectors on L2-normalised images `x` (n, d) with target clusters
    `y` (n,): cross-entropy of <x, center> / `tau_p` (plus `balance_weight` times the negative
    entropy of the mean prediction), shuffled mini-batches of `batch_size` (at most n), a
    cosine learning-rate schedule over all steps. Returns the mean loss of each epoch.

    The losses are summed on the device and read once at the end: no host synchronisation per
    step, which on a GPU would stall the queue of kernels at every step.
    """
    batch = min(batch_size, len(x))
    steps_per_epoch = math.ceil(len(x) / batch)
    total = max(1, epochs * steps_per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    )
    epoch_losses = torch.zeros(epochs, device=x.device)
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for step in range(steps_per_epoch):
            idx = order[step * batch : (step + 1) * batch]
            logits = x[idx] @ learner().T / tau_p
            loss = F.cross_entropy(logits, y[idx])
            if balance_weight:
                mean = logits.softmax(dim=1).mean(dim=0)
                loss = loss + balance_weight * (mean * mean.clamp_min(1e-9).log()).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            epoch_losses[epoch] += loss.detach()
    return (epoch_losses / steps_per_epoch).tolist()
