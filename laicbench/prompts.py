"""Learnable class-specific prompts through a frozen open_clip text tower (CoOp-style).

Each of the K prompts is [SOT] + L learnable context vectors + [EOT] in the token-embedding
space. Prompt k's context starts as the token embeddings of the last L content tokens of its
initial text (e.g. "a photo of a {noun}."); slots the text cannot fill start as N(0, 0.02^2), as
in CoOp. The text tower stays frozen; gradients reach only the context vectors.
"""

from __future__ import annotations

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
