"""Low-rank adapters (LoRA, Hu et al., ICLR 2022) on the linear layers of a frozen network.

A wrapped layer computes ``W x + b + (alpha / r) B A x``: the base weight W and bias b stay
frozen, A (r x in) starts small and random, B (out x r) starts at zero, so that at creation the
wrapped layer equals the base one and only A and B learn. Written here because neither torch
nor the project's dependencies ship one (peft is not a dependency).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    """`base` (an nn.Linear, frozen) plus a trainable rank-`rank` update scaled by alpha / rank."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        self.base = base
        for parameter in base.parameters():
            parameter.requires_grad_(False)
        self.rank = rank
        self.scaling = alpha / rank
        weight = base.weight
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, dtype=weight.dtype))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, dtype=weight.dtype))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.to(weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """W x + b + (alpha / r) B A x."""
        return self.base(x) + self.scaling * (x @ self.lora_a.T) @ self.lora_b.T


def add_lora(module: nn.Module, rank: int, alpha: float) -> list[nn.Parameter]:
    """Freeze every parameter of `module` and replace, in place, each nn.Linear inside it by a
    LoRALinear, except the output projection of an nn.MultiheadAttention (which reads its
    weights directly, not through forward); returns the adapters' parameters (A, B of each)."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    targets = []
    for parent in module.modules():
        if isinstance(parent, nn.MultiheadAttention | LoRALinear):
            continue
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                targets.append((parent, name, child))
    adapters = []
    for parent, name, child in targets:
        wrapped = LoRALinear(child, rank, alpha)
        setattr(parent, name, wrapped)
        adapters += [wrapped.lora_a, wrapped.lora_b]
    return adapters
