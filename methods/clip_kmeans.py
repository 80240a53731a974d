"""CLIP K-means: spherical k-means on the image features of the test split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from laicbench.api import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    FeatureBundle,
    IntRange,
    Method,
    Resources,
    register_method,
)


@register_method("clip-kmeans", aliases=("kmeans", "clip_kmeans"))
@dataclass
class ClipKMeans(Method):
    """Spherical k-means (K = number of classes) on L2-normalised test image features."""

    n_init: int = 10
    """k-means restarts, each from its own greedy k-means++ seeding; the restart with the highest
    objective (sum of cosines to the centers) is kept."""
    max_iter: int = 300
    """Lloyd iterations per restart at most."""
    tol: float = 1e-4
    """A restart stops once its objective improves by less than this fraction."""

    version = "1"
    tags = frozenset({"training-free"})
    resources = Resources(cpus=1, gpus=0)
    param_constraints = {"n_init": AT_LEAST_ONE, "max_iter": AT_LEAST_ONE, "tol": NON_NEGATIVE}
    # the restarts: k-means' one choice that changes its result (scikit-learn's default 10)
    param_space = {"n_init": IntRange(1, 50, log=True)}

    @classmethod
    def bench_steps(cls, size: str, device: str) -> list[tuple[str, Callable]]:
        """At ImageNet-1K size: spherical k-means with K = 1,000."""
        from laicbench.api.bench import PrimitiveStep

        return [PrimitiveStep.job("kmeans_pseudo", device)] if size == "imagenet" else []

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Labels of the test images from spherical k-means with `n_clusters` centers."""
        from laicbench.cluster.kmeans import spherical_kmeans

        result = spherical_kmeans(
            features.image_test,
            n_clusters,
            n_init=self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            seed=seed,
            device=features.device,
        )
        return result.labels
