"""What SSC-OMP and EnSC share: the step from a sparse self-representation of the test split
to labels (the affinity 0.5 (|C'| + |C'|^T), C' with unit rows, then laicbench's spectral
clustering on it), the record of that step, and the parameters' values in a run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from laicbench.methods.fallbacks import WithFallbacks

from laicbench.api import FeatureBundle, MethodOutputs


@dataclass
class SelfExpressiveMethod(WithFallbacks):
    """Base of the self-expressive subspace-clustering methods (not registered)."""

    def cluster_representation(
        self,
        representation,
        features: FeatureBundle,
        n_clusters: int,
        seed: int,
        resolved: dict[str, Any],
    ) -> np.ndarray:
        """Labels of the test split from its sparse self-representation (scipy (n, n)); leaves
        the spectral embedding as the representation to score and the record (`resolved`, the
        nonzeros per point, the affinity's connected components)."""
        from laicbench.methods.spectral import resolved_eigen_solver, spectral_clustering_of
        from scipy.sparse.csgraph import connected_components

        from laicbench.cluster.self_expression import self_expression_affinity

        n = representation.shape[0]
        if n <= n_clusters:
            raise ValueError(
                f"{self.name} needs more test images ({n}) than clusters ({n_clusters})"
            )
        affinity = self_expression_affinity(representation)
        embedding, labels = spectral_clustering_of(
            affinity, n_clusters, self.eigen_solver, self.n_init, seed, features.device
        )
        self.outputs_ = MethodOutputs(representation_test=embedding)
        self.artefacts_ = {
            "resolved": {**resolved, "eigen_solver": resolved_eigen_solver(self.eigen_solver, n)},
            "nonzeros_per_point": float(representation.nnz / n),
            "affinity_components": int(connected_components(affinity, directed=False)[0]),
            "selection": "none: training-free, one self-representation and one spectral "
            "clustering (the k-means restart of lowest inertia), no labels",
        }
        return labels


class SelfExpressiveStep:
    """Picklable bench job at ImageNet-1K size (50,000 x 512 synthetic test features joined into
    one graph, K = 1,000), official defaults. ``ssc-omp``: OMP (10 atoms), the spectral embedding
    and one k-means restart at full size, the restarts extrapolated to 10. ``ensc``: the elastic
    nets (gamma 50, tau 1, working set 100) of `ENSC_PROBE` points, extrapolated to 50,000; its
    spectral step is of the same size as SSC-OMP's (a sparse affinity of tens of entries per
    row), timed in that row."""

    ENSC_PROBE = 300

    def __init__(self, name: str, device: str):
        self.name, self.device = name, device

    def __call__(self) -> tuple[float, float, str]:
        from laicbench.api.bench import CONNECTED_NOISE, synthetic, timed

        n, k = 50_000, 1000
        x = synthetic(n, k, 2, noise=CONNECTED_NOISE)[0]
        if self.name == "ssc-omp":
            return self._omp_and_spectral(x, k, timed)
        from laicbench.cluster.self_expression import elastic_net_point

        xs = x.astype(np.float64)
        probe = self.ENSC_PROBE

        def solve() -> None:
            correlations = np.abs(xs[:probe] @ xs.T)
            for j in range(probe):
                correlations[j, j] = 0.0
                elastic_net_point(xs, j, correlations[j], 50.0, 1.0, 100, 40)

        t_probe = timed(solve)
        note = (
            f"elastic nets of {probe} points {t_probe:.0f} s, x {n / probe:.0f}; plus the "
            "spectral step (ssc-omp's row)"
        )
        return t_probe, t_probe * n / probe, note

    def _omp_and_spectral(self, x: np.ndarray, k: int, timed) -> tuple[float, float, str]:
        from laicbench.methods.spectral import spectral_embedding_of

        from laicbench.cluster.kmeans import spherical_kmeans
        from laicbench.cluster.self_expression import (
            omp_self_representation,
            self_expression_affinity,
        )

        out: dict[str, object] = {}
        t_omp = timed(lambda: out.update(c=omp_self_representation(x, 10, device=self.device)))
        affinity = self_expression_affinity(out["c"])
        t_embed = timed(lambda: out.update(e=spectral_embedding_of(affinity, k, "auto", 0)))
        t_kmeans = timed(
            lambda: spherical_kmeans(out["e"], k, n_init=1, seed=0, device=self.device)
        )
        note = (
            f"OMP {t_omp:.0f} s, spectral embedding {t_embed:.0f} s, k-means {t_kmeans:.0f} s "
            "per restart x 10"
        )
        measured = t_omp + t_embed + t_kmeans
        return measured, measured + 9 * t_kmeans, note
