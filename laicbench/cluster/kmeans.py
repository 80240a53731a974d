"""Spherical k-means in torch (CPU or CUDA): the one k-means every laicbench method uses."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from laicbench.cluster.tensors import label_sums, torch_threads, unit_rows

IMPLEMENTATION = (
    "laicbench.cluster.kmeans.spherical_kmeans (torch, greedy k-means++ init, Lloyd; "
    "1 CPU thread below 2^28 multiply-adds per iteration; draws from a CPU generator)"
)
# Below this many multiply-adds per Lloyd iteration one CPU thread is faster than several (thread
# start-up dominates, and oversubscribed cores make OpenMP spin) and the result cannot depend on
# the machine's thread count.
SINGLE_THREAD_BELOW = 2**28


@dataclass(frozen=True)
class KMeansResult:
    """Labels (n,), unit centers (k, d), objective (sum of cosine to own center), iterations."""

    labels: np.ndarray
    centers: np.ndarray
    objective: float
    n_iter: int


def spherical_kmeans(
    x: np.ndarray | torch.Tensor,
    n_clusters: int,
    *,
    n_init: int = 10,
    max_iter: int = 300,
    tol: float = 1e-4,
    seed: int = 0,
    device: str = "cpu",
    sample_size: int | None = None,
    points_per_centroid: int | None = None,
    chunk_size: int = 16384,
) -> KMeansResult:
    """Cluster the rows of `x` by cosine similarity (rows are L2-normalised here).

    Each of `n_init` restarts seeds centers with greedy k-means++ (sampling by 1 - cosine, the
    squared chordal distance up to a factor 2) and runs Lloyd iterations (assign to the most similar
    center, center = normalised sum of members) until no label changes, the objective improves by
    less than `tol` relative, or `max_iter`. The restart with the highest objective wins. Empty
    clusters are re-seeded with the points farthest from their centers. With `sample_size`, centers
    are fitted on a seeded random subsample of that many rows (as faiss does) and every row is then
    assigned; `points_per_centroid` sets it to that many times `n_clusters` (faiss's
    max_points_per_centroid). A sample at least as large as the data means all rows. All
    randomness comes from `seed`.
    """
    if points_per_centroid:
        sample_size = points_per_centroid * n_clusters
    data = unit_rows(x, device)
    small = data.numel() * n_clusters < SINGLE_THREAD_BELOW
    with torch_threads(1 if small and data.device.type == "cpu" else None):
        return _spherical_kmeans(
            data, n_clusters, n_init, max_iter, tol, seed, sample_size, chunk_size
        )


def _spherical_kmeans(
    data: torch.Tensor,
    n_clusters: int,
    n_init: int,
    max_iter: int,
    tol: float,
    seed: int,
    sample_size: int | None,
    chunk_size: int,
) -> KMeansResult:
    n = data.shape[0]
    if not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters={n_clusters} must be between 1 and the {n} samples")
    gen = torch.Generator(device="cpu").manual_seed(seed)  # the training loops' rule
    fit = data
    if sample_size is not None and sample_size < n:
        if sample_size < n_clusters:
            raise ValueError(f"sample_size={sample_size} is below n_clusters={n_clusters}")
        fit = data[torch.randperm(n, generator=gen)[:sample_size].to(data.device)]

    best: tuple[float, torch.Tensor, int] | None = None
    for _ in range(n_init):
        centers = kmeans_plus_plus(fit, n_clusters, gen, chunk_size)
        centers, objective, n_iter = _lloyd(fit, centers, max_iter, tol, chunk_size)
        if best is None or objective > best[0]:
            best = (objective, centers, n_iter)
    assert best is not None
    _, centers, n_iter = best
    labels, sims = _assign(data, centers, chunk_size)
    return KMeansResult(
        labels=labels.cpu().numpy().astype(np.int64),
        centers=centers.cpu().numpy(),
        objective=float(sims.sum().item()),
        n_iter=n_iter,
    )


def _assign(
    data: torch.Tensor, centers: torch.Tensor, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Most similar center of each row, and that similarity, chunk by chunk."""
    labels = torch.empty(data.shape[0], dtype=torch.long, device=data.device)
    sims = torch.empty(data.shape[0], dtype=data.dtype, device=data.device)
    for start in range(0, data.shape[0], chunk_size):
        s, i = (data[start : start + chunk_size] @ centers.T).max(dim=1)
        labels[start : start + chunk_size] = i
        sims[start : start + chunk_size] = s
    return labels, sims


def kmeans_plus_plus(
    data: torch.Tensor, k: int, gen: torch.Generator, chunk_size: int
) -> torch.Tensor:
    """Greedy k-means++ seeding with 2 + log(k) candidate trials per center, drawn from the CPU
    generator `gen` whatever the data's device.

    On the CPU the candidates are ``torch.multinomial`` draws (with replacement: `trials`
    uniforms per center, by inverse CDF). On another device the same uniforms are drawn for the
    whole restart at once, moved there in one copy and inverted there, so a seed makes the same
    draws on every device and nothing is read back to the host per center."""
    n = data.shape[0]
    trials = 2 + int(math.log(k))
    on_cpu = data.device.type == "cpu"
    first = torch.randint(n, (1,), generator=gen).to(data.device)
    uniforms = None
    if not on_cpu:
        uniforms = torch.rand((k - 1, trials), dtype=torch.float64, generator=gen)
        uniforms = uniforms.to(data.device)
    chosen = torch.empty(k, dtype=torch.long, device=data.device)
    chosen[:1] = first
    dist = (1.0 - data @ data.index_select(0, first)[0]).clamp_min(0)
    for i in range(1, k):
        if uniforms is None:
            cand = _cpu_candidates(dist, trials, gen)
        else:
            cand = _inverse_cdf(dist, uniforms[i - 1])
        cand_dist = torch.empty((trials, n), dtype=data.dtype, device=data.device)
        for start in range(0, n, chunk_size):
            block = data[start : start + chunk_size]
            cand_dist[:, start : start + chunk_size] = (1.0 - data[cand] @ block.T).clamp_min(0)
        best = torch.minimum(cand_dist, dist).sum(dim=1).argmin().view(1)
        chosen[i : i + 1] = cand[best]
        dist = torch.minimum(dist, cand_dist.index_select(0, best)[0])
    return data[chosen]


def _cpu_candidates(dist: torch.Tensor, trials: int, gen: torch.Generator) -> torch.Tensor:
    """`trials` indices drawn with probability proportional to `dist` (a CPU tensor)."""
    total = dist.sum()
    if total <= 0:  # every point coincides with a center: pick any
        return torch.randint(len(dist), (trials,), generator=gen)
    return torch.multinomial(dist / total, trials, replacement=True, generator=gen)


def _inverse_cdf(dist: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """The indices whose cumulative share of `dist` first exceeds each of `uniforms`, on their
    device without a host sync; where `dist` is all 0, any index (from the same uniforms).

    The cumulative sums are of integer weights (`dist` in units of 2^-31 of its maximum): a
    floating-point cumsum on CUDA adds in an order that changes from run to run, an integer one
    is exact."""
    n = len(dist)
    weights = (dist / dist.max() * 2**31).nan_to_num(0.0).long()  # all 0: NaN -> 0
    cumulative = weights.cumsum(0)
    total = cumulative[-1]
    targets = (uniforms * total.double()).long().clamp_max(total - 1)
    drawn = torch.searchsorted(cumulative, targets, right=True).clamp_max(n - 1)
    anywhere = (uniforms * n).long().clamp_max(n - 1)
    return torch.where(total > 0, drawn, anywhere)


def _lloyd(
    data: torch.Tensor, centers: torch.Tensor, max_iter: int, tol: float, chunk_size: int
) -> tuple[torch.Tensor, float, int]:
    """Lloyd iterations from `centers`; returns (centers, objective, iterations)."""
    k = centers.shape[0]
    labels, sims = _assign(data, centers, chunk_size)
    objective = float(sims.sum().item())
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is reported
        sums = label_sums(data, labels, k)
        counts = torch.bincount(labels, minlength=k)
        empty = (counts == 0).nonzero().flatten()
        if len(empty):
            farthest = sims.argsort()[: len(empty)]
            sums[empty] = data[farthest]
        centers = F.normalize(sums, dim=1)
        new_labels, sims = _assign(data, centers, chunk_size)
        new_objective = float(sims.sum().item())
        done = torch.equal(new_labels, labels) or (
            new_objective - objective <= tol * abs(objective)
        )
        labels, objective = new_labels, new_objective
        if done:
            break
    return centers, objective, n_iter
