"""TAC's noun machinery, shared by TAC and the methods built on it.

``select_nouns``: k_s semantic centers by spherical k-means on the train images; each noun goes
to the center that wins a softmax over centers (no temperature); the gamma most confident nouns of
each center are kept. ``text_counterparts``: each image's soft nearest noun among the selected
ones (softmax at temperature tau over cosines, weighted sum, normalised). Both run in bounded
chunks, so no N x M or k_s x M matrix is ever whole.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from laicbench.api.features import FeatureBundle, Need
from laicbench.api.method import Method
from laicbench.api.params import AT_LEAST_ONE, Constraint
from laicbench.cluster.kmeans import spherical_kmeans
from laicbench.cluster.tensors import unit_rows

# TAC's number of semantic centers per benchmark (its filter_nouns.py comment); others use the rule.
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


def default_semantic_centers(dataset: str, n_train: int, n_clusters: int) -> int:
    """TAC's k_s for `dataset`, else max(round(n_train / 300), 3 K)."""
    if dataset in TAC_SEMANTIC_CENTERS:
        return TAC_SEMANTIC_CENTERS[dataset]
    return max(round(n_train / 300), 3 * n_clusters)


def normalise(x: np.ndarray | torch.Tensor, device: str = "cpu") -> torch.Tensor:
    """Rows of `x` as an L2-normalised float32 tensor on `device`."""
    return unit_rows(x, device)


@dataclass(frozen=True)
class NounSelection:
    """Selected noun indices (increasing) and the image clustering that chose them."""

    indices: np.ndarray
    center_labels: np.ndarray
    centers: np.ndarray


def select_nouns(
    images: np.ndarray,
    nouns: np.ndarray,
    n_centers: int,
    gamma: int = 5,
    *,
    seed: int = 0,
    n_init: int = 10,
    max_iter: int = 300,
    points_per_centroid: int | None = 256,
    device: str = "cpu",
    noun_chunk: int = 16384,
) -> NounSelection:
    """TAC's discriminative noun selection (tac.md section 3, step A)."""
    x = normalise(images, device)
    n_centers = min(n_centers, len(x))
    result = spherical_kmeans(
        x,
        n_centers,
        n_init=n_init,
        max_iter=max_iter,
        seed=seed,
        device=device,
        points_per_centroid=points_per_centroid,
    )
    labels = torch.as_tensor(result.labels, device=device)
    centers = torch.zeros(n_centers, x.shape[1], device=device).index_add_(0, labels, x)
    centers = F.normalize(centers, dim=1)  # mean of all assigned images, as TAC recomputes it
    winner = np.empty(len(nouns), dtype=np.int64)
    confidence = np.empty(len(nouns), dtype=np.float32)
    for start in range(0, len(nouns), noun_chunk):
        block = normalise(nouns[start : start + noun_chunk], device)
        probs = torch.softmax(centers @ block.T, dim=0)  # over centers, no temperature
        conf, win = probs.max(dim=0)
        winner[start : start + len(block)] = win.cpu().numpy()
        confidence[start : start + len(block)] = conf.cpu().numpy()
    order = np.lexsort((-confidence, winner))  # by center, most confident first
    sorted_winner = winner[order]
    first = np.searchsorted(sorted_winner, sorted_winner, side="left")
    rank = np.arange(len(order)) - first
    indices = np.sort(order[rank < gamma])
    return NounSelection(indices, result.labels, centers.cpu().numpy())


def text_counterparts(
    images: np.ndarray,
    selected_nouns: np.ndarray,
    tau: float = 0.005,
    *,
    device: str = "cpu",
    chunk: int = 8192,
    return_nearest: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Each image's text counterpart t_i = normalise(softmax(<x_i, n_j> / tau) @ N).

    With `return_nearest`, also the index (into `selected_nouns`) of each image's best noun.
    """
    nouns = normalise(selected_nouns, device)
    out = np.empty((len(images), nouns.shape[1]), dtype=np.float32)
    nearest = np.empty(len(images), dtype=np.int64)
    for start in range(0, len(images), chunk):
        logits = normalise(images[start : start + chunk], device) @ nouns.T / tau
        weights = torch.softmax(logits, dim=1)
        out[start : start + len(logits)] = F.normalize(weights @ nouns, dim=1).cpu().numpy()
        nearest[start : start + len(logits)] = logits.argmax(dim=1).cpu().numpy()
    return (out, nearest) if return_nearest else out


class NounSelectingMethod(Method):
    """Base of methods that start from TAC's noun selection (TAC, and methods built on it).

    Subclasses have the hyperparameters n_semantic_centers (None: TAC's per-dataset k_s), gamma,
    select_n_init, max_iter and points_per_centroid.
    """

    needs = frozenset({Need.NOUNS})
    param_constraints: ClassVar[dict[str, Constraint]] = {
        "n_semantic_centers": AT_LEAST_ONE,
        "gamma": AT_LEAST_ONE,
        "select_n_init": AT_LEAST_ONE,
        "max_iter": AT_LEAST_ONE,
        "points_per_centroid": AT_LEAST_ONE,
    }

    def _semantic_centers(self, features: FeatureBundle, n_clusters: int) -> int:
        if self.n_semantic_centers is not None:
            return self.n_semantic_centers
        return default_semantic_centers(features.dataset, len(features.image_train), n_clusters)

    def _select(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Selected noun features (|S|, d); records the selection in ``artefacts_``."""
        k_s = self._semantic_centers(features, n_clusters)
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
        )
        words = features.noun_words
        self.artefacts_: dict[str, Any] = {
            "resolved": {"n_semantic_centers": k_s},
            "selected_nouns": [words[i] for i in selection.indices],
        }
        self._selected_words = [words[i] for i in selection.indices]
        return np.asarray(features.noun_features)[selection.indices]

    def _cluster_nouns(self, labels: np.ndarray, nearest: np.ndarray, top: int = 5) -> dict:
        """For each cluster, its most frequent retrieved nouns with counts."""
        out = {}
        for cluster in np.unique(labels):
            counts = Counter(self._selected_words[i] for i in nearest[labels == cluster])
            out[str(int(cluster))] = [[w, c] for w, c in counts.most_common(top)]
        return out
