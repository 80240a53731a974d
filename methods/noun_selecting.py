"""The base of the methods built on TAC's noun selection (TAC, and the 2026 method): its five
parameters, declared once, TAC's per-dataset number of semantic centers, and the selection."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from laicbench.api import (
    AT_LEAST_ONE,
    Constraint,
    FeatureBundle,
    FloatRange,
    Method,
    Need,
    Scaled,
)

# TAC's number of semantic centers k_s per benchmark (its filter_nouns.py comment); other datasets
# use max(round(N_train / 300), 3 K).
TAC_SEMANTIC_CENTERS = {
    "cifar10": 167,
    "cifar20": 167,
    "stl10": 17,
    "imagenet10": 43,
    "imagenet-dogs": 65,
    "dtd": 141,
    "ucf101": 303,
    "imagenet": 4271,
}
# k_s in a search: its scale is the dataset's (17 on STL-10, 4,271 on ImageNet-1K), so a
# multiple of the run's own value, from a quarter to four times
SEMANTIC_CENTERS_SPACE = Scaled(0.25, 4.0)


@dataclass
class NounSelectingMethod(Method):
    """Base of methods that start from TAC's noun selection."""

    n_semantic_centers: int | None = None
    """k_s, the number of semantic centers: k-means clusters of the train images, each of which
    keeps its own nouns (None: the method's per-dataset value, else TAC's rule max(round(N_train /
    300), 3 K); ntk-sc: 3 K)."""
    gamma: int = 5
    """Nouns kept per semantic center: those it wins with the highest score."""
    select_n_init: int = 10
    """k-means restarts of the semantic centers."""
    max_iter: int = 300
    """Lloyd iterations per k-means restart at most (the semantic centers' k-means and the method's
    own)."""
    points_per_centroid: int | None = 256
    """The k-means centers are fitted on a seeded subsample of this many train images per center
    (faiss's max_points_per_centroid, as TAC); None: all images."""

    needs = frozenset({Need.NOUNS})
    param_constraints: ClassVar[dict[str, Constraint]] = {
        "n_semantic_centers": AT_LEAST_ONE,
        "gamma": AT_LEAST_ONE,
        "select_n_init": AT_LEAST_ONE,
        "max_iter": AT_LEAST_ONE,
        "points_per_centroid": AT_LEAST_ONE,
    }
    dataset_settings: ClassVar[dict[str, dict[str, Any]]] = {
        dataset: {"n_semantic_centers": k} for dataset, k in TAC_SEMANTIC_CENTERS.items()
    }

    @classmethod
    def bench_steps(cls, size: str, device: str) -> list[tuple[str, Callable]]:
        """At ImageNet-1K size: the k-means of k_s = 4,271 centers and the noun assignment."""
        from laicbench.api.bench import PrimitiveStep

        if size != "imagenet":
            return []
        return [PrimitiveStep.job(s, device) for s in ("kmeans_select", "noun_assignment")]

    @classmethod
    def value_in_run(cls, name: str, dataset: str, n_train: int, n_clusters: int) -> Any:
        """k_s by ``semantic_centers`` (TAC's per-dataset value or rule); others as Method's."""
        if name == "n_semantic_centers":
            return cls().semantic_centers(dataset, n_train, n_clusters)
        return super().value_in_run(name, dataset, n_train, n_clusters)

    def semantic_centers(self, dataset: str, n_train: int, n_clusters: int) -> int:
        """k_s of a run on `dataset` with `n_train` train images and K = `n_clusters`."""
        return self.resolved(
            "n_semantic_centers", dataset, max(round(n_train / 300), 3 * n_clusters)
        )

    def _selection_rule(self) -> dict[str, Any]:
        """How nouns are assigned and ranked: extra keyword arguments of ``select_nouns``
        (``temperature``, ``score``). None here: TAC's rule (no temperature, confidence)."""
        return {}

    def _select(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Selected noun features (|S|, d); records the selection in ``artefacts_``."""
        indices = self._selected_indices(features, n_clusters, seed)
        return np.asarray(features.noun_features)[indices]

    def _selected_indices(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Indices of the selected nouns in the noun bank; records the selection in
        ``artefacts_`` (resolved k_s, the selected words)."""
        from laicbench.cluster.nouns import select_nouns

        k_s = self.semantic_centers(features.dataset, len(features.image_train), n_clusters)
        selection = select_nouns(
            features.image_train,
            features.noun_features,
            k_s,
            self.gamma,
            seed=seed,
            n_init=self.select_n_init,
            max_iter=self.max_iter,
            points_per_centroid=self.points_per_centroid,
            device=features.device,
            **self._selection_rule(),
        )
        words = features.noun_words
        self.artefacts_: dict[str, Any] = {
            "resolved": {"n_semantic_centers": k_s},
            "selected_nouns": [words[i] for i in selection.indices],
        }
        self._selected_words = [words[i] for i in selection.indices]
        return selection.indices

    def _cluster_nouns(self, labels: np.ndarray, nearest: np.ndarray, top: int = 5) -> dict:
        """For each cluster, its most frequent retrieved nouns with counts."""
        out = {}
        for cluster in np.unique(labels):
            counts = Counter(self._selected_words[i] for i in nearest[labels == cluster])
            out[str(int(cluster))] = [[w, c] for w, c in counts.most_common(top)]
        return out


class CounterpartTrainingMethod(NounSelectingMethod):
    """The base of the methods that train on TAC's selected nouns and text counterparts
    (``sac``, ``magic``): their search space (the retrieval temperature `tau`, k_s and a
    distillation or contrast temperature), `tau`'s default of 0.005 where no per-dataset value
    is given, and their ImageNet-1K bench steps (TAC's selection, counterparts and k-NN, then
    ``training_step``: its label and the module-level builder of one step, so that it pickles)."""

    DEFAULT_TAU: ClassVar[float] = 0.005
    param_space = {
        "tau": FloatRange(1e-3, 0.1, log=True),
        "n_semantic_centers": SEMANTIC_CENTERS_SPACE,
        "temperature": FloatRange(0.5, 2.5),
    }
    training_step: ClassVar[tuple[str, Callable[[str], Callable[[], None]]]]

    @classmethod
    def value_in_run(cls, name: str, dataset: str, n_train: int, n_clusters: int) -> Any:
        """tau: its per-dataset value, else 0.005; others as the base's."""
        if name == "tau":
            return cls().resolved("tau", dataset, cls.DEFAULT_TAU)
        return super().value_in_run(name, dataset, n_train, n_clusters)

    @classmethod
    def bench_steps(cls, size: str, device: str) -> list[tuple[str, Callable]]:
        """At ImageNet-1K size: TAC's selection, counterparts and k-NN, and the method's
        training (100 epochs of 8,192: 15,600 steps)."""
        from laicbench.api.bench import PrimitiveStep, RepeatedStep

        if size != "imagenet":
            return []
        shared = [PrimitiveStep.job(s, device) for s in ("counterparts", "knn")]
        label, build = cls.training_step
        training = RepeatedStep(build, device, 15_600, "a step of batch 8,192")
        return [*super().bench_steps(size, device), *shared, (label, training)]
