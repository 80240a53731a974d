"""CLIP K-means: spherical k-means on the image features of the test split."""

from __future__ import annotations

import numpy as np

from laicbench.api.features import FeatureBundle
from laicbench.api.method import Method, Resources
from laicbench.api.params import AT_LEAST_ONE, NON_NEGATIVE
from laicbench.api.registry import register_method
from laicbench.cluster.kmeans import spherical_kmeans


@register_method("clip-kmeans", aliases=("kmeans", "clip_kmeans"))
class ClipKMeans(Method):
    """Spherical k-means (K = number of classes) on L2-normalised test image features."""

    version = "1"
    resources = Resources(cpus=1, gpus=0)
    param_constraints = {"n_init": AT_LEAST_ONE, "max_iter": AT_LEAST_ONE, "tol": NON_NEGATIVE}

    def __init__(self, n_init: int = 10, max_iter: int = 300, tol: float = 1e-4):
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Labels of the test images from spherical k-means with `n_clusters` centers."""
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
