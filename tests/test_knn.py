"""Exact chunked cosine k-NN (laicbench.cluster.knn.cosine_knn)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from laicbench.cluster.knn import cosine_knn

CHUNKS = {"query_chunk": 7, "key_chunk": 13}


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(queries, keys, k, exclude_diagonal):
    sims = unit(np.asarray(queries, np.float64)) @ unit(np.asarray(keys, np.float64)).T
    if exclude_diagonal:
        np.fill_diagonal(sims, -np.inf)
    idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(sims, idx, axis=1)


def assert_matches(idx, sim, ref_idx, ref_sim):
    assert idx.shape == ref_idx.shape
    assert idx.dtype == np.int64
    assert sim.dtype == np.float32
    np.testing.assert_allclose(sim, ref_sim, atol=1e-6)
    for row, ref_row in zip(idx, ref_idx, strict=True):
        assert set(row.tolist()) == set(ref_row.tolist())
    assert (np.diff(sim, axis=1) <= 1e-7).all()  # most similar first


@pytest.mark.parametrize("k", [1, 5, 20])
def test_self_knn_matches_brute_force_across_chunks(k):
    x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32) * 3
    idx, sim = cosine_knn(x, k, **CHUNKS)
    assert_matches(idx, sim, *brute_force(x, x, k, exclude_diagonal=True))
    assert not (idx == np.arange(len(x))[:, None]).any()


def test_self_knn_with_self_included():
    x = np.random.default_rng(1).standard_normal((40, 6)).astype(np.float32)
    idx, sim = cosine_knn(x, 4, exclude_self=False, **CHUNKS)
    assert_matches(idx, sim, *brute_force(x, x, 4, exclude_diagonal=False))
    np.testing.assert_array_equal(idx[:, 0], np.arange(len(x)))
    np.testing.assert_allclose(sim[:, 0], 1.0, atol=1e-6)


def test_k_larger_than_a_key_chunk():
    x = np.random.default_rng(2).standard_normal((45, 5)).astype(np.float32)
    idx, sim = cosine_knn(x, 30, **CHUNKS)
    assert_matches(idx, sim, *brute_force(x, x, 30, exclude_diagonal=True))


def test_exclude_self_with_duplicate_rows():
    base = np.random.default_rng(3).standard_normal((20, 8)).astype(np.float32)
    # every row twice (the copies 20 apart, so in different chunks) and row 0 a third time
    x = np.concatenate([base, base, base[:1]])
    idx, sim = cosine_knn(x, 3, **CHUNKS)
    n = len(x)
    assert not (idx == np.arange(n)[:, None]).any()
    for i in range(n):
        twins = {j for j in range(n) if j != i and np.array_equal(x[j], x[i])}
        found = set(idx[i, : len(twins)].tolist())
        assert found == twins  # the duplicates tie at similarity 1 and come first
        np.testing.assert_allclose(sim[i, : len(twins)], 1.0, atol=1e-6)


def test_all_rows_identical():
    x = np.ones((15, 4), dtype=np.float32)
    idx, sim = cosine_knn(x, 14, **CHUNKS)
    for i in range(15):
        assert sorted(idx[i].tolist()) == [j for j in range(15) if j != i]
    np.testing.assert_allclose(sim, 1.0, atol=1e-6)


@pytest.mark.parametrize("exclude_self", [True, False])
def test_separate_keys_match_brute_force(exclude_self):
    rng = np.random.default_rng(4)
    queries = rng.standard_normal((23, 8)).astype(np.float32)
    keys = rng.standard_normal((45, 8)).astype(np.float32)
    idx, sim = cosine_knn(queries, 6, keys, exclude_self=exclude_self, **CHUNKS)
    assert_matches(idx, sim, *brute_force(queries, keys, 6, exclude_diagonal=False))


def test_separate_keys_equal_to_queries_include_self():
    # exclude_self applies only when keys are omitted
    x = np.random.default_rng(5).standard_normal((30, 8)).astype(np.float32)
    idx, _ = cosine_knn(x, 2, x.copy(), **CHUNKS)
    np.testing.assert_array_equal(idx[:, 0], np.arange(len(x)))


def test_accepts_torch_tensors_and_default_chunks():
    x = np.random.default_rng(6).standard_normal((30, 8)).astype(np.float32)
    idx_t, sim_t = cosine_knn(torch.from_numpy(x), 5)
    idx, sim = cosine_knn(x, 5, **CHUNKS)
    np.testing.assert_array_equal(idx_t, idx)
    np.testing.assert_allclose(sim_t, sim, atol=1e-6)


def test_k_too_large_raises():
    x = np.random.default_rng(7).standard_normal((10, 4)).astype(np.float32)
    with pytest.raises(ValueError):
        cosine_knn(x, 10)  # only 9 others when a query cannot count itself
    assert cosine_knn(x, 9)[0].shape == (10, 9)
    assert cosine_knn(x, 10, exclude_self=False)[0].shape == (10, 10)
    with pytest.raises(ValueError):
        cosine_knn(x, 11, exclude_self=False)
    with pytest.raises(ValueError):
        cosine_knn(x, 5, x[:4])
    with pytest.raises(ValueError):
        cosine_knn(x, 0)
