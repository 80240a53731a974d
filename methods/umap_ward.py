"""UMAP then agglomerative clustering of the test split: the classical pipeline of Lowe et al.
("An Empirical Study into Clustering of Unseen Datasets with Self-Supervised Encoders", 2024;
code scottclowe/zs-ssl-clustering, MIT).

umap-learn reduces the test features to `n_components` dimensions (`n_neighbors` 30, `min_dist`
0, euclidean, seeded), then scikit-learn's agglomerative clustering with K clusters and
`linkage` (Ward by default: the study's generic default; its tuned choice for CLIP encoders is
average linkage, ``linkage="average"``). As in the study, UMAP is fitted on the split that is
clustered and the features are used as cached, without PCA or z-scoring.

Ward without constraints holds all pairwise distances (memory quadratic in the test split):
above `dense_limit` images it is run connectivity-constrained on the `connectivity_neighbors`-NN
graph of the UMAP embedding (sparse), and the record says so (``artefacts.resolved.agglomerative``).
Training-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from laicbench.api import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    Choice,
    FeatureBundle,
    IntRange,
    Method,
    MethodOutputs,
    Options,
    Resources,
    register_method,
)

LINKAGES = ("ward", "average", "complete", "single")


@register_method("umap-ward", aliases=("umap_ward",))
@dataclass
class UmapWard(Method):
    """UMAP to 50 dimensions, then Ward agglomerative clustering (Lowe et al. 2024)."""

    n_components: int = 50
    """Dimensions of the UMAP embedding."""
    n_neighbors: int = 30
    """UMAP's neighbourhood size."""
    min_dist: float = 0.0
    """UMAP's minimum distance between embedded points (0: tight clusters)."""
    linkage: str = "ward"
    """Agglomerative linkage: 'ward' (the study's generic default), 'average' (its tuned choice for
    CLIP), 'complete' or 'single'."""
    dense_limit: int = 20_000
    """Above this many test images the agglomerative clustering is constrained to a sparse k-NN
    graph of the embedding, since unconstrained it holds all pairwise distances."""
    connectivity_neighbors: int = 30
    """Neighbours per image of that graph (Euclidean, in the UMAP space)."""

    version = "1"
    tags = frozenset({"training-free", "heavy"})
    resources = Resources(cpus=1, gpus=0)
    param_constraints = {
        "n_components": AT_LEAST_ONE,
        "n_neighbors": AT_LEAST_ONE,
        "min_dist": NON_NEGATIVE,
        "linkage": Options(LINKAGES),
        "dense_limit": AT_LEAST_ONE,
        "connectivity_neighbors": AT_LEAST_ONE,
    }
    # UMAP's neighbours (its documentation's main parameter) and the linkage, the two choices
    # Lowe et al. tuned (Ward: their generic default; average: their choice for CLIP encoders)
    param_space = {
        "n_neighbors": IntRange(5, 100, log=True),
        "linkage": Choice(("ward", "average")),
    }

    @classmethod
    def bench_steps(cls, size: str, device: str) -> list[tuple[str, Callable]]:
        """At ImageNet-1K size: the whole method on 50,000 test images (``UmapWardStep``)."""
        if size != "imagenet":
            return []
        return [("umap-ward: 50,000 test images, K = 1,000", UmapWardStep(device))]

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Labels of the test images from agglomerative clustering of their UMAP embedding."""
        from sklearn.cluster import AgglomerativeClustering
        from sklearn.neighbors import kneighbors_graph

        x = np.asarray(features.image_test, dtype=np.float32)
        if len(x) <= max(n_clusters, 3):
            raise ValueError(
                f"UMAP + agglomerative clustering needs more test images ({len(x)}) than "
                f"clusters ({n_clusters}) and at least 4"
            )
        embedding = umap_embedding(x, self.n_components, self.n_neighbors, self.min_dist, seed)
        connectivity = None
        how = f"{self.linkage}, unconstrained"
        if len(x) > self.dense_limit:
            k = min(self.connectivity_neighbors, len(x) - 1)
            # euclidean neighbours in the UMAP space, the geometry Ward merges in (laicbench's
            # own k-NN is cosine, for features)
            connectivity = kneighbors_graph(embedding, k, include_self=False)
            how = (
                f"{self.linkage}, constrained to the {k}-NN graph of the embedding "
                f"({len(x):,} images > dense_limit {self.dense_limit:,})"
            )
        labels = AgglomerativeClustering(
            n_clusters=n_clusters, linkage=self.linkage, connectivity=connectivity
        ).fit_predict(embedding)
        self.outputs_ = MethodOutputs(representation_test=embedding)
        self.artefacts_ = {"resolved": {"agglomerative": how}}
        return labels


def umap_embedding(
    x: np.ndarray, n_components: int, n_neighbors: int, min_dist: float, seed: int
) -> np.ndarray:
    """umap-learn's euclidean embedding of `x` (n, n_components), seeded (float32)."""
    import umap

    n_neighbors = min(n_neighbors, len(x) - 1)
    reducer = umap.UMAP(
        n_components=min(n_components, len(x) - 2),
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric="euclidean",
        random_state=seed,
    )
    return reducer.fit_transform(x).astype(np.float32)


class UmapWardStep:
    """Picklable bench job: the whole method at its defaults on ImageNet-1K's test size (50,000
    synthetic images joined into one connected graph, K = 1,000), measured, not extrapolated."""

    def __init__(self, device: str):
        self.device = device

    def __call__(self) -> tuple[float, float, str]:
        from laicbench.api.bench import CONNECTED_NOISE, synthetic, timed
        from laicbench.api.features import DatasetFeatures, FeatureBundle

        n, k = 50_000, 1000
        x, y = synthetic(n, k, 1, noise=CONNECTED_NOISE)
        data = DatasetFeatures(x[:0], x, y[:0], y, [f"class {i}" for i in range(k)])
        method = UmapWard()
        bundle = FeatureBundle(data, frozenset(), "imagenet", self.device)
        seconds = timed(lambda: method.fit_predict(bundle, k, 0))
        note = f"end to end at full size; {method.artefacts_['resolved']['agglomerative']}"
        return seconds, seconds, note
