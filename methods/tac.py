"""TAC, "Image Clustering with External Guidance" (Li et al., ICML 2024), as its official code.

``tac-notrain``: select discriminative nouns on the train split, give every image a text
counterpart (soft nearest selected noun), spherical k-means with K on [x; t] of the test split.

``tac``: the same counterparts for the train split, 50 exact neighbours per train sample in image
space and in counterpart space, a text head and an image head (Linear, BatchNorm, ReLU, Linear,
Softmax) trained with cross-modal cluster-contrastive distillation, a consistency term and an
entropy term (weights 1, 1, 5), Adam(lr 1e-3, betas (0.9, 0.99)); the image head predicts the test
split. Hyperparameters left at None take TAC's per-dataset values (../shared/reference/tac.md).

Differences from the official code, on purpose: laicbench's one k-means (torch, greedy k-means++
init) replaces faiss (random init), keeping faiss's 256-points-per-centroid subsampling; all
arithmetic is fp32 (TAC: fp16 on GPU); neighbour mining excludes each sample itself exactly
(TAC drops rank 0, which is not always the sample when counterparts coincide); the zero-step case
of drop_last is guarded by shrinking the batch to the train split's size.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from laicbench.api.features import FeatureBundle
from laicbench.api.method import Resources
from laicbench.api.params import AT_LEAST_ONE, POSITIVE
from laicbench.api.registry import register_method
from laicbench.cluster.kmeans import spherical_kmeans
from laicbench.cluster.knn import cosine_knn
from laicbench.cluster.nouns import NounSelectingMethod, normalise, text_counterparts

LARGE_CLUSTER_DATASETS = ("ucf101", "imagenet")


@register_method("tac-notrain", aliases=("tac_notrain", "tac-nt"))
class TacNoTrain(NounSelectingMethod):
    """TAC without training: k-means on [image; retrieved-noun counterpart] of the test split."""

    version = "1"
    resources = Resources(cpus=1, gpus=0.25)
    param_constraints = {
        **NounSelectingMethod.param_constraints,
        "tau": POSITIVE,
        "n_init": AT_LEAST_ONE,
    }

    def __init__(
        self,
        n_semantic_centers: int | None = None,
        gamma: int = 5,
        tau: float = 0.005,
        select_n_init: int = 10,
        n_init: int = 20,
        max_iter: int = 300,
        points_per_centroid: int | None = 256,
    ):
        self.n_semantic_centers = n_semantic_centers
        self.gamma = gamma
        self.tau = tau
        self.select_n_init = select_n_init
        self.n_init = n_init
        self.max_iter = max_iter
        self.points_per_centroid = points_per_centroid

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Cluster the test split on the concatenation of images and their counterparts."""
        selected = self._select(features, n_clusters, seed)
        x = normalise(features.image_test).numpy()
        t, nearest = text_counterparts(
            x, selected, self.tau, device=features.device, return_nearest=True
        )
        z = np.concatenate([x, t], axis=1)
        labels = spherical_kmeans(
            z,
            n_clusters,
            n_init=self.n_init,
            max_iter=self.max_iter,
            seed=seed,
            device=features.device,
            points_per_centroid=self.points_per_centroid,
        ).labels
        self.artefacts_["cluster_nouns"] = self._cluster_nouns(labels, nearest)
        return labels


class ClusterHead(nn.Module):
    """Linear -> BatchNorm -> ReLU -> Linear -> Softmax, weights trunc_normal(std 0.02).

    The hidden width defaults to the input width, as in TAC's code (512 for ViT-B/32).
    """

    def __init__(self, in_dim: int, n_clusters: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or in_dim
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_clusters),
        )
        for layer in (self.net[0], self.net[3]):
            nn.init.trunc_normal_(layer.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cluster probabilities (B, K)."""
        return torch.softmax(self.net(x), dim=1)


def cluster_contrastive(p: torch.Tensor, q: torch.Tensor, temperature: float) -> torch.Tensor:
    """Contrastive Clustering's cluster-level loss between assignment matrices p, q (B, K).

    Columns are L2-normalised over the batch; column c of p and of q are positives, the other
    2K - 2 columns negatives; the mean over all 2K columns of -log softmax(positive).
    """
    k = p.shape[1]
    c = F.normalize(torch.cat([p.T, q.T], dim=0), dim=1)
    sim = c @ c.T / temperature
    sim = sim.masked_fill(torch.eye(2 * k, dtype=torch.bool, device=sim.device), -math.inf)
    positive = torch.cat([torch.arange(k, 2 * k), torch.arange(k)]).to(sim.device)
    return F.cross_entropy(sim, positive)


def consistency(p_text: torch.Tensor, p_image: torch.Tensor) -> torch.Tensor:
    """-mean log <p_text_i, p_image_i>, with the log clamped at -100 (binary cross-entropy)."""
    dot = (p_text * p_image).sum(dim=1)
    return F.binary_cross_entropy(dot.clamp(0, 1), torch.ones_like(dot))


def batch_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy of the batch-mean assignment (probabilities clamped at 1e-9)."""
    mean = p.mean(dim=0).clamp_min(1e-9)
    return -(mean * mean.log()).sum()


def tac_loss(
    heads: tuple[ClusterHead, ClusterHead],
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    temperature: float,
    entropy_weight: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """TAC's loss on one batch (text, image, text neighbour, image neighbour); returns parts."""
    text_head, image_head = heads
    text, image, text_nb, image_nb = batch
    p_t, p_v = text_head(text), image_head(image)
    p_t_nb, p_v_nb = text_head(text_nb), image_head(image_nb)
    distill = cluster_contrastive(p_v, p_t_nb, temperature) + cluster_contrastive(
        p_t, p_v_nb, temperature
    )
    consist = consistency(p_t, p_v)
    entropy = batch_entropy(p_t) + batch_entropy(p_v)
    loss = distill + consist - entropy_weight * entropy
    parts = {"distill": distill.item(), "consistency": consist.item(), "entropy": entropy.item()}
    return loss, parts


@register_method("tac")
class Tac(NounSelectingMethod):
    """TAC with its text and image cluster heads trained by cross-modal mutual distillation."""

    version = "2"  # 2: hidden width = input width, as TAC's code
    resources = Resources(cpus=1, gpus=0.25)
    param_constraints = {
        **NounSelectingMethod.param_constraints,
        "tau": POSITIVE,
        "n_neighbors": AT_LEAST_ONE,
        "epochs": AT_LEAST_ONE,
        "batch_size": AT_LEAST_ONE,
        "temperature": POSITIVE,
        "lr": POSITIVE,
        "hidden": AT_LEAST_ONE,
    }

    def __init__(
        self,
        n_semantic_centers: int | None = None,
        gamma: int = 5,
        tau: float = 0.005,
        select_n_init: int = 10,
        max_iter: int = 300,
        points_per_centroid: int | None = 256,
        n_neighbors: int = 50,
        epochs: int | None = None,
        batch_size: int | None = None,
        temperature: float | None = None,
        entropy_weight: float = 5.0,
        lr: float = 1e-3,
        hidden: int | None = None,
    ):
        self.n_semantic_centers = n_semantic_centers
        self.gamma = gamma
        self.tau = tau
        self.select_n_init = select_n_init
        self.max_iter = max_iter
        self.points_per_centroid = points_per_centroid
        self.n_neighbors = n_neighbors
        self.epochs = epochs
        self.batch_size = batch_size
        self.temperature = temperature
        self.entropy_weight = entropy_weight
        self.lr = lr
        self.hidden = hidden

    def training_config(self, dataset: str, n_train: int) -> dict[str, Any]:
        """Epochs, batch size and distillation temperature: TAC's per-dataset values unless set.

        UCF101 and ImageNet ("large cluster number"): 100, 8192, 5.0; others 20, 512, 0.5. The
        batch never exceeds the train split, so drop_last always leaves at least one step.
        """
        large = dataset in LARGE_CLUSTER_DATASETS
        batch = self.batch_size or (8192 if large else 512)
        return {
            "epochs": self.epochs or (100 if large else 20),
            "batch_size": min(batch, n_train),
            "temperature": self.temperature or (5.0 if large else 0.5),
        }

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Train both heads on the train split; the image head labels the test split."""
        device = features.device
        selected = self._select(features, n_clusters, seed)
        x_train = normalise(features.image_train).numpy()
        t_train = text_counterparts(x_train, selected, self.tau, device=device)
        config = self.training_config(features.dataset, len(x_train))
        self.artefacts_["resolved"].update(config)
        k = min(self.n_neighbors, len(x_train) - 1)
        nb_text = torch.as_tensor(cosine_knn(t_train, k, device=device)[0], device=device)
        nb_image = torch.as_tensor(cosine_knn(x_train, k, device=device)[0], device=device)

        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        dim = x_train.shape[1]
        heads = (
            ClusterHead(dim, n_clusters, self.hidden),
            ClusterHead(dim, n_clusters, self.hidden),
        )
        heads = tuple(h.to(device) for h in heads)
        params = [p for h in heads for p in h.parameters()]
        optimiser = torch.optim.Adam(params, lr=self.lr, betas=(0.9, 0.99))
        text = torch.as_tensor(t_train, device=device)
        image = torch.as_tensor(x_train, device=device)
        n, batch = len(x_train), config["batch_size"]
        history = []
        for _ in range(config["epochs"]):
            for h in heads:
                h.train()
            order = torch.randperm(n, generator=gen).to(device)
            totals = Counter()
            steps = n // batch  # drop_last
            for step in range(steps):
                idx = order[step * batch : (step + 1) * batch]
                pick_t = torch.randint(k, (len(idx),), generator=gen).to(device)
                pick_v = torch.randint(k, (len(idx),), generator=gen).to(device)
                loss, parts = tac_loss(
                    heads,
                    (
                        text[idx],
                        image[idx],
                        text[nb_text[idx, pick_t]],
                        image[nb_image[idx, pick_v]],
                    ),
                    config["temperature"],
                    self.entropy_weight,
                )
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                totals.update(parts)
            history.append({key: value / steps for key, value in totals.items()})
        self.artefacts_["loss_history"] = history

        image_head = heads[1].eval()
        x_test = normalise(features.image_test, device)
        with torch.no_grad():
            labels = (
                torch.cat(
                    [
                        image_head(x_test[i : i + 65536]).argmax(dim=1)
                        for i in range(0, len(x_test), 65536)
                    ]
                )
                .cpu()
                .numpy()
            )
        _, nearest = text_counterparts(
            x_test.cpu().numpy(), selected, self.tau, device=device, return_nearest=True
        )
        self.artefacts_["cluster_nouns"] = self._cluster_nouns(labels, nearest)
        return labels
