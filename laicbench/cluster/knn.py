"""Exact cosine k-nearest neighbours in bounded chunks (never an N x N matrix)."""

from __future__ import annotations

import numpy as np
import torch

from laicbench.cluster.tensors import unit_rows


def cosine_knn(
    queries: np.ndarray | torch.Tensor,
    k: int,
    keys: np.ndarray | torch.Tensor | None = None,
    *,
    exclude_self: bool = True,
    query_chunk: int = 2048,
    key_chunk: int = 65536,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` most cosine-similar keys of each query, exactly.

    Takes queries (n, d) and keys (m, d) (keys default to the queries; rows are L2-normalised
    here). With keys omitted and `exclude_self`, a query never counts itself, even when duplicates
    tie with it. Returns (indices (n, k) int64, similarities (n, k) float32), most similar first.
    Memory is bounded by query_chunk x key_chunk similarities at a time.
    """
    q = unit_rows(queries)
    same = keys is None
    kv = q if same else unit_rows(keys)
    n, m = q.shape[0], kv.shape[0]
    available = m - 1 if (same and exclude_self) else m
    if not 0 < k <= available:
        raise ValueError(f"k={k} neighbours requested but only {available} candidates exist")
    kv = kv.to(device)
    out_idx = np.empty((n, k), dtype=np.int64)
    out_sim = np.empty((n, k), dtype=np.float32)
    for qs in range(0, n, query_chunk):
        qb = q[qs : qs + query_chunk].to(device)
        best_sim = torch.full((qb.shape[0], k), -float("inf"), device=device)
        best_idx = torch.zeros((qb.shape[0], k), dtype=torch.long, device=device)
        for ks in range(0, m, key_chunk):
            sims = qb @ kv[ks : ks + key_chunk].T
            if same and exclude_self:
                rows = torch.arange(qb.shape[0], device=device)
                cols = rows + qs - ks
                inside = (cols >= 0) & (cols < sims.shape[1])
                sims[rows[inside], cols[inside]] = -float("inf")
            top = min(k, sims.shape[1])
            s, i = sims.topk(top, dim=1)
            merged_sim = torch.cat([best_sim, s], dim=1)
            merged_idx = torch.cat([best_idx, i + ks], dim=1)
            best_sim, order = merged_sim.topk(k, dim=1)
            best_idx = merged_idx.gather(1, order)
        out_idx[qs : qs + len(qb)] = best_idx.cpu().numpy()
        out_sim[qs : qs + len(qb)] = best_sim.cpu().numpy()
    return out_idx, out_sim


def knn_graph(x: np.ndarray | torch.Tensor, k: int, *, device: str = "cpu"):
    """The symmetrised k-NN connectivity of the rows of `x` (cosine, exact): a sparse scipy CSR
    matrix (n, n), 0.5 (A + A^T) with A[i, j] = 1 when j is i itself or one of its `k` nearest,
    as scikit-learn builds its ``precomputed_nearest_neighbors`` affinity."""
    import scipy.sparse as sp

    neighbours, _ = cosine_knn(x, k, device=device)
    n = len(neighbours)
    columns = np.concatenate([np.arange(n)[:, None], neighbours], axis=1)
    rows = np.repeat(np.arange(n), columns.shape[1])
    ones = np.ones(rows.size, dtype=np.float32)
    a = sp.csr_matrix((ones, (rows, columns.ravel())), shape=(n, n))
    return (0.5 * (a + a.T)).tocsr()
