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

from laicbench.data.text_encoder import TextEncoder


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
    batch_size: int | None,
    tau_p: float,
    balance_weight: float = 0.0,
    generator: torch.Generator | None = None,
    chunk: int = 65536,
) -> list[float]:
    """Train `learner`'s context vectors on L2-normalised images `x` (n, d) with target clusters
    `y` (n,): cross-entropy of <x, center> / `tau_p` plus `balance_weight` times the negative
    entropy of the mean prediction, with a cosine learning-rate schedule over all steps. With
    `batch_size` None every step takes the gradient of all n images (one step per epoch); else
    shuffled mini-batches of `batch_size`. Returns the mean loss of each epoch.

    A step runs the K prompts through the text tower once, forward and backward, whatever the
    number of images: the image side is computed in chunks of `chunk` rows against detached
    centers, and the centers' gradient is then sent back through the tower once. This is the
    same gradient as back-propagating the whole loss (a test checks it) in bounded memory. The
    losses are summed on the device and read once at the end (no host synchronisation per step).
    """
    batch = len(x) if batch_size is None else min(batch_size, len(x))
    steps_per_epoch = math.ceil(len(x) / batch)
    total = max(1, epochs * steps_per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    )
    epoch_losses = torch.zeros(epochs, device=x.device)
    for epoch in range(epochs):
        order = None if batch == len(x) else torch.randperm(len(x), generator=generator)
        for step in range(steps_per_epoch):
            if order is None:
                xb, yb = x, y
            else:
                idx = order[step * batch : (step + 1) * batch].to(x.device)
                xb, yb = x[idx], y[idx]
            centers = learner()
            detached = centers.detach().requires_grad_()
            loss = image_side_backward(xb, yb, detached, tau_p, balance_weight, chunk)
            optimiser.zero_grad()
            centers.backward(detached.grad)
            optimiser.step()
            schedule.step()
            epoch_losses[epoch] += loss
    return (epoch_losses / steps_per_epoch).tolist()


def image_side_backward(
    x: torch.Tensor,
    y: torch.Tensor,
    centers: torch.Tensor,
    tau_p: float,
    balance_weight: float,
    chunk: int,
) -> torch.Tensor:
    """Accumulate into ``centers.grad`` the gradient of the loss of `train_prompts` over all of
    `x`, chunk by chunk; return the loss (a detached scalar). The balance term depends on the
    mean prediction over all rows, so it is linearised around that mean (computed first): the
    gradient of sum_k m_k log m_k is sum_k (log m_k + 1) dm_k, which splits over chunks."""
    n = len(x)
    chunks = range(0, n, chunk)
    if balance_weight:
        with torch.no_grad():
            mean = sum(
                (x[i : i + chunk] @ centers.T / tau_p).softmax(dim=1).sum(dim=0) for i in chunks
            )
            mean = mean / n
            weights = mean.clamp_min(1e-9).log() + 1
    loss = torch.zeros((), device=x.device)
    for i in chunks:
        logits = x[i : i + chunk] @ centers.T / tau_p
        part = F.cross_entropy(logits, y[i : i + chunk], reduction="sum") / n
        if balance_weight:
            part = part + balance_weight * (logits.softmax(dim=1).sum(dim=0) / n * weights).sum()
        part.backward()
        loss += part.detach()
    if balance_weight:  # report the loss itself, not the linearised surrogate
        entropy_term = (mean * mean.clamp_min(1e-9).log()).sum() - (mean * weights).sum()
        loss += balance_weight * entropy_term
    return loss
