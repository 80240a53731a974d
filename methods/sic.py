"""SIC, "Semantic-Enhanced Image Clustering" (Cai, Qiu, Chen, Zhang, Chen; AAAI 2023), on cached
features. Official code: Bruce-XJChen/SIC (Apache-2.0), read and reimplemented, not copied; the
feature-level re-implementation in hyw1008/VLM4Cluster (MIT) was read for cross-checks.

What it does, on the train split:

1. Image centers: k-means with K clusters of the train images; each center is the mean of its
   members' features.
2. Semantic space construction: the union over the K centers of their `gamma_r` most
   cosine-similar nouns, intersected with the nouns whose cosine to the mean noun is below
   1 - `gamma_u` (uniqueness filter).
3. Image consistency learning: the `n_neighbors` nearest train images of each train image
   (exact cosine k-NN, laicbench's one k-NN), the image itself among the candidates.
4. A linear head Linear(d, K) on the image features (as cached: SIC uses CLIP's unnormalised
   features), optionally initialised from the k-means centers (``center_init``: weight
   2 alpha c, bias -alpha |c|^2). Before each epoch, the adjusted center-based mapping: for
   every cluster c, the image center is the normalised mean of the floor(N / K * `xi_c`) train
   images with the highest logit for c; its semantic center H_c is the normalised mean of its
   `xi_a` most cosine-similar nouns of the semantic space. Each batch of anchors, with one
   candidate drawn anew per anchor, minimises

       L = -mean_i log <p_i, p_j> - entropy_weight * H(mean_i p_i) + ce_weight * CE(logits, y)

   (image consistency, batch entropy, image-semantic consistency) with the pseudo-label
   y_i = argmax_c <x_i, H_c>. Adam (`lr`, `weight_decay`), batch `batch_size`, `epochs`.
5. The head labels the test split (argmax of its logits).

No label takes part: the epoch whose head labels the test split is chosen by ``selection``
("last": the head after the last epoch, the default; "lowest-loss": the head after the epoch
with the lowest mean training loss), recorded as ``artefacts_["selection"]``.

Defaults and per-dataset values (parameters left at None, ``dataset_settings``): the official
command-line defaults, which its comment calls the best CIFAR-10 values (gamma_u 0.05, gamma_r 500,
xi_c 0.9, xi_a 30, 20 neighbours, entropy weight 5, CE weight 0.1, Adam lr 1e-4, weight decay
1e-4, batch 128, 100 epochs, k-means with 20 restarts), used for any dataset not listed; the
official ImageNet-Dogs config's weight decay 0.009. The other datasets' gamma_r, xi_a and CE
weight (the official code points to the paper's Table 2, not read here) are VLM4Cluster's
dataset profiles, as are all ImageNet-1K values (SIC never ran ImageNet-1K): gamma_r 300, gamma_u
0.1, xi_c 0.5, xi_a 20, CE weight 0.1, entropy weight 1, lr 3e-4, batch 4,096, center_init, and
k-means fitted on 256 points per centroid (VLM4Cluster runs faiss's k-means, which samples so).

Deliberate differences from the official code:
- No test-label early stopping: the official loop evaluates the test split after every epoch,
  stops after 5 epochs without a better test ACC and reports the best test ACC. laicbench trains
  the full `epochs` and selects without labels (above).
- Cached features in place of the official encoder passes (the official head also trains on
  precomputed train features; only its test predictions re-encode the images); the semantic
  space is built from laicbench's noun bank (TAC's WordNet list, its 7-template ensemble,
  L2-normalised), not SIC's 82,113 first lemmas with the single prompt "a photo of a {noun}";
  semantic centers average normalised noun features (SIC: unnormalised text features).
- laicbench's one k-means (spherical, torch, on L2-normalised features) replaces scikit-learn's
  Euclidean KMeans; the centers are then the Euclidean means of its clusters, as KMeans's are.
- laicbench's one k-NN (exact cosine) replaces faiss's L2 search on unnormalised features.
- One head (every official config has ``num_heads: 1``), so no head selection.
- The consistency and entropy terms are laicbench's shared ones (log capped at -100 as binary
  cross-entropy caps it, mean probabilities clamped at 1e-9; SIC: no cap, 1e-8).
- The shared training loop drops the last incomplete batch (SIC keeps it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from laicbench.api import (
    AT_LEAST_ONE,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    FeatureBundle,
    Method,
    Need,
    Options,
    Resources,
    Scaled,
    register_method,
)

# the official command-line defaults (its comment: the best values for CIFAR-10), for any dataset
# without its own values
SIC_DEFAULTS: dict[str, Any] = {
    "gamma_r": 500,
    "gamma_u": 0.05,
    "xi_c": 0.9,
    "xi_a": 30,
    "entropy_weight": 5.0,
    "ce_weight": 0.1,
    "lr": 1e-4,
    "weight_decay": 1e-4,
    "batch_size": 128,
    "center_init": False,
    "kmeans_points_per_centroid": None,
}

# official: cifar10 (command-line defaults) and the ImageNet-Dogs weight decay (its config);
# the rest: VLM4Cluster's SIC dataset profiles (ImageNet-1K: its large-scale adaptation)
SIC_DATASET_SETTINGS: dict[str, dict[str, Any]] = {
    "cifar10": {"gamma_r": 500, "xi_a": 30, "ce_weight": 0.1},
    "cifar20": {"gamma_r": 200, "xi_a": 20, "ce_weight": 1.0},
    "stl10": {"gamma_r": 200, "xi_a": 20, "ce_weight": 1.0},
    "imagenet10": {"gamma_r": 500, "xi_a": 30, "ce_weight": 1.0},
    "imagenet-dogs": {"gamma_r": 1000, "xi_a": 50, "ce_weight": 1.0, "weight_decay": 0.009},
    "dtd": {"gamma_r": 500, "xi_a": 30, "ce_weight": 1.0},
    "ucf101": {"gamma_r": 500, "xi_a": 50, "ce_weight": 1.0},
    "imagenet": {
        "gamma_r": 300,
        "gamma_u": 0.1,
        "xi_c": 0.5,
        "xi_a": 20,
        "ce_weight": 0.1,
        "entropy_weight": 1.0,
        "lr": 3e-4,
        "batch_size": 4096,
        "center_init": True,
        "kmeans_points_per_centroid": 256,
    },
}


@register_method("sic")
@dataclass
class Sic(Method):
    """SIC: a linear head trained with image consistency, batch entropy and cross-entropy to
    pseudo-labels from semantic centers built of nouns."""

    gamma_r: int | None = None
    """Nouns nearest to each image center that join the semantic space (None: the per-dataset
    value, else 500)."""
    gamma_u: float | None = None
    """Uniqueness filter: a noun stays in the semantic space only when its cosine to the mean noun
    is below 1 - gamma_u (None: the per-dataset value, else 0.05)."""
    xi_c: float | None = None
    """Share of N / K train images, those with the highest logit for a cluster, whose mean is the
    cluster's image center before each epoch (None: the per-dataset value, else 0.9)."""
    xi_a: int | None = None
    """Nouns of the semantic space nearest to an image center whose mean is its semantic center
    (None: the per-dataset value, else 30)."""
    n_neighbors: int = 20
    """Nearest train images (exact cosine, the image itself among them) from which each anchor's
    consistency partner is drawn."""
    entropy_weight: float | None = None
    """Weight of the batch-entropy term that keeps the clusters balanced (None: the per-dataset
    value, else 5)."""
    ce_weight: float | None = None
    """Weight of the cross-entropy to the pseudo-labels of the semantic centers (None: the per-
    dataset value, else 0.1)."""
    lr: float | None = None
    """Adam learning rate of the head (None: the per-dataset value, else 1e-4)."""
    weight_decay: float | None = None
    """Adam weight decay of the head (None: the per-dataset value, else 1e-4)."""
    batch_size: int | None = None
    """Anchors per step, the last incomplete batch dropped (None: the per-dataset value, else
    128)."""
    epochs: int = 100
    """Training epochs of the head (all of them: no early stopping)."""
    center_init: bool | None = None
    """Initialise the head from the k-means centers c (weight 2 alpha c, bias -alpha |c|^2) instead
    of at random (None: the per-dataset value, else False)."""
    center_init_alpha: float = 0.05
    """alpha of the center initialisation (center_init)."""
    kmeans_n_init: int = 20
    """Restarts of the k-means of the image centers."""
    kmeans_max_iter: int = 300
    """Lloyd iterations per restart of that k-means at most."""
    kmeans_points_per_centroid: int | None = None
    """That k-means is fitted on a seeded subsample of this many train images per center (None: the
    per-dataset value, else all images)."""
    selection: str = "last"
    """Which head labels the test split, chosen without labels: 'last' (after the last epoch) or
    'lowest-loss' (after the epoch of lowest mean training loss)."""

    version = "1"
    needs = frozenset({Need.NOUNS})
    resources = Resources(cpus=1, gpus=0.25)
    quick_params = {"epochs": 2, "kmeans_n_init": 2}
    param_constraints = {
        "gamma_r": AT_LEAST_ONE,
        "gamma_u": FRACTION,
        "xi_c": FRACTION,
        "xi_a": AT_LEAST_ONE,
        "n_neighbors": AT_LEAST_ONE,
        "entropy_weight": NON_NEGATIVE,
        "ce_weight": NON_NEGATIVE,
        "lr": POSITIVE,
        "weight_decay": NON_NEGATIVE,
        "batch_size": AT_LEAST_ONE,
        "epochs": AT_LEAST_ONE,
        "center_init_alpha": POSITIVE,
        "kmeans_n_init": AT_LEAST_ONE,
        "kmeans_max_iter": AT_LEAST_ONE,
        "kmeans_points_per_centroid": AT_LEAST_ONE,
        "selection": Options(("last", "lowest-loss")),
    }
    dataset_settings: ClassVar[dict[str, dict[str, Any]]] = SIC_DATASET_SETTINGS
    # the learning rate and the entropy weight (official values differ by dataset: 1e-4 / 3e-4
    # and 5 / 1), as multiples of the run's value
    param_space = {"lr": Scaled(0.1, 10.0), "entropy_weight": Scaled(0.2, 5.0)}

    @classmethod
    def value_in_run(cls, name: str, dataset: str, n_train: int, n_clusters: int) -> Any:
        """SIC's parameters left at None: ``config`` (per dataset, else official defaults)."""
        if name in SIC_DEFAULTS:
            return cls().config(dataset)[name]
        return super().value_in_run(name, dataset, n_train, n_clusters)

    @classmethod
    def bench_steps(cls, size: str, device: str) -> list[tuple[str, Callable]]:
        """At ImageNet-1K size: k-means with K = 1,000, the exact k-NN of the train images and
        SIC's head training (its per-epoch centers included)."""
        from laicbench.api.bench import PrimitiveStep

        if size != "imagenet":
            return []
        steps = [PrimitiveStep.job(s, device) for s in ("kmeans_pseudo", "knn")]
        return [*steps, ("sic: head training with per-epoch centers", SicHeadStep(device))]

    def config(self, dataset: str) -> dict[str, Any]:
        """The values of the parameters left at None in a run on `dataset`: the given value,
        else SIC's value for `dataset`, else the official default."""
        return {
            name: self.resolved(name, dataset, default) for name, default in SIC_DEFAULTS.items()
        }

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Train the head on the train split; it labels the test split."""
        import torch

        from laicbench.cluster.kmeans import SINGLE_THREAD_BELOW, spherical_kmeans
        from laicbench.cluster.knn import cosine_knn
        from laicbench.cluster.tensors import as_tensor, torch_threads, unit_rows
        from laicbench.cluster.training import random_neighbour, train_epochs

        device = features.device
        cfg = self.config(features.dataset)
        x = as_tensor(features.image_train, device)  # as cached: SIC's head sees raw features
        n = len(x)
        cfg["batch_size"] = min(cfg["batch_size"], n)

        clustering = spherical_kmeans(
            x,
            n_clusters,
            n_init=self.kmeans_n_init,
            max_iter=self.kmeans_max_iter,
            seed=seed,
            device=device,
            points_per_centroid=cfg["kmeans_points_per_centroid"],
        )
        centers = cluster_means(x, torch.as_tensor(clustering.labels, device=device), n_clusters)
        nouns = unit_rows(features.noun_features, device)
        space = semantic_space(centers, nouns, cfg["gamma_r"], cfg["gamma_u"], device=device)
        if len(space) == 0:
            raise ValueError(
                "SIC's semantic space is empty: no noun near the image centers passes the "
                f"uniqueness filter (gamma_r={cfg['gamma_r']}, gamma_u={cfg['gamma_u']})"
            )
        space_nouns = nouns[torch.as_tensor(space, device=device)]
        cfg["xi_a"] = min(cfg["xi_a"], len(space))

        k = min(self.n_neighbors, n - 1)
        knn = torch.as_tensor(cosine_knn(x, k, device=device)[0], device=device)
        candidates = torch.cat([torch.arange(n, device=device)[:, None], knn], dim=1)

        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        head = torch.nn.Linear(x.shape[1], n_clusters).to(device)
        if cfg["center_init"]:
            alpha = self.center_init_alpha
            with torch.no_grad():
                head.weight.copy_(2 * alpha * centers)
                head.bias.copy_(-alpha * (centers**2).sum(dim=1))
        optimiser = torch.optim.Adam(
            head.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"]
        )
        semantic: dict[str, Any] = {}

        def step(index: torch.Tensor, _epoch: int) -> dict[str, torch.Tensor]:
            anchors = x[index]
            partners = x[random_neighbour(candidates, index, gen)]
            loss, parts = sic_loss(
                head(anchors),
                head(partners),
                anchors,
                semantic["centers"],
                cfg["entropy_weight"],
                cfg["ce_weight"],
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            return parts

        history: list[dict[str, float]] = []
        best = {"epoch": -1, "loss": float("inf")}
        # a small head trains faster on one CPU thread (thread start-up and spinning dominate),
        # by the rule of laicbench's k-means
        small = 6 * cfg["batch_size"] * x.shape[1] * n_clusters < SINGLE_THREAD_BELOW
        with torch_threads(1 if small and x.device.type == "cpu" else None):
            for epoch in range(self.epochs):
                with torch.no_grad():
                    image_centers = confident_centers(x, head, cfg["xi_c"])
                    semantic["centers"], semantic["nearest"] = semantic_centers(
                        image_centers, space_nouns, cfg["xi_a"], device=device
                    )
                history += train_epochs(step, n, cfg["batch_size"], 1, gen, device)
                loss = history[-1]["loss"]
                if self.selection == "last" or loss < best["loss"]:  # NaN never wins
                    best = {"epoch": epoch, "loss": loss}
                    best["state"] = {
                        name: value.detach().clone() for name, value in head.state_dict().items()
                    }
        head.load_state_dict(best.pop("state"))

        words = features.noun_words
        self.artefacts_: dict[str, Any] = {
            "resolved": {**cfg, "n_neighbors": k},
            "n_semantic_nouns": len(space),
            "loss_history": history,
            "selection": (
                "the head after the last epoch, no labels (SIC's test-label early stopping is "
                "not used)"
                if self.selection == "last"
                else "the head after the epoch with the lowest mean training loss, no labels "
                "(SIC's test-label early stopping is not used)"
            ),
            "selected": best,
            # the nouns nearest each semantic center of the last epoch (5 of its xi_a)
            "cluster_nouns": {
                str(c): [str(words[space[i]]) for i in row[:5]]
                for c, row in enumerate(semantic["nearest"].tolist())
            },
        }
        x_test = as_tensor(features.image_test, device)
        with torch.no_grad():
            return (
                torch.cat([head(x_test[i : i + 65536]) for i in range(0, len(x_test), 65536)])
                .argmax(dim=1)
                .cpu()
                .numpy()
            )


def cluster_means(x, labels, n_clusters: int):
    """The mean of the rows of `x` in each cluster (K, d): k-means's centers for `labels`."""
    from laicbench.cluster.tensors import label_means

    return label_means(x, labels, n_clusters)


def semantic_space(
    centers, nouns, gamma_r: int, gamma_u: float, *, device: str = "cpu"
) -> np.ndarray:
    """SIC's semantic space construction: the indices (increasing) of the nouns that are among
    the `gamma_r` most cosine-similar nouns of some image center and whose cosine to the mean
    noun feature is below 1 - `gamma_u`."""
    import torch

    from laicbench.cluster.knn import cosine_knn
    from laicbench.cluster.tensors import unit_rows

    near, _ = cosine_knn(centers, min(gamma_r, len(nouns)), keys=nouns, device=device)
    mean = unit_rows(nouns.mean(dim=0, keepdim=True), device)
    unique = (unit_rows(nouns, device) @ mean.T).squeeze(1) < 1 - gamma_u
    return np.intersect1d(near.ravel(), torch.nonzero(unique).squeeze(1).cpu().numpy())


def confident_centers(x, head, xi_c: float, chunk: int = 65536):
    """SIC's image centers (K, d), L2-normalised: for each cluster c, the mean of the
    floor(N / K * `xi_c`) (at least 1) rows of `x` with the highest logit for c. The running top
    rows per cluster are kept chunk by chunk, so no N x K matrix is whole."""
    import torch
    import torch.nn.functional as F

    from laicbench.cluster.tensors import row_means

    n, n_clusters = len(x), head.out_features
    top = max(1, int((n // n_clusters) * xi_c))
    best_val = torch.empty(n_clusters, 0, device=x.device)  # clusters x rows: topk along rows
    best_idx = torch.empty(n_clusters, 0, dtype=torch.long, device=x.device)
    for start in range(0, n, chunk):
        scores = head(x[start : start + chunk]).T.contiguous()
        rows = torch.arange(start, start + scores.shape[1], device=x.device)
        values = torch.cat([best_val, scores], dim=1)
        indices = torch.cat([best_idx, rows.expand(n_clusters, -1)], dim=1)
        best_val, order = values.topk(min(top, values.shape[1]), dim=1)
        best_idx = indices.gather(1, order)
    return F.normalize(row_means(x, best_idx), dim=1)  # gathered in blocks, deterministic


def semantic_centers(image_centers, space_nouns, xi_a: int, *, device: str = "cpu"):
    """SIC's semantic centers (K, d): the normalised mean of each image center's `xi_a` most
    cosine-similar nouns of the semantic space; also those nouns' indices (K, xi_a), nearest
    first."""
    import torch
    import torch.nn.functional as F

    from laicbench.cluster.knn import cosine_knn

    nearest, _ = cosine_knn(image_centers, xi_a, keys=space_nouns, device=device)
    nearest = torch.as_tensor(nearest, device=space_nouns.device)
    return F.normalize(space_nouns[nearest].mean(dim=1), dim=1), nearest


def pseudo_labels(features, semantic):
    """SIC's pseudo-labels: each row's semantic center of largest inner product."""
    return (features @ semantic.T).argmax(dim=1)


def sic_loss(logits, logits_partner, features, semantic, entropy_weight: float, ce_weight: float):
    """SIC's loss on one batch: image consistency -mean log <p_i, p_j> of each anchor with its
    partner, minus `entropy_weight` times the entropy of the batch-mean prediction, plus
    `ce_weight` times the cross-entropy of the anchors' logits with their pseudo-labels (from
    the anchors' `features` and the `semantic` centers). Returns (loss, its parts as detached
    0-dim tensors: ``train_epochs`` sums them on the device and reads them once per epoch)."""
    import torch
    import torch.nn.functional as F

    from laicbench.cluster.heads import batch_entropy, consistency

    p, q = torch.softmax(logits, dim=1), torch.softmax(logits_partner, dim=1)
    consist = consistency(p, q)
    entropy = batch_entropy(p)
    ce = F.cross_entropy(logits, pseudo_labels(features.detach(), semantic))
    loss = consist - entropy_weight * entropy + ce_weight * ce
    parts = {"loss": loss, "consistency": consist, "entropy": entropy, "cross_entropy": ce}
    return loss, {key: value.detach() for key, value in parts.items()}


class SicHeadStep:
    """Picklable bench job: SIC's head training at ImageNet-1K size (K = 1,000, batch 4,096,
    100 epochs of 312 steps), 10 steps timed, plus one epoch's center recomputation (head over
    all 1.28M train images, top rows per cluster, nearest nouns) measured on a slice."""

    def __init__(self, device: str):
        self.device = device

    def __call__(self) -> tuple[float, float, str]:
        import torch

        from laicbench.api.bench import DIM, N_NOUNS, SIZES, synthetic, timed
        from laicbench.cluster.tensors import as_tensor

        device, k, batch = self.device, 1000, 4096
        n = SIZES["imagenet"]["n_train"]
        head = torch.nn.Linear(DIM, k).to(device)
        opt = torch.optim.Adam(head.parameters(), lr=3e-4, weight_decay=1e-4)
        semantic = torch.nn.functional.normalize(torch.randn(k, DIM, device=device), dim=1)
        steps, epochs, per_epoch = 10, 100, n // batch

        def train():
            for _ in range(steps):
                a, b = (torch.randn(batch, DIM, device=device) for _ in range(2))
                loss, _ = sic_loss(head(a), head(b), a, semantic, 1.0, 0.1)
                opt.zero_grad()
                loss.backward()
                opt.step()

        t_steps = timed(train)
        probe = 131_072
        x = as_tensor(synthetic(probe, k, 0)[0], device)
        nouns = as_tensor(synthetic(N_NOUNS, k, 2)[0], device)  # the semantic space's bound

        def centers():
            with torch.no_grad():
                # xi_c scaled so that the slice keeps as many rows per cluster as all 1.28M
                image_centers = confident_centers(x, head, 0.5 * n / probe)
                semantic_centers(image_centers, nouns, 20, device=device)

        t_centers = timed(centers)
        estimate = epochs * (per_epoch * t_steps / steps + t_centers * n / probe)
        note = (
            f"{steps} steps of batch {batch:,} ({t_steps / steps * 1000:.0f} ms each) x "
            f"{per_epoch * epochs:,}; centers of one epoch on {probe:,} of the 1.28M images "
            f"({t_centers:.1f} s) x {n / probe:.1f} x {epochs} epochs"
        )
        return t_steps + t_centers, estimate, note
