"""Spherical k-means (laicbench.cluster.kmeans.spherical_kmeans)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from laicbench.cluster.kmeans import spherical_kmeans


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def sphere_blobs(
    n_blobs: int = 5, per_blob: int = 60, dim: int = 16, noise: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated blobs around random unit directions, normalised, in shuffled order."""
    rng = np.random.default_rng(seed)
    directions = unit(rng.standard_normal((n_blobs, dim)))
    labels = np.repeat(np.arange(n_blobs), per_blob)
    x = directions[labels] + noise * rng.standard_normal((len(labels), dim))
    order = rng.permutation(len(labels))
    return unit(x)[order].astype(np.float32), labels[order]


def cosine_objective(x: np.ndarray, labels: np.ndarray) -> float:
    """Sum of cosines of unit rows to the normalised mean of their cluster."""
    total = 0.0
    for c in np.unique(labels):
        members = x[labels == c].astype(np.float64)
        center = members.sum(axis=0)
        total += float((members @ (center / np.linalg.norm(center))).sum())
    return total


@pytest.fixture(scope="module")
def blobs():
    return sphere_blobs()


def test_recovers_blobs_like_sklearn(blobs):
    x, truth = blobs
    result = spherical_kmeans(x, 5, seed=0)
    sk = KMeans(n_clusters=5, n_init=10, random_state=0).fit(x)
    assert result.labels.shape == (len(x),)
    assert result.labels.dtype == np.int64
    assert adjusted_rand_score(result.labels, sk.labels_) == 1.0
    assert adjusted_rand_score(truth, result.labels) == 1.0
    assert sorted(np.unique(result.labels).tolist()) == [0, 1, 2, 3, 4]


def test_objective_at_least_sklearns(blobs):
    x, _ = blobs
    result = spherical_kmeans(x, 5, seed=1)
    sk = KMeans(n_clusters=5, n_init=10, random_state=1).fit(x)
    assert result.objective >= cosine_objective(x, sk.labels_) - 1e-3
    # for unit vectors and unit centers, ||x - c||^2 = 2 - 2 cos: sklearn's inertia (with
    # unnormalised means, which are closer in Euclidean terms) bounds it from the other side
    assert 2 * len(x) - 2 * result.objective >= sk.inertia_ - 1e-3


def test_result_is_self_consistent(blobs):
    x, _ = blobs
    result = spherical_kmeans(x, 5, seed=0)
    assert result.centers.shape == (5, x.shape[1])
    np.testing.assert_allclose(np.linalg.norm(result.centers, axis=1), 1.0, atol=1e-5)
    sims = x @ result.centers.T
    # every point is assigned to its most similar center, and the objective is their sum
    np.testing.assert_array_equal(result.labels, sims.argmax(axis=1))
    assert result.objective == pytest.approx(float(sims.max(axis=1).sum()), rel=1e-5)
    assert 1 <= result.n_iter <= 300


def test_rows_are_normalised_internally(blobs):
    x, _ = blobs
    scales = np.random.default_rng(3).uniform(0.1, 10.0, size=(len(x), 1)).astype(np.float32)
    a = spherical_kmeans(x, 5, seed=0)
    b = spherical_kmeans(x * scales, 5, seed=0)
    assert adjusted_rand_score(a.labels, b.labels) == 1.0
    assert b.objective == pytest.approx(a.objective, rel=1e-4)


def test_accepts_torch_tensors(blobs):
    x, truth = blobs
    result = spherical_kmeans(torch.from_numpy(x), 5, seed=0)
    assert isinstance(result.labels, np.ndarray)
    assert adjusted_rand_score(truth, result.labels) == 1.0


def test_same_seed_same_result_whatever_the_global_rng():
    x = unit(np.random.default_rng(5).standard_normal((200, 8))).astype(np.float32)
    torch.manual_seed(123)
    np.random.seed(123)
    a = spherical_kmeans(x, 6, n_init=2, seed=7)
    torch.manual_seed(999)
    np.random.seed(999)
    torch.rand(10)
    b = spherical_kmeans(x, 6, n_init=2, seed=7)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)
    assert a.objective == b.objective


def test_seed_is_used():
    # structureless data: different seeds give different k-means++ starts and local optima
    x = unit(np.random.default_rng(6).standard_normal((200, 8))).astype(np.float32)
    labelings = {tuple(spherical_kmeans(x, 8, n_init=1, seed=s).labels.tolist()) for s in range(5)}
    assert len(labelings) > 1


def test_sample_size_assigns_every_point(blobs):
    x, truth = blobs
    result = spherical_kmeans(x, 5, seed=0, sample_size=60)
    assert result.labels.shape == (len(x),)
    assert adjusted_rand_score(truth, result.labels) == 1.0
    again = spherical_kmeans(x, 5, seed=0, sample_size=60)
    np.testing.assert_array_equal(result.labels, again.labels)


def test_sample_size_below_n_clusters_raises(blobs):
    x, _ = blobs
    with pytest.raises(ValueError):
        spherical_kmeans(x, 5, sample_size=3)


def test_small_chunks_give_the_same_result(blobs):
    x, _ = blobs
    a = spherical_kmeans(x, 5, seed=2)
    b = spherical_kmeans(x, 5, seed=2, chunk_size=17)
    np.testing.assert_array_equal(a.labels, b.labels)


@pytest.mark.parametrize("n_clusters", [0, 11])
def test_bad_n_clusters_raises(n_clusters):
    x = unit(np.random.default_rng(0).standard_normal((10, 4))).astype(np.float32)
    with pytest.raises(ValueError):
        spherical_kmeans(x, n_clusters)


def test_n_clusters_equal_to_n_is_allowed():
    x = unit(np.random.default_rng(0).standard_normal((10, 4))).astype(np.float32)
    result = spherical_kmeans(x, 10, n_init=1)
    assert sorted(result.labels.tolist()) == list(range(10))


@pytest.mark.parametrize("n_others", [5, 2])
def test_duplicated_points_do_not_crash(n_others):
    # 20 identical points plus a few others: fewer distinct points than (or close to) k, so
    # clusters run empty and must be re-seeded
    rng = np.random.default_rng(0)
    same = np.tile(rng.standard_normal((1, 6)), (20, 1))
    x = np.concatenate([same, rng.standard_normal((n_others, 6))])
    x = unit(x).astype(np.float32)
    result = spherical_kmeans(x, 4, n_init=3, seed=0)
    assert result.labels.shape == (len(x),)
    assert set(result.labels.tolist()) <= {0, 1, 2, 3}
    assert len(set(result.labels[:20].tolist())) == 1  # identical points share a cluster
    assert np.isfinite(result.centers).all()
    assert np.isfinite(result.objective)
    assert result.objective <= len(x) + 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_and_cpu_give_the_same_partition(blobs):
    x, truth = blobs
    cpu = spherical_kmeans(x, 5, seed=0, device="cpu")
    gpu = spherical_kmeans(x, 5, seed=0, device="cuda")
    assert adjusted_rand_score(cpu.labels, gpu.labels) == 1.0
    assert adjusted_rand_score(truth, gpu.labels) == 1.0
    assert gpu.objective == pytest.approx(cpu.objective, rel=1e-4)


def test_seeding_draws_on_the_cpu_whatever_the_data_device():
    # the meta device holds no values: any read-back to the host (.item(), a 0-d tensor index)
    # raises there, and a generator cannot live on it; so seeding on meta proves that the draws
    # come from the CPU generator and that nothing is read back per center
    from laicbench.cluster.kmeans import kmeans_plus_plus

    x, _ = sphere_blobs()
    data = torch.from_numpy(x)
    on_cpu, on_meta = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    centers = kmeans_plus_plus(data, 7, on_cpu, chunk_size=64)
    meta_centers = kmeans_plus_plus(data.to("meta"), 7, on_meta, chunk_size=64)
    assert meta_centers.device.type == "meta" and meta_centers.shape == centers.shape
    # the same draws, in the same number, whatever device the data is on
    assert torch.equal(on_cpu.get_state(), on_meta.get_state())
    # and they are those of the CPU partition
    rows = {tuple(r) for r in data.tolist()}
    assert all(tuple(c) in rows for c in centers.tolist())


def test_kmeans_creates_its_generator_on_the_cpu(monkeypatch):
    created = []

    class Recording(torch.Generator):
        def __new__(cls, device="cpu"):
            created.append(torch.device(device).type)
            return super().__new__(cls, device)

    monkeypatch.setattr(torch, "Generator", Recording)
    x, _ = sphere_blobs()
    with pytest.raises((RuntimeError, NotImplementedError)):  # meta has no objective to read
        spherical_kmeans(x, 5, n_init=1, seed=0, device="meta", sample_size=100)
    assert created == ["cpu"]
    spherical_kmeans(x, 5, n_init=2, seed=0)
    assert created == ["cpu", "cpu"]


def test_label_sums_on_a_gpu_path_equal_the_cpu_sums(monkeypatch):
    # the one-hot products (label_sums's path off the CPU) add the same rows as index_add_
    from laicbench.cluster import tensors

    monkeypatch.setattr(tensors, "BLOCK_ELEMENTS", 64)  # several blocks
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((101, 5)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 9, 101))
    labels[labels == 4] = 5  # a label without rows
    expected = torch.zeros(9, 5).index_add_(0, labels, x)
    assert torch.equal(tensors.label_sums(x, labels, 9), expected)
    assert torch.allclose(tensors.one_hot_sums(x, labels, 9), expected, atol=1e-5)
    assert tensors.label_sums(x.to("meta"), labels.to("meta"), 9).shape == (9, 5)
    means = tensors.label_means(x, labels, 9)
    assert torch.allclose(means[5], x[labels == 5].mean(dim=0), atol=1e-6)
    assert torch.equal(means[4], torch.zeros(5))
    index = torch.from_numpy(rng.integers(0, 101, (7, 3)))
    assert torch.allclose(tensors.row_means(x, index), x[index].mean(dim=1))


def test_the_gpu_path_draws_the_cpu_candidates_from_the_same_uniforms():
    # off the CPU, candidates are the inverse CDF of the uniforms multinomial would draw
    from laicbench.cluster.kmeans import _inverse_cdf

    same = total = 0
    for seed in range(50):
        dist = torch.rand(500, generator=torch.Generator().manual_seed(1000 + seed)) ** 3
        dist[::5] = 0
        cpu = torch.multinomial(
            dist / dist.sum(), 5, replacement=True, generator=torch.Generator().manual_seed(seed)
        )
        uniforms = torch.rand(5, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        drawn = _inverse_cdf(dist, uniforms)
        assert (dist[drawn] > 0).all()
        same += int((drawn == cpu).sum())
        total += 5
    assert same >= 0.99 * total  # a rounding of the cumulative sums may move a boundary
    assert _inverse_cdf(torch.zeros(10), torch.tensor([0.0, 0.55, 0.999])).tolist() == [0, 5, 9]
