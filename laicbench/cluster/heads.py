"""Cluster heads and the losses of cluster-head training on cached features: TAC's heads and loss
(shared by the methods built on TAC) and TEMI's ensemble of projection heads."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ClusterHead(nn.Module):
    """Linear -> BatchNorm -> ReLU -> Linear -> Softmax, weights trunc_normal(std 0.02).

    The hidden width defaults to the input width, as in TAC's code (512 for ViT-B/32).
    """

    def __init__(self, in_dim: int, n_clusters: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or in_dim
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_clusters),
        )
        for layer in (self.net[0], self.net[3]):
            nn.init.trunc_normal_(layer.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cluster probabilities (B, K)."""
        return torch.softmax(self.net(x), dim=1)


def cluster_contrastive(p: torch.Tensor, q: torch.Tensor, temperature: float) -> torch.Tensor:
    """Contrastive Clustering's cluster-level loss between assignment matrices p, q (B, K).

    Columns are L2-normalised over the batch; column c of p and of q are positives, the other
    2K - 2 columns negatives; the mean over all 2K columns of -log softmax(positive).
    """
    k = p.shape[1]
    c = F.normalize(torch.cat([p.T, q.T], dim=0), dim=1)
    sim = c @ c.T / temperature
    sim = sim.masked_fill(torch.eye(2 * k, dtype=torch.bool, device=sim.device), -math.inf)
    positive = torch.cat([torch.arange(k, 2 * k), torch.arange(k)]).to(sim.device)
    return F.cross_entropy(sim, positive)


def consistency(p_text: torch.Tensor, p_image: torch.Tensor) -> torch.Tensor:
    """-mean log <p_text_i, p_image_i>, with the log clamped at -100 (binary cross-entropy)."""
    dot = (p_text * p_image).sum(dim=1)
    return F.binary_cross_entropy(dot.clamp(0, 1), torch.ones_like(dot))


def batch_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy of the batch-mean assignment (probabilities clamped at 1e-9)."""
    mean = p.mean(dim=0).clamp_min(1e-9)
    return -(mean * mean.log()).sum()


def tac_loss(
    heads: tuple[ClusterHead, ClusterHead],
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    temperature: float,
    entropy_weight: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """TAC's loss on one batch (text, image, text neighbour, image neighbour); returns (loss,
    its parts as detached 0-dim tensors on the loss's device: read them once per epoch)."""
    text_head, image_head = heads
    text, image, text_nb, image_nb = batch
    p_t, p_v = text_head(text), image_head(image)
    p_t_nb, p_v_nb = text_head(text_nb), image_head(image_nb)
    distill = cluster_contrastive(p_v, p_t_nb, temperature) + cluster_contrastive(
        p_t, p_v_nb, temperature
    )
    consist = consistency(p_t, p_v)
    entropy = batch_entropy(p_t) + batch_entropy(p_v)
    loss = distill + consist - entropy_weight * entropy
    parts = {"distill": distill, "consistency": consist, "entropy": entropy}
    parts = {key: value.detach() for key, value in parts.items()}
    return loss, parts


class MultiHead(nn.Module):
    """An ensemble of `n_heads` projection heads (DINO's and TEMI's): Linear(d, hidden) - GELU -
    Linear(hidden, bottleneck), L2-normalised, then a weight-normalised Linear(bottleneck, K)
    without bias whose gains start at 1. Weights trunc_normal(std 0.02), biases zero."""

    def __init__(self, in_dim: int, n_clusters: int, n_heads: int, hidden: int, bottleneck: int):
        super().__init__()
        from torch.nn.utils.parametrizations import weight_norm

        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, bottleneck))
            for _ in range(n_heads)
        )
        for mlp in self.mlps:
            for layer in (mlp[0], mlp[2]):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        self.last = nn.ModuleList(
            weight_norm(nn.Linear(bottleneck, n_clusters, bias=False)) for _ in range(n_heads)
        )
        with torch.no_grad():
            for layer in self.last:
                layer.parametrizations.weight.original0.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every head, (heads, batch, K)."""
        return torch.stack(
            [
                last(F.normalize(mlp(x), dim=1))
                for mlp, last in zip(self.mlps, self.last, strict=True)
            ]
        )

    def last_layer_grad_off(self) -> None:
        """Drop the gradients of the last layers (they stay fixed in this step)."""
        for param in self.last.parameters():
            param.grad = None
