"""Spectral clustering of the test split on a sparse k-nearest-neighbour graph.

The affinity is the symmetrised k-NN connectivity of the L2-normalised test features (laicbench's
exact cosine k-NN; 0.5 (A + A^T), as scikit-learn's ``affinity="precomputed_nearest_neighbors"``
builds it), kept sparse so that ImageNet-1K's 50,000 test images fit in memory. scikit-learn's
``spectral_embedding`` (normalised Laplacian) gives K eigenvectors; laicbench's spherical k-means
on their L2-normalised rows (Ng, Jordan and Weiss) gives the labels, in place of the Euclidean
k-means of scikit-learn's ``SpectralClustering``. Training-free; reads the test split only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from laicbench.api.features import FeatureBundle
from laicbench.api.method import Method, Resources
from laicbench.api.outputs import MethodOutputs
from laicbench.api.params import AT_LEAST_ONE, Options
from laicbench.api.registry import register_method


@register_method("spectral")
@dataclass
class Spectral(Method):
    """Spectral clustering on a sparse k-NN graph of the test features (scikit-learn)."""

    n_neighbors: int = 10
    eigen_solver: str = "arpack"
    n_init: int = 10

    version = "1"
    tags = frozenset({"training-free"})
    resources = Resources(cpus=1, gpus=0)
    param_constraints = {
        "n_neighbors": AT_LEAST_ONE,
        "eigen_solver": Options(("arpack", "lobpcg", "amg")),
        "n_init": AT_LEAST_ONE,
    }

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Labels of the test images from the spectral embedding of their k-NN graph."""
        from laicbench.cluster.knn import knn_graph

        x = np.asarray(features.image_test, dtype=np.float32)
        if len(x) <= n_clusters:
            raise ValueError(
                f"spectral clustering needs more test images ({len(x)}) than clusters "
                f"({n_clusters})"
            )
        k = min(self.n_neighbors, len(x) - 1)
        graph = knn_graph(x, k, device=features.device)
        embedding, labels = spectral_clustering_of(
            graph, n_clusters, self.eigen_solver, self.n_init, seed, features.device
        )
        self.outputs_ = MethodOutputs(representation_test=embedding)
        self.artefacts_ = {"resolved": {"n_neighbors": k}}
        return labels


def spectral_embedding_of(affinity, n_components: int, eigen_solver: str, seed: int) -> np.ndarray:
    """scikit-learn's spectral embedding (normalised Laplacian, first eigenvector kept) of a
    sparse symmetric `affinity`, float32 (n, n_components)."""
    from sklearn.manifold import spectral_embedding

    embedding = spectral_embedding(
        affinity,
        n_components=n_components,
        eigen_solver=eigen_solver,
        random_state=seed,
        drop_first=False,
    )
    return embedding.astype(np.float32)


def spectral_clustering_of(
    affinity, n_clusters: int, eigen_solver: str, n_init: int, seed: int, device: str
) -> tuple[np.ndarray, np.ndarray]:
    """(embedding, labels) of a sparse symmetric `affinity`: its spectral embedding with
    `n_clusters` components (``spectral_embedding_of``), then laicbench's spherical k-means on
    the L2-normalised rows (Ng, Jordan and Weiss); shared by the spectral methods."""
    from laicbench.cluster.kmeans import spherical_kmeans

    embedding = spectral_embedding_of(affinity, n_clusters, eigen_solver, seed)
    labels = spherical_kmeans(embedding, n_clusters, n_init=n_init, seed=seed, device=device).labels
    return embedding, labels
