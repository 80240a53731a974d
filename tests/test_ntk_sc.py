"""NTK-SC (methods/ntk_sc.py): its kernel graphs and RAD against independently written dense
formulas, the cached per-template noun features it reads, and a run on confounded features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from confounded_features import write_confounded_features
from dataset_fixtures import write_imagenet
from laicbench.datasets.imagenet import ImageNet10
from laicbench.datasets.imagenet_classes import IMAGENET10_WNIDS
from laicbench.methods.ntk_sc import (
    diffusion_step,
    kernel_graph,
    project_to_simplex,
    rad,
    transition,
    update_weights,
)

import laicbench.data.pipeline
from laicbench.api import registry
from laicbench.api.backbone_spec import BackboneSpec
from laicbench.api.features import DatasetFeatures, FeatureBundle, Need
from laicbench.api.settings import DataSettings
from laicbench.cluster.metrics import cluster_accuracy
from laicbench.data.backbone import load_backbone
from laicbench.data.cache import FeatureCache, cache_key
from laicbench.data.features_file import FeaturesFile
from laicbench.data.pipeline import image_dataset_features, template_key_fields, text_key_fields
from laicbench.data.text_encoder import NOUN_TEMPLATES, TextEncoder

# ---------------------------------------------------------------------------------------------
# dense references, written from the method's description (not from methods/ntk_sc.py)


def unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def dense_kernel(x: np.ndarray, nouns: np.ndarray, tau: float) -> np.ndarray:
    """K(i, j) = <x_i, x_j> <p_i, p_j> / tau^2, p_i = softmax(<x_i, n> / tau), in float64."""
    x, nouns = unit(x.astype(np.float64)), unit(nouns.astype(np.float64))
    logits = x @ nouns.T / tau
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return (x @ x.T) * (p @ p.T) / tau**2


def dense_graph(kernel: np.ndarray, k: int) -> np.ndarray:
    """Each row's k largest off-diagonal values, max-symmetrised, negatives set to 0."""
    n = len(kernel)
    g = np.zeros_like(kernel)
    for i in range(n):
        others = [j for j in np.argsort(-kernel[i], kind="stable") if j != i][:k]
        g[i, others] = kernel[i, others]
    return np.maximum(np.maximum(g, g.T), 0.0)


def dense_transition(w: np.ndarray) -> np.ndarray:
    d = 1.0 / np.sqrt(np.maximum(w.sum(axis=1), 1.0))
    return d[:, None] * w * d[None, :]


def dense_rad(ts, mu, lam, t_outer, t_diffuse, ta_cd, tol):
    """The reference's dense RAD, loop by loop."""
    n, v = ts[0].shape[0], len(ts)
    a = np.eye(n)
    beta = np.full(v, 1.0 / v)
    for _ in range(t_outer):
        alpha = beta / (mu + beta.sum())
        prev = a
        for _ in range(t_diffuse):
            a = sum(alpha[i] * ts[i] @ a @ ts[i].T for i in range(v)) + (1 - alpha.sum()) * np.eye(
                n
            )
            a = np.maximum(0.5 * (a + a.T), 0.0)
            delta = np.linalg.norm(a - prev) / (np.linalg.norm(prev) + 1e-12)
            if delta < tol:
                break
            prev = a
        h = np.array([np.sum(a * a) - np.sum(a * (t @ a @ t.T)) for t in ts])
        for _ in range(ta_cd):
            for i in range(v):
                for j in range(i + 1, v):
                    s = beta[i] + beta[j]
                    bi = np.clip((lam * s + h[j] - h[i]) / (2 * lam), 0, 1)
                    beta[i], beta[j] = bi, np.clip(s - bi, 0, 1)
            beta = project_to_simplex(beta)
    return a, beta


def tiny_inputs(seed: int = 0, n: int = 14, d: int = 6, m: int = 5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[: n // 2] += 2.0 * rng.standard_normal(d).astype(np.float32)  # two loose groups
    nouns = rng.standard_normal((m, d)).astype(np.float32)
    return x, nouns


# ---------------------------------------------------------------------------------------------
# the kernel graph


def test_kernel_is_the_ntk_of_the_logsumexp_anchored_on_the_nouns():
    """<d/dN lse(x_i N^T / tau), d/dN lse(x_j N^T / tau)> (autograd) is the closed form."""
    x, nouns = tiny_inputs()
    tau = 0.3
    xs = torch.nn.functional.normalize(torch.from_numpy(x).double(), dim=1)
    anchors = torch.nn.functional.normalize(torch.from_numpy(nouns).double(), dim=1)
    grads = []
    for row in xs:
        n_var = anchors.clone().requires_grad_(True)
        torch.logsumexp(n_var @ row / tau, dim=0).backward()
        grads.append(n_var.grad.flatten())
    g = torch.stack(grads)
    np.testing.assert_allclose((g @ g.T).numpy(), dense_kernel(x, nouns, tau), rtol=1e-10)


@pytest.mark.parametrize("k", [3, 13])
def test_sparse_kernel_graph_equals_the_dense_formula(k):
    x, nouns = tiny_inputs()
    tau = 0.2
    got = kernel_graph(x, nouns, tau, k, query_chunk=4, key_chunk=5).toarray()
    expected = dense_graph(dense_kernel(x, nouns, tau), k)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert (np.diag(got) == 0).all()
    if k == len(x) - 1:  # every pair: the dense kernel without its diagonal, negatives cut
        full = np.maximum(dense_kernel(x, nouns, tau), 0.0)
        np.fill_diagonal(full, 0.0)
        np.testing.assert_allclose(got, full, rtol=1e-4, atol=1e-5)


def test_transition_normalises_by_degrees_counting_small_ones_as_one():
    w = np.array([[0.0, 2.0, 0.0], [2.0, 0.0, 0.5], [0.0, 0.5, 0.0]])
    t = transition(sp.csr_matrix(w)).toarray()
    np.testing.assert_allclose(t, dense_transition(w))
    assert t[1, 2] == pytest.approx(0.5 / np.sqrt(2.5 * 1.0))  # node 2's degree 0.5 counts as 1


# ---------------------------------------------------------------------------------------------
# regularised affinity diffusion


def tiny_transitions(n_templates: int = 3):
    x, nouns = tiny_inputs(1)
    rng = np.random.default_rng(2)
    return [
        transition(kernel_graph(x, nouns + 0.3 * rng.standard_normal(nouns.shape), 0.5, 4))
        for _ in range(n_templates)
    ]


@pytest.mark.parametrize("n_neighbors", [None, 1])
def test_rad_by_hand_on_two_nodes(n_neighbors):
    """T = [[.5, .5], [.5, .5]] (T^2 = T): from A = I one step gives alpha T + (1 - alpha) I
    with alpha = 1 / (mu + 1), which the next step keeps (T A T = T); one template keeps
    weight 1. Dense and sparse (1 neighbour = N - 1: nothing cut)."""
    t = sp.csr_matrix(np.full((2, 2), 0.5))
    a, beta, info = rad([t], mu=0.1, t_outer=1, t_diffuse=8, tol=1e-12, n_neighbors=n_neighbors)
    alpha = 1 / 1.1
    np.testing.assert_allclose(
        a.toarray(), [[1 - alpha / 2, alpha / 2], [alpha / 2, 1 - alpha / 2]]
    )
    assert info["steps"] == 2  # the second step changes nothing
    np.testing.assert_allclose(beta, [1.0])


def test_weights_move_towards_the_template_with_the_smaller_term():
    # pair (0, 1): beta_0 = (lam (b0 + b1) + h_1 - h_0) / (2 lam) = (10 + 1) / 20
    np.testing.assert_allclose(
        update_weights(np.array([0.5, 0.5]), np.array([0.0, 1.0]), 10, 1), [0.55, 0.45]
    )
    np.testing.assert_allclose(project_to_simplex(np.array([0.2, 0.2])), [0.5, 0.5])
    np.testing.assert_allclose(project_to_simplex(np.array([2.0, -1.0, 0.0])), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(project_to_simplex(np.zeros(4)), [0.25] * 4)


@pytest.mark.parametrize(
    ("n_neighbors", "device"), [(None, None), (None, "cpu"), (13, None), (40, None)]
)
def test_rad_dense_and_sparse_without_cuts_are_the_reference_rad(n_neighbors, device):
    """None: the dense path (NumPy, or torch on a device as GPU runs take it); n_neighbors >=
    N - 1 = 13: the sparse path, which then cuts nothing. All are the reference's dense RAD."""
    ts = tiny_transitions()
    params = {"mu": 0.1, "lam": 0.05, "t_outer": 3, "t_diffuse": 4, "ta_cd": 2, "tol": 1e-4}
    a, beta, info = rad(ts, **params, n_neighbors=n_neighbors, device=device)
    a_ref, beta_ref = dense_rad([t.toarray() for t in ts], **params)
    assert info["diffusion"] == (
        "dense" if n_neighbors is None else "sparse, 13 neighbours per row"
    )
    np.testing.assert_allclose(a.toarray(), a_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(beta, beta_ref, rtol=1e-9, atol=1e-12)
    assert len(set(np.round(beta, 6))) > 1  # the weights did move (lam small)


def test_a_cut_step_keeps_the_diagonal_and_the_largest_entries_then_max_symmetrises():
    ts = tiny_transitions()
    n = ts[0].shape[0]
    alpha = np.full(3, 1 / 3 / 1.1)
    a = sp.identity(n, format="csr")
    for _ in range(2):
        a = diffusion_step(a, ts, alpha, n - 1)
    full = diffusion_step(a, ts, alpha, n - 1).toarray()
    expected = sum(
        w * t.toarray() @ a.toarray() @ t.toarray() for w, t in zip(alpha, ts, strict=True)
    )
    np.testing.assert_allclose(full, expected + (1 - alpha.sum()) * np.eye(n), atol=1e-12)
    cut = diffusion_step(a, ts, alpha, 3).toarray()
    np.testing.assert_allclose(cut, cut.T)
    assert (np.diag(cut) > 0).all()
    kept = cut > 0
    assert (kept.sum(axis=1) >= 4).all()  # its diagonal and 3 others, and what the max adds
    assert kept.sum() < (full > 0).sum()
    # a kept entry is the full step's value, or less where a half product A T was cut
    assert (cut[kept] <= full[kept] + 1e-12).all()


def test_the_method_diffuses_densely_up_to_dense_limit():
    x, nouns = tiny_inputs(3, n=30, m=6)
    data = DatasetFeatures(
        image_train=x,
        image_test=x,
        labels_train=np.zeros(30, dtype=np.int64),
        labels_test=np.zeros(30, dtype=np.int64),
        class_names=["a", "b"],
        noun_words=[f"w{i}" for i in range(6)],
        noun_features_loader=lambda: unit(nouns),
        noun_template_features_loader=lambda: unit(np.stack([nouns, nouns + 0.1])),
    )
    cls = registry.methods.get("ntk-sc")
    for limit, diffusion in ((30, "dense"), (29, "sparse, 10 neighbours per row")):
        method = cls(n_neighbors=10, graph_k=5, n_semantic_centers=3, dense_limit=limit)
        labels = method.fit_predict(FeatureBundle(data, cls.needs, "unit", "cpu"), 2, 0)
        assert labels.shape == (30,)
        resolved = method.artefacts_["resolved"]
        assert resolved["diffusion"] == diffusion and resolved["n_templates"] == 2
        assert resolved["temperature"] == 0.04 and resolved["n_semantic_centers"] == 3


# ---------------------------------------------------------------------------------------------
# the cached per-template noun features

VOCAB = ["goose", "dog", "leopard", "airliner", "boat", "train", "cat", "bird", "tree", "house"]
COUNTS = {"train": 20, "test": 10}


def fail(*args, **kwargs):
    raise AssertionError("text features were computed although they are cached")


def tiny_image_dataset(tmp_path: Path) -> tuple[ImageNet10, DataSettings]:
    write_imagenet(tmp_path / "data", IMAGENET10_WNIDS, n_train=2, n_val=1)
    vocabulary = tmp_path / "vocabulary.txt"
    vocabulary.write_text("\n".join(VOCAB) + "\n")
    settings = DataSettings(
        cache_dir=str(tmp_path / "cache"), vocabulary=str(vocabulary), batch_size=8, num_workers=0
    )
    return ImageNet10(root=tmp_path / "data", expected_counts=COUNTS), settings


def test_template_features_are_cached_once_and_read_back(tmp_path, monkeypatch):
    dataset, settings = tiny_image_dataset(tmp_path)
    spec = BackboneSpec.parse("tiny-random")
    data = image_dataset_features(dataset, spec, "cpu", settings)
    templates = np.asarray(data.noun_template_features)
    assert templates.shape == (len(NOUN_TEMPLATES), len(VOCAB), 128)
    assert templates.dtype == np.float32
    encoder = load_backbone(spec, "cpu").text_encoder
    for t, template in enumerate(NOUN_TEMPLATES):  # each template's own embedding, normalised
        direct = encoder.encode([template.format(w) for w in VOCAB])
        np.testing.assert_allclose(templates[t], unit(direct), atol=1e-5)
    assert set(data.info["cache_keys"]) == {"train", "test", "noun_templates"}
    cache = FeatureCache(settings.cache_dir)
    entry = cache.entry(data.info["cache_keys"]["noun_templates"])
    assert entry.manifest["fields"]["kind"] == "text-templates"
    assert entry.manifest["fields"]["templates"] == list(NOUN_TEMPLATES)
    assert not cache.problems(entry.key)  # written as every entry is: checksummed manifest

    monkeypatch.setattr(TextEncoder, "encode", fail)
    monkeypatch.setattr(laicbench.data.pipeline, "encode_images", fail)
    again = image_dataset_features(dataset, spec, "cpu", settings)
    assert isinstance(again.noun_template_features, np.memmap)
    np.testing.assert_array_equal(again.noun_template_features, templates)
    assert again.info["cache_keys"]["noun_templates"] == entry.key
    assert len(cache.entries()) == 3  # train, test, templates: the ensemble was never needed


def test_template_key_changes_with_the_template_set(tmp_path, monkeypatch):
    dataset, settings = tiny_image_dataset(tmp_path)
    spec = BackboneSpec.parse("tiny-random")
    backbone = load_backbone(spec, "cpu")
    base = cache_key(template_key_fields(backbone, VOCAB, "fp32"))
    assert base != cache_key(text_key_fields(backbone, VOCAB, "fp32"))  # not the ensemble's
    assert base == cache_key(template_key_fields(backbone, list(VOCAB), "fp32"))
    assert base != cache_key(template_key_fields(backbone, VOCAB[::-1], "fp32"))
    first = image_dataset_features(dataset, spec, "cpu", settings)
    _ = first.noun_template_features

    two = ("a photo of a {}.", "art of the {}.")
    monkeypatch.setattr(laicbench.data.pipeline, "NOUN_TEMPLATES", two)
    assert cache_key(template_key_fields(backbone, VOCAB, "fp32")) != base
    other = image_dataset_features(dataset, spec, "cpu", settings)
    assert other.noun_template_features.shape == (2, len(VOCAB), 128)
    assert other.info["cache_keys"]["noun_templates"] != first.info["cache_keys"]["noun_templates"]


def test_features_files_give_template_features_only_when_they_store_them(tmp_path):
    path = write_confounded_features(tmp_path / "with.npz", n_templates=3)
    file = FeaturesFile(path)
    assert file.lacks(Need.NOUN_TEMPLATES) is None
    data = file.load("features-file", "cpu", DataSettings())
    assert data.noun_template_features.shape == (3, 3000, 64)
    np.testing.assert_allclose(np.linalg.norm(data.noun_template_features, axis=-1), 1.0, atol=1e-6)

    arrays = dict(np.load(path))
    del arrays["noun_template_features"]
    np.savez(tmp_path / "without.npz", **arrays)
    reason = FeaturesFile(tmp_path / "without.npz").lacks(Need.NOUN_TEMPLATES)
    assert reason == "this features file stores no noun_template_features"

    arrays["noun_template_features"] = np.ones((2, 5, 64), dtype=np.float32)
    np.savez(tmp_path / "wrong.npz", **arrays)
    with pytest.raises(Exception, match=r"expected \(T, 3000, 64\)"):
        FeaturesFile(tmp_path / "wrong.npz")


# ---------------------------------------------------------------------------------------------
# a run on confounded features


@pytest.mark.slow  # three seeds of both methods: about 25 s
def test_beats_clip_kmeans_on_confounded_features(tmp_path):
    """Nouns name the classes; nuisance directions split each class four ways in the images:
    the noun-anchored kernel and its diffusion recover the classes, k-means on the images does
    not (mean ACC over 3 seeds; 500 test images, so RAD runs dense, as the reference). The
    sparse diffusion (dense_limit 0, 100 neighbours per row) does too."""
    path = write_confounded_features(tmp_path / "c.npz", n_train_per_class=200, n_test_per_class=50)
    file = FeaturesFile(path)
    data = file.load("features-file", "cpu", DataSettings())

    def accuracy(name: str, seed: int, **params) -> float:
        cls = registry.methods.get(name)
        labels = cls(**params).fit_predict(
            FeatureBundle(data, cls.needs, file.name, "cpu"), 10, seed
        )
        return cluster_accuracy(data.labels_test, labels)

    kmeans = np.mean([accuracy("clip-kmeans", seed) for seed in range(3)])
    ntk = np.mean([accuracy("ntk-sc", seed) for seed in range(3)])
    assert ntk > kmeans + 0.3, (ntk, kmeans)
    assert accuracy("ntk-sc", 0, dense_limit=0) > kmeans + 0.3
