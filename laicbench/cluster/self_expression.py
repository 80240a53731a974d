"""Sparse self-representation of data points by the other points (You, Robinson and Vidal, CVPR
2016: SSC-OMP; You, Li, Robinson and Vidal, CVPR 2016: EnSC), and the affinity built from it.
Every point x_j (a unit row of X) is written as c_j X with c_jj = 0; the coefficients are kept as
a sparse (n, n) matrix C, so that memory grows with n x nonzeros, never n x n.

- OMP: min ||x_j - c_j X||^2 subject to ||c_j||_0 <= s, greedily: the atom most correlated
  with the residual joins the support, the coefficients are the least-squares fit on the
  support, until s atoms or a squared residual below `thr`. Written here, batched over a chunk
  of points and on torch (CPU or CUDA), because scikit-learn's ``orthogonal_mp`` has no c_jj = 0
  constraint (each point would need its own dictionary copy, or the n x n Gram: 20 GB at
  50,000 points) and solves one point at a time; a test checks it against ``orthogonal_mp``.
- Elastic net: min tau ||c||_1 + (1 - tau) / 2 ||c||^2 + g / 2 ||x_j - c X||^2 with
  g = gamma tau / max_{i != j} |x_i . x_j| (gamma > 1: the smallest g with a nonzero solution
  is gamma's unit), solved by the oracle-guided active set (ORGEN): scikit-learn's
  ``ElasticNet`` on a working set of atoms, then every atom whose correlation with the oracle
  point delta = g (x_j - c X) exceeds tau joins the set, until none does (then the working-set
  solution is the global one).
"""

from __future__ import annotations

import numpy as np
import torch

from laicbench.cluster.tensors import unit_rows


def omp_self_representation(
    x: np.ndarray | torch.Tensor,
    n_nonzero: int,
    thr: float = 1e-6,
    *,
    chunk: int = 1024,
    device: str = "cpu",
):
    """The OMP self-representation C (a scipy CSR matrix (n, n), float32) of the L2-normalised
    rows of `x`: each row has at most `n_nonzero` entries, none on the diagonal; a point stops
    early once its squared residual falls below `thr`. Memory: chunk x n correlations."""
    import scipy.sparse as sp

    xs = unit_rows(x, device)
    n = xs.shape[0]
    s = min(n_nonzero, n - 1)
    rows, cols, vals = [], [], []
    for start in range(0, n, chunk):
        index = torch.arange(start, min(start + chunk, n), device=device)
        support, coef = _omp_chunk(xs, index, s, thr)
        kept = support >= 0
        rows.append(index[:, None].expand_as(support)[kept].cpu().numpy())
        cols.append(support[kept].cpu().numpy())
        vals.append(coef[kept].cpu().numpy())
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, n),
        dtype=np.float32,
    )


def _omp_chunk(xs: torch.Tensor, index: torch.Tensor, s: int, thr: float):
    """OMP for the points `index` of the unit rows `xs` (n, d): (support (b, s), -1 where
    unused; coefficients (b, s))."""
    b = len(index)
    target = xs[index]
    support = torch.full((b, s), -1, dtype=torch.long, device=xs.device)
    coef = torch.zeros((b, s), device=xs.device)
    residual = target.clone()
    active = torch.ones(b, dtype=torch.bool, device=xs.device)
    for t in range(s):
        live = active.nonzero().squeeze(1)
        if len(live) == 0:
            break
        coherence = (residual[live] @ xs.T).abs()
        coherence[torch.arange(len(live), device=xs.device), index[live]] = -1.0  # c_jj = 0
        if t:
            coherence.scatter_(1, support[live, :t], -1.0)
        support[live, t] = coherence.argmax(dim=1)
        atoms = xs[support[live, : t + 1]]  # (live, t + 1, d)
        fit = _least_squares(atoms, target[live])
        coef[live, : t + 1] = fit
        residual[live] = target[live] - (fit[:, None, :] @ atoms)[:, 0]
        active[live] = (residual[live] ** 2).sum(dim=1) >= thr
    return support, coef


def _least_squares(atoms: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """argmin_c ||target - c atoms|| per point: `atoms` (b, t, d) linearly independent (OMP
    picks an atom correlated with a residual orthogonal to the others), `target` (b, d); the
    t x t normal equations solved in float64, where near-parallel features stay accurate."""
    gram = (atoms @ atoms.transpose(1, 2)).double()
    rhs = (atoms @ target[:, :, None]).double()
    return torch.linalg.solve(gram, rhs)[..., 0].float()


def elastic_net_self_representation(
    x: np.ndarray,
    gamma: float,
    tau: float,
    n_nonzero: int,
    *,
    support_size: int = 100,
    max_rounds: int = 40,
    chunk: int = 1024,
):
    """The elastic-net self-representation C (a scipy CSR matrix (n, n), float64) of the
    L2-normalised rows of `x` by ORGEN (module docstring), each row's `n_nonzero` largest
    coefficients kept. `support_size`: the first working set (each point's most correlated
    others); `max_rounds`: working-set updates per point. CPU (scikit-learn); memory:
    chunk x n correlations."""
    import scipy.sparse as sp

    xs = unit_rows(x).numpy().astype(np.float64)
    n = len(xs)
    rows, cols, vals = [], [], []
    for start in range(0, n, chunk):
        correlations = xs[start : start + chunk] @ xs.T
        for offset, coherence in enumerate(np.abs(correlations)):
            j = start + offset
            coherence[j] = 0.0
            c = elastic_net_point(xs, j, coherence, gamma, tau, support_size, max_rounds)
            nonzero = np.flatnonzero(c)
            if len(nonzero) > n_nonzero:
                nonzero = nonzero[np.argsort(-np.abs(c[nonzero]))[:n_nonzero]]
            rows.append(np.full(len(nonzero), j))
            cols.append(nonzero)
            vals.append(c[nonzero])
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )


def elastic_net_weight(coherence: np.ndarray, gamma: float, tau: float) -> float:
    """The data-fit weight g = gamma tau / max_{i != j} |x_i . x_j| of a point whose absolute
    correlations with the others (its own set to 0) are `coherence`."""
    return gamma * tau / max(float(coherence.max()), 1e-12)


def elastic_net_point(
    xs: np.ndarray,
    j: int,
    coherence: np.ndarray,
    gamma: float,
    tau: float,
    support_size: int,
    max_rounds: int,
) -> np.ndarray:
    """ORGEN's solution (n,) of point `j`'s elastic-net problem over the unit rows `xs` (n, d),
    `coherence` its absolute correlations with the others (its own 0)."""
    from sklearn.linear_model import ElasticNet

    n, d = xs.shape
    y = xs[j]
    weight = elastic_net_weight(coherence, gamma, tau)
    # scikit-learn's objective 1/(2d) ||y - A c||^2 + a r ||c||_1 + a (1 - r)/2 ||c||^2 is ours
    # divided by g d: a = 1 / (g d), r = tau
    solver = ElasticNet(
        alpha=1.0 / (weight * d), l1_ratio=tau, fit_intercept=False, precompute=True, tol=1e-5
    )
    others = n - 1
    if others <= support_size:
        working = np.delete(np.arange(n), j)
    else:
        working = np.argpartition(-coherence, support_size)[:support_size]
    best = np.inf
    for _ in range(max_rounds):
        solver.fit(xs[working].T, y)
        c_w, fitted = solver.coef_, working
        delta = weight * (y - c_w @ xs[working])
        objective = (
            tau * np.abs(c_w).sum()
            + (1 - tau) / 2 * (c_w**2).sum()
            + (delta**2).sum() / (2 * weight)
        )
        if best - objective < 1e-10 * best:
            break
        best = objective
        oracle = np.abs(xs @ delta)
        oracle[working] = 0.0
        oracle[j] = 0.0
        added = np.flatnonzero(oracle > tau + 1e-10)
        if len(added) == 0:
            break
        kept = working[np.abs(c_w) > 1e-10]
        if len(kept) > 0.8 * support_size:  # the working set is too small for this point
            support_size = min(round(max(len(kept), support_size) * 1.1), others)
        room = max(support_size - len(kept), 1)
        if len(added) > room:
            added = added[np.argpartition(-oracle[added], room - 1)[:room]]
        working = np.concatenate([kept, added])
    c = np.zeros(n)
    c[fitted] = c_w
    return c


def self_expression_affinity(c):
    """The affinity 0.5 (|C'| + |C'|^T) of a sparse self-representation C (scipy, (n, n)), C'
    its rows L2-normalised (as the official code builds it): a scipy CSR matrix."""
    from sklearn.preprocessing import normalize

    a = abs(normalize(c.tocsr(), norm="l2", axis=1))
    return (0.5 * (a + a.T)).tocsr()
