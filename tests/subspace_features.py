"""A features-file generator where the classes are a union of linear subspaces (the model of
subspace clustering; cf. the subspace-clustering literature's random model): each class spans
a random `subspace_dim`-dimensional subspace of R^dim, its points are uniform on that
subspace's unit sphere, plus Gaussian noise. Points of different classes can be close in
angle, so proximity alone misleads while the subspaces separate the classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def union_of_subspaces(
    rng: np.random.Generator, n_per_class: int, bases: np.ndarray, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """(points (K n, dim) float32, labels) drawn from the subspaces of `bases` (K, dim, s)."""
    k, dim, s = bases.shape
    coefficients = rng.standard_normal((k, s, n_per_class))
    coefficients /= np.linalg.norm(coefficients, axis=1, keepdims=True)
    points = np.einsum("kds,ksn->knd", bases, coefficients).reshape(-1, dim)
    points += noise * rng.standard_normal(points.shape)
    return points.astype(np.float32), np.repeat(np.arange(k), n_per_class)


def write_subspace_features(
    path: Path,
    *,
    seed: int = 0,
    dim: int = 30,
    subspace_dim: int = 4,
    n_classes: int = 5,
    n_train_per_class: int = 200,
    n_test_per_class: int = 60,
    noise: float = 0.02,
) -> Path:
    """Write a features file (image and label arrays, class names) to `path` and return it."""
    rng = np.random.default_rng(seed)
    bases = np.linalg.qr(rng.standard_normal((n_classes, dim, subspace_dim)))[0]
    x_train, y_train = union_of_subspaces(rng, n_train_per_class, bases, noise)
    x_test, y_test = union_of_subspaces(rng, n_test_per_class, bases, noise)
    np.savez(
        path,
        image_train=x_train,
        image_test=x_test,
        labels_train=y_train,
        labels_test=y_test,
        class_names=np.array([f"subspace {i}" for i in range(n_classes)]),
    )
    return path
