"""Exact cosine k-nearest neighbours in bounded chunks (never an N x N matrix), and the same
chunked search for any other pairwise score (``top_k_by``)."""

from __future__ import annotations

from collections.abc import Callable

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
    same = keys is None
    # queries already on a device are normalised there; host arrays stay on the host (moved a
    # chunk at a time) unless they are the keys as well, which live on `device`
    on_device = isinstance(queries, torch.Tensor) and queries.device.type != "cpu"
    q = unit_rows(queries, device if same or on_device else "cpu")
    kv = q if same else unit_rows(keys, device)

    def cosine(rows: slice, cols: slice) -> torch.Tensor:
        return q[rows].to(device) @ kv[cols].T

    return top_k_by(
        cosine,
        q.shape[0],
        kv.shape[0],
        k,
        exclude_self=same and exclude_self,
        query_chunk=query_chunk,
        key_chunk=key_chunk,
        device=device,
    )


def top_k_by(
    score: Callable[[slice, slice], torch.Tensor],
    n: int,
    m: int,
    k: int,
    *,
    exclude_self: bool = False,
    query_chunk: int = 2048,
    key_chunk: int = 65536,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` highest-scoring keys of each of `n` queries among `m` keys, exactly, where
    ``score(query_rows, key_columns)`` gives the block of scores (a tensor on `device`) of those
    query and key ranges; ``cosine_knn`` is this with cosine similarity, and any other
    similarity (a kernel between images) reuses its chunked search. With `exclude_self` (queries
    and keys the same items), a query never counts itself. Returns (indices (n, k) int64, scores
    (n, k) float32), highest first; memory is bounded by query_chunk x key_chunk scores."""
    available = m - 1 if exclude_self else m
    if not 0 < k <= available:
        raise ValueError(f"k={k} neighbours requested but only {available} candidates exist")
    out_idx = np.empty((n, k), dtype=np.int64)
    out_sim = np.empty((n, k), dtype=np.float32)
    for qs in range(0, n, query_chunk):
        qe = min(qs + query_chunk, n)
        best_sim = torch.full((qe - qs, k), -float("inf"), device=device)
        best_idx = torch.zeros((qe - qs, k), dtype=torch.long, device=device)
        for ks in range(0, m, key_chunk):
            ke = min(ks + key_chunk, m)
            sims = score(slice(qs, qe), slice(ks, ke))
            first, last = max(qs, ks), min(qe, ke)  # the items both queries and keys here
            if exclude_self and first < last:
                rows = torch.arange(first - qs, last - qs, device=device)
                sims[rows, rows + qs - ks] = -float("inf")
            top = min(k, sims.shape[1])
            s, i = sims.topk(top, dim=1)
            merged_sim = torch.cat([best_sim, s], dim=1)
            merged_idx = torch.cat([best_idx, i + ks], dim=1)
            best_sim, order = merged_sim.topk(k, dim=1)
            best_idx = merged_idx.gather(1, order)
        out_idx[qs:qe] = best_idx.cpu().numpy()
        out_sim[qs:qe] = best_sim.cpu().numpy()
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


def weighted_knn_graph(
    score: Callable[[slice, slice], torch.Tensor],
    n: int,
    k: int,
    weight: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    device: str = "cpu",
):
    """The symmetrised weighted k-NN graph of `n` items under a pairwise `score` given block-wise
    (as ``top_k_by``; the item itself left out): a sparse scipy CSR matrix (n, n),
    0.5 (A + A^T) with A[i, j] = weight(score) for the `k` highest-scoring j of row i (`weight`
    maps the float64 scores; None keeps them)."""
    import scipy.sparse as sp

    columns, scores = top_k_by(score, n, n, k, exclude_self=True, device=device)
    values = scores.astype(np.float64)
    if weight is not None:
        values = weight(values)
    rows = np.repeat(np.arange(n), k)
    a = sp.csr_matrix((values.ravel(), (rows, columns.ravel())), shape=(n, n))
    return (0.5 * (a + a.T)).tocsr()
