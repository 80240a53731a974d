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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from laicbench.methods.noun_selecting import SEMANTIC_CENTERS_SPACE, NounSelectingMethod

from laicbench.api import (
    AT_LEAST_ONE,
    POSITIVE,
    FeatureBundle,
    FloatRange,
    Resources,
    Scaled,
    merge_settings,
    register_method,
)

# TAC's training settings for its "large cluster number" datasets; 20 epochs, batch 512 and
# temperature 0.5 elsewhere
TAC_LARGE_CLUSTER_SETTINGS = {"epochs": 100, "batch_size": 8192, "temperature": 5.0}
TAC_TRAINING_DEFAULTS = {"epochs": 20, "batch_size": 512, "temperature": 0.5}
RETRIEVAL_TAU_SPACE = FloatRange(1e-3, 0.05, log=True)


@register_method("tac-notrain", aliases=("tac_notrain", "tac-nt"))
@dataclass
class TacNoTrain(NounSelectingMethod):
    """TAC without training: k-means on [image; retrieved-noun counterpart] of the test split."""

    tau: float = 0.005
    """Temperature of the softmax over the selected nouns that weights each image's text
    counterpart (TAC's 0.005: nearly the nearest noun)."""
    n_init: int = 20
    """Restarts of the final k-means on [image; counterpart]."""

    version = "1"
    tags = frozenset({"training-free"})
    resources = Resources(cpus=1, gpus=0.25)
    param_constraints = {
        **NounSelectingMethod.param_constraints,
        "tau": POSITIVE,
        "n_init": AT_LEAST_ONE,
    }
    # TAC's k_s and its retrieval temperature tau (official 0.005; GradNorm's per-dataset values
    # 0.006-0.01 lie inside)
    param_space = {"tau": RETRIEVAL_TAU_SPACE, "n_semantic_centers": SEMANTIC_CENTERS_SPACE}

    @classmethod
    def bench_steps(cls, size: str, device: str) -> list[tuple[str, Callable]]:
        """Noun selection, then the text counterparts of every train image (ImageNet-1K)."""
        from laicbench.api.bench import PrimitiveStep

        extra = [PrimitiveStep.job("counterparts", device)] if size == "imagenet" else []
        return super().bench_steps(size, device) + extra

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Cluster the test split on the concatenation of images and their counterparts."""
        from laicbench.cluster.kmeans import spherical_kmeans
        from laicbench.cluster.nouns import normalise, text_counterparts

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


@register_method("tac")
@dataclass
class Tac(NounSelectingMethod):
    """TAC with its text and image cluster heads trained by cross-modal mutual distillation."""

    tau: float = 0.005
    """Temperature of the softmax over the selected nouns that weights each image's text
    counterpart (TAC's 0.005: nearly the nearest noun)."""
    n_neighbors: int = 50
    """Exact nearest neighbours mined per train image in each space (image, counterpart); each step
    pairs an image with one of them at random."""
    epochs: int | None = None
    """Training epochs of the two heads (None: TAC's per-dataset value, else 20)."""
    batch_size: int | None = None
    """Train images per step, the last incomplete batch dropped; shrunk to the train split when
    larger (None: TAC's per-dataset value, else 512)."""
    temperature: float | None = None
    """Temperature of the cross-modal cluster-contrastive distillation (None: TAC's per-dataset
    value, else 0.5)."""
    entropy_weight: float = 5.0
    """Weight of the entropy term that keeps the clusters balanced (TAC's 5)."""
    lr: float = 1e-3
    """Adam learning rate of both heads (betas 0.9, 0.99)."""
    hidden: int | None = None
    """Width of each head's hidden layer (None: the feature width, as TAC's code)."""

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
    # TAC's k_s and both temperatures: retrieval (tau) and distillation (0.5, or 5.0 on its
    # large-cluster datasets: a multiple of the run's value)
    param_space = {
        "tau": RETRIEVAL_TAU_SPACE,
        "n_semantic_centers": SEMANTIC_CENTERS_SPACE,
        "temperature": Scaled(0.2, 5.0),
    }
    dataset_settings: ClassVar[dict[str, dict[str, Any]]] = merge_settings(
        NounSelectingMethod.dataset_settings,
        {dataset: TAC_LARGE_CLUSTER_SETTINGS for dataset in ("ucf101", "imagenet")},
    )

    @classmethod
    def bench_steps(cls, size: str, device: str) -> list[tuple[str, Callable]]:
        """Noun selection, counterparts, the exact k-NN of both spaces and head training at
        ImageNet-1K size."""
        from laicbench.api.bench import PrimitiveStep

        if size != "imagenet":
            return []
        steps = [PrimitiveStep.job(s, device) for s in ("counterparts", "knn")]
        return (
            super().bench_steps(size, device)
            + steps
            + [("tac: cluster-head training", TacHeadsStep(device))]
        )

    @classmethod
    def value_in_run(cls, name: str, dataset: str, n_train: int, n_clusters: int) -> Any:
        """The training parameters left at None by ``training_config``; others as the base's."""
        if name in TAC_TRAINING_DEFAULTS:
            return cls().training_config(dataset, n_train)[name]
        return super().value_in_run(name, dataset, n_train, n_clusters)

    def training_config(self, dataset: str, n_train: int) -> dict[str, Any]:
        """Epochs, batch size and distillation temperature: TAC's per-dataset values unless set.

        UCF101 and ImageNet ("large cluster number"): 100, 8192, 5.0; others 20, 512, 0.5. The
        batch never exceeds the train split, so drop_last always leaves at least one step.
        """
        config = {
            name: self.resolved(name, dataset, default)
            for name, default in TAC_TRAINING_DEFAULTS.items()
        }
        config["batch_size"] = min(config["batch_size"], n_train)
        return config

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Train both heads on the train split; the image head labels the test split."""
        import torch

        from laicbench.cluster.heads import ClusterHead, tac_loss
        from laicbench.cluster.knn import cosine_knn
        from laicbench.cluster.nouns import normalise, text_counterparts
        from laicbench.cluster.training import as_floats

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
            totals: dict[str, torch.Tensor] = {}
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
                for key, value in parts.items():
                    totals[key] = totals[key] + value if key in totals else value
            history.append({key: value / steps for key, value in as_floats(totals).items()})
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


class TacHeadsStep:
    """Picklable bench job: TAC's head training at ImageNet-1K size (K = 1,000, batch 8,192),
    10 steps timed and extrapolated to its 100 epochs (15,600 steps)."""

    def __init__(self, device: str):
        self.device = device

    def __call__(self) -> tuple[float, float, str]:
        import torch

        from laicbench.api.bench import DIM, timed
        from laicbench.cluster.heads import ClusterHead, tac_loss

        device = self.device
        heads = (ClusterHead(DIM, 1000).to(device), ClusterHead(DIM, 1000).to(device))
        opt = torch.optim.Adam([p for h in heads for p in h.parameters()], betas=(0.9, 0.99))
        steps = 10

        def train():
            for _ in range(steps):
                batch = tuple(torch.randn(8192, DIM, device=device) for _ in range(4))
                loss, _ = tac_loss(heads, batch, 5.0, 5.0)
                opt.zero_grad()
                loss.backward()
                opt.step()

        seconds = timed(train)
        return seconds, seconds * 15_600 / steps, f"{steps} steps of batch 8,192; x 15,600 steps"
