"""Entropic Sinkhorn projection of a similarity onto (scaled) doubly stochastic matrices, in the
log domain: dense and differentiable for a training batch, and chunked (never an n x n matrix)
for the k largest entries per row of the plan over a whole test split. CPP and PRO-DSC project
their self-coefficients |C C^T| with it.

The plan of scores S (n, m) at temperature eta is P_ij = exp((S_ij + f_i + g_j) / eta), with the
potentials f, g found by alternating updates so that the rows sum to 1/n and the columns to 1/m;
``iterations`` counts half-steps (rows first, then columns, ...), as CPP's and PRO-DSC's code do,
so that after an odd number the row sums are exact and the column sums approximate.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch


def sinkhorn_plan(scores: torch.Tensor, eta: float, iterations: int) -> torch.Tensor:
    """The entropic transport plan (n, m) of `scores` (n, m) with uniform marginals 1/n and 1/m,
    after `iterations` alternating half-steps (row first); differentiable in `scores`."""
    n, m = scores.shape
    log_mu, log_nu = -math.log(n), -math.log(m)
    s = scores / eta
    f = torch.zeros(n, 1, dtype=scores.dtype, device=scores.device)
    g = torch.zeros(1, m, dtype=scores.dtype, device=scores.device)
    for step in range(iterations):
        if step % 2 == 0:
            f = log_mu - torch.logsumexp(s + g, dim=1, keepdim=True)
        else:
            g = log_nu - torch.logsumexp(s + f, dim=0, keepdim=True)
    return torch.exp(s + f + g)


def sinkhorn_potentials(
    score: Callable[[slice, slice], torch.Tensor],
    n: int,
    eta: float,
    iterations: int,
    *,
    chunk: int = 4096,
    device: str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The scaled log-potentials (f / eta, g / eta), each (n,), of the Sinkhorn plan of a square
    symmetric similarity given block-wise: ``score(rows, columns)`` returns that block (a tensor
    on `device`); uniform marginals 1/n, `iterations` half-steps as ``sinkhorn_plan``. Memory is
    bounded by chunk x n scores at a time; log P_ij = S_ij / eta + f_i + g_j."""
    log_marginal = -math.log(n)
    f = torch.zeros(n, device=device)
    g = torch.zeros(n, device=device)

    def update(other: torch.Tensor) -> torch.Tensor:
        # S is symmetric, so a column update is a row update with the roles swapped
        out = torch.empty(n, device=device)
        for start in range(0, n, chunk):
            rows = slice(start, min(start + chunk, n))
            block = score(rows, slice(0, n)) / eta + other[None, :]
            out[rows] = log_marginal - torch.logsumexp(block, dim=1)
        return out

    for step in range(iterations):
        if step % 2 == 0:
            f = update(g)
        else:
            g = update(f)
    return f, g


def top_plan_entries(
    score: Callable[[slice, slice], torch.Tensor],
    n: int,
    k: int,
    eta: float,
    iterations: int,
    *,
    device: str = "cpu",
):
    """The `k` largest entries per row of the Sinkhorn plan of a square symmetric similarity
    (given block-wise, as ``sinkhorn_potentials``), the diagonal left out, scaled by n (a row of
    the full plan then sums to 1): a sparse scipy CSR matrix (n, n), symmetrised as
    0.5 (P + P^T). Chunked throughout: no n x n matrix is formed."""
    from laicbench.cluster.knn import weighted_knn_graph

    f, g = sinkhorn_potentials(score, n, eta, iterations, device=device)

    def log_plan(rows: slice, cols: slice) -> torch.Tensor:
        return score(rows, cols) / eta + f[rows, None] + g[None, cols]

    return weighted_knn_graph(log_plan, n, k, lambda s: np.exp(s) * n, device=device)
