"""TAC's noun machinery, shared by TAC and the methods built on it.

``select_nouns``: k_s semantic centers by spherical k-means on the train images; each noun goes
to the center that wins a softmax over centers (no temperature); the gamma most confident nouns of
each center are kept (a temperature and another per-noun score, ``NounScore``, such as GradNorm's
gradient norm, can replace TAC's, the rest of the selection staying as it is).
``text_counterparts``: each image's soft nearest noun among the selected ones (softmax at
temperature tau over cosines, weighted sum, normalised). Both run in bounded chunks, so no N x M
or k_s x M matrix is ever whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from laicbench.cluster.kmeans import spherical_kmeans
from laicbench.cluster.tensors import label_sums, unit_rows


def normalise(x: np.ndarray | torch.Tensor, device: str = "cpu") -> torch.Tensor:
    """Rows of `x` as an L2-normalised float32 tensor on `device`."""
    return unit_rows(x, device)


# (softmax over centers (k_s, m), the m unit nouns (m, d)) -> one score per noun (m,): each
# center keeps its gamma highest-scoring nouns
NounScore = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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
    temperature: float = 1.0,
    score: NounScore | None = None,
) -> NounSelection:
    """TAC's discriminative noun selection (tac.md section 3, step A).

    Each noun goes to the center that wins the softmax over centers of its cosines divided by
    `temperature` (TAC: 1, none); each center keeps the `gamma` of its nouns with the highest
    `score` (None: TAC's, the winning probability).
    """
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
    # the mean of all assigned images, as TAC recomputes it (sums: deterministic on a GPU too)
    centers = F.normalize(label_sums(x, labels, n_centers), dim=1)
    winner = np.empty(len(nouns), dtype=np.int64)
    confidence = np.empty(len(nouns), dtype=np.float32)
    for start in range(0, len(nouns), noun_chunk):
        block = normalise(nouns[start : start + noun_chunk], device)
        logits = centers @ block.T
        if temperature != 1.0:
            logits = logits / temperature
        probs = torch.softmax(logits, dim=0)  # over centers (TAC: no temperature)
        conf, win = probs.max(dim=0)
        if score is not None:
            conf = score(probs, block).to(torch.float32)
        winner[start : start + len(block)] = win.cpu().numpy()
        confidence[start : start + len(block)] = conf.cpu().numpy()
    order = np.lexsort((-confidence, winner))  # by center, highest score first
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
