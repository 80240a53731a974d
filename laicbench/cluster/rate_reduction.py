"""Coding rates (Ma et al. 2007; Yu et al., MCR^2, 2020) and the two-head network on cached
features that CPP and PRO-DSC train with them.

For features Z (m, d) as rows (here unit rows), the total coding rate at distortion eps is
    R(Z) = 1/2 logdet(I_d + d / (m eps) Z^T Z),
and the coding rate of Z under a soft membership Pi (m, m), row j a membership over the m
samples with mass tr_j = sum_i Pi_ji, is
    R_c(Z, Pi) = sum_j tr_j / (2 m) logdet(I_d + d / (tr_j eps) Z^T diag(Pi_j) Z).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint


def total_coding_rate(z: torch.Tensor, eps: float) -> torch.Tensor:
    """R(Z) of rows `z` (m, d) at distortion `eps` (a scalar tensor, differentiable)."""
    m, d = z.shape
    eye = torch.eye(d, device=z.device, dtype=z.dtype)
    return 0.5 * torch.logdet(eye + (d / (m * eps)) * z.T @ z)


def membership_coding_rate(
    z: torch.Tensor, pi: torch.Tensor, eps: float, chunk: int = 64
) -> torch.Tensor:
    """R_c(Z, Pi) of rows `z` (m, d) under the membership `pi` (m, m), one membership per row of
    `pi` (a scalar tensor, differentiable). The m logdets of d x d matrices are taken `chunk`
    memberships at a time and recomputed in the backward pass (checkpointed), so that memory
    stays at one chunk's chunk x m x d products."""
    total = z.new_zeros(())
    for start in range(0, pi.shape[0], chunk):
        block = pi[start : start + chunk]
        if torch.is_grad_enabled() and (z.requires_grad or pi.requires_grad):
            total = total + checkpoint(_rate_terms, z, block, eps, use_reentrant=False)
        else:
            total = total + _rate_terms(z, block, eps)
    return total


def _rate_terms(z: torch.Tensor, block: torch.Tensor, eps: float) -> torch.Tensor:
    """sum over the memberships of `block` (c, m) of tr_j / (2 m) logdet(I + d / (tr_j eps)
    Z^T diag(Pi_j) Z)."""
    m, d = z.shape
    mass = block.sum(dim=1) + 1e-8
    weighted = block[:, :, None] * z[None, :, :]  # (c, m, d)
    covariance = weighted.transpose(1, 2) @ z  # (c, d, d): Z^T diag(Pi_j) Z
    eye = torch.eye(d, device=z.device, dtype=z.dtype)
    scale = (d / (mass * eps))[:, None, None]
    return (mass * torch.logdet(eye + scale * covariance)).sum() / (2 * m)


class SubspaceNet(nn.Module):
    """CPP's and PRO-DSC's network on cached features: a shared trunk (Linear, BatchNorm, ReLU,
    Linear, ReLU to `hidden`) and two linear heads to `z_dim`, both L2-normalised: the subspace
    head gives the representation Z, the cluster head the vectors C whose |C C^T| is the
    self-coefficient matrix."""

    def __init__(self, input_dim: int, hidden: int, z_dim: int):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(input_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.subspace = nn.Linear(hidden, z_dim)
        self.cluster = nn.Linear(hidden, z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Z, C), each (batch, z_dim) with unit rows."""
        h = self.trunk(x)
        return F.normalize(self.subspace(h), dim=1), F.normalize(self.cluster(h), dim=1)

    def start_cluster_head_from_subspace_head(self) -> None:
        """Copy the subspace head's weights into the cluster head (at the end of the warm-up,
        as both official codes do)."""
        self.cluster.load_state_dict(self.subspace.state_dict())

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(trunk and subspace head, cluster head): the two groups that get their own SGD."""
        main = [*self.trunk.parameters(), *self.subspace.parameters()]
        return main, list(self.cluster.parameters())

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
        """(Z, C) of all rows of `x` in evaluation mode, `batch` rows at a time."""
        self.eval()
        parts = [self(x[i : i + batch]) for i in range(0, len(x), batch)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
