"""MAGIC, "Multi-Granularity Language-Informed Image Clustering" (ICML 2026), adapted: fine and
coarse text from the noun bank, as hyw1008/VLM4Cluster (MIT) runs it. No official code was
verified; the architecture and losses follow VLM4Cluster's reading of the paper (its docs and
hyperparameter reference, read, not copied).

What differs from the paper (hence the tag ``adapted``): MAGIC captions the images with Qwen and
parses concepts at several granularities with spaCy; here both granularities come from TAC's
selected nouns (in the backbone's text space): the *fine* text of an image is TAC's counterpart
(softmax over all selected nouns at temperature `tau`), its *coarse* text the mean of its
`coarse_k` most similar selected nouns weighted by their (non-negative) cosines.

Model (trained on the train split): the two granularities of an image attend to each other
(multi-head self-attention over the two tokens, mean, L2-normalised: the fused text); bottleneck
adapters (Linear d -> r d, GELU, Linear r d -> d, dropout, LayerNorm) on the image and on the
fused text; an image head (TAC's ClusterHead) on the adapted image, a text head (the same on
[adapted text; adapted image], 2d wide). `n_neighbors` exact neighbours per image in image space
(N_V) and in the space of normalised fine + coarse text (N_T); each step draws a text neighbour
a and an image neighbour b per anchor and runs the model on anchor, a and b:

    L = D(p_v, v_a) + D(p_t, t_b) + D(p_v, t_a) + D(p_t, v_b)
        + lambda CE_col(p_v, p_t) - mu [H(mean p_v) + H(mean p_t)]

with (t, v) the text and image heads' probabilities, D TAC's cluster-level contrast at
`temperature`, CE_col the cross-entropy between the columns of p_v and of p_t (each column
normalised to sum 1 over the batch, p_v's as the target), H the entropy of the batch mean.
The image branch (adapter, head) after the last epoch labels the test split, no labels.
Deliberate differences from VLM4Cluster's reading: laicbench's one k-NN and TAC's selection; the
shared loop drops the last incomplete batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from laicbench.methods.noun_selecting import CounterpartTrainingMethod, NounSelectingMethod

from laicbench.api import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    FeatureBundle,
    Interval,
    Resources,
    merge_settings,
    register_method,
)

# VLM4Cluster's MAGIC batch size by the number of clusters: 8,192 from 100 clusters on
MAGIC_LARGE_FROM = 100

# VLM4Cluster's LAION-400M ViT-B/32 profile on the datasets laicbench has
MAGIC_DATASET_SETTINGS: dict[str, dict[str, Any]] = {
    "cifar100": {"tau": 0.03, "batch_size": 2048},
    "stl10": {"tau": 0.01},
    "imagenet10": {"tau": 0.01},
    "imagenet-dogs": {"tau": 0.01},
    "dtd": {"tau": 0.03},
    "ucf101": {"tau": 0.01, "batch_size": 1024},
    "places365": {"tau": 0.01},
    "imagenet": {"tau": 0.02},
    "aircraft": {"tau": 0.05, "batch_size": 512},
    "stanford-cars": {"tau": 0.02, "batch_size": 1024},
    "flowers102": {"tau": 0.001, "batch_size": 512},
    "food101": {"tau": 0.03, "batch_size": 2048},
    "oxford-pets": {"tau": 0.008},
}


@register_method("magic")
@dataclass
class Magic(CounterpartTrainingMethod):
    """MAGIC (adapted: fine and coarse text from the noun bank): cross-granularity attention,
    bottleneck adapters, image and text heads trained by cluster-level distillation."""

    tau: float | None = None
    """Temperature of the softmax over the selected nouns of the fine text (and the coarse one's
    fallback; None: the per-dataset value, else 0.005)."""
    coarse_k: int = 3
    """Selected nouns (most similar to the image) whose cosine-weighted mean is the coarse text."""
    n_neighbors: int = 50
    """Exact neighbours per train image in image space and in text space."""
    epochs: int = 100
    """Training epochs."""
    batch_size: int | None = None
    """Train images per step, the last incomplete batch dropped; shrunk to the train split when
    larger (None: the per-dataset value, else 8,192 from 100 clusters on, else 512)."""
    lr: float = 1e-4
    """Adam learning rate (betas 0.9, 0.99)."""
    temperature: float = 1.1
    """Temperature of the cluster-level distillation."""
    alignment_weight: float = 0.6
    """lambda: weight of the column cross-entropy between the image and text heads."""
    balance_weight: float = 5.0
    """mu: weight of the entropy of both heads' batch-mean predictions (subtracted)."""
    bottleneck_ratio: float = 0.25
    """r: width of the adapters' bottleneck as a share of the feature width."""
    dropout: float = 0.1
    """Dropout of the adapters."""
    fusion_heads: int = 8
    """Attention heads of the cross-granularity fusion (lowered to a divisor of the width)."""

    version = "1"
    tags = frozenset({"adapted"})
    resources = Resources(cpus=1, gpus=0.25)
    quick_params = {"epochs": 2, "select_n_init": 2}
    param_constraints = {
        **NounSelectingMethod.param_constraints,
        "tau": POSITIVE,
        "coarse_k": AT_LEAST_ONE,
        "n_neighbors": AT_LEAST_ONE,
        "epochs": AT_LEAST_ONE,
        "batch_size": AT_LEAST_ONE,
        "lr": POSITIVE,
        "temperature": POSITIVE,
        "alignment_weight": NON_NEGATIVE,
        "balance_weight": NON_NEGATIVE,
        "bottleneck_ratio": Interval(0.0, 1.0, open_low=True),
        "dropout": Interval(0.0, 1.0, open_high=True),
        "fusion_heads": AT_LEAST_ONE,
    }
    dataset_settings: ClassVar[dict[str, dict[str, Any]]] = merge_settings(
        NounSelectingMethod.dataset_settings, MAGIC_DATASET_SETTINGS
    )

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Train the model on the train split; its image branch labels the test split."""
        import torch

        from laicbench.cluster.knn import cosine_knn
        from laicbench.cluster.nouns import normalise
        from laicbench.cluster.training import predict_labels, random_neighbour, train_epochs

        device = features.device
        selected = self._select(features, n_clusters, seed)
        x_np = normalise(features.image_train).numpy()
        tau = self.resolved("tau", features.dataset, 0.005)
        default_batch = 8192 if n_clusters >= MAGIC_LARGE_FROM else 512
        batch = min(self.resolved("batch_size", features.dataset, default_batch), len(x_np))
        k = min(self.n_neighbors, len(x_np) - 1)
        self.artefacts_["resolved"].update({"tau": tau, "batch_size": batch, "n_neighbors": k})
        fine, coarse = granularities(x_np, selected, tau, self.coarse_k, device=device)
        text_space = torch.nn.functional.normalize(fine + coarse, dim=1)
        nb_text = torch.as_tensor(cosine_knn(text_space, k, device=device)[0], device=device)
        nb_image = torch.as_tensor(cosine_knn(x_np, k, device=device)[0], device=device)
        x = torch.as_tensor(x_np, device=device)

        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        model = build_magic_model(
            x.shape[1], n_clusters, self.bottleneck_ratio, self.dropout, self.fusion_heads
        ).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=self.lr, betas=(0.9, 0.99))

        def step(index: torch.Tensor, _epoch: int) -> dict[str, float]:
            a, b = random_neighbour(nb_text, index, gen), random_neighbour(nb_image, index, gen)
            anchor, text_nb, image_nb = (model(fine[i], coarse[i], x[i]) for i in (index, a, b))
            loss, parts = magic_loss(anchor, text_nb, image_nb, self)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            return parts

        model.train()
        history = train_epochs(step, len(x), batch, self.epochs, gen, device)
        model.eval()
        labels = predict_labels(model.image_probabilities, normalise(features.image_test, device))
        self.artefacts_.update(
            {
                "loss_history": history,
                "selection": "the image branch after the last epoch, no labels",
                "text_source": "fine: TAC counterparts; coarse: cosine-weighted top "
                f"{self.coarse_k} selected nouns (MAGIC: Qwen captions, spaCy concepts)",
            }
        )
        return labels


def granularities(
    images: np.ndarray, nouns: np.ndarray, tau: float, coarse_k: int, *, device="cpu"
):
    """The fine and coarse text (n, d each, L2-normalised tensors) of each image: fine =
    normalise(softmax(<x, n_j> / tau) @ N); coarse = normalise(sum over the `coarse_k` most
    similar nouns of w_j n_j), w_j = max(cos_j, 0) / sum of those (the softmax at tau where
    all are <= 0)."""
    import torch
    import torch.nn.functional as F

    from laicbench.cluster.nouns import normalise, text_counterparts

    fine = torch.as_tensor(text_counterparts(images, nouns, tau, device=device), device=device)
    n = normalise(nouns, device)
    x = normalise(images, device)
    coarse = torch.empty_like(fine)
    k = min(coarse_k, len(n))
    for start in range(0, len(x), 8192):
        top, index = (x[start : start + 8192] @ n.T).topk(k, dim=1)
        positive = top.clamp_min(0)
        total = positive.sum(dim=1, keepdim=True)
        weights = torch.where(
            total > 1e-12, positive / total.clamp_min(1e-12), (top / tau).softmax(1)
        )
        coarse[start : start + 8192] = F.normalize(
            (weights[..., None] * n[index]).sum(dim=1), dim=1
        )
    return fine, coarse


def _adapter(dim: int, ratio: float, dropout: float):
    from torch import nn

    width = max(1, round(dim * ratio))
    return nn.Sequential(
        nn.Linear(dim, width),
        nn.GELU(),
        nn.Linear(width, dim),
        nn.Dropout(dropout),
        nn.LayerNorm(dim),
    )


def _magic_model_class():
    import torch
    import torch.nn.functional as F
    from torch import nn

    from laicbench.cluster.heads import ClusterHead

    class _MagicModel(nn.Module):
        """MAGIC's fusion, adapters and heads (see the module docstring)."""

        def __init__(self, dim: int, n_clusters: int, ratio: float, dropout: float, heads: int):
            super().__init__()
            heads = next(h for h in range(min(heads, dim), 0, -1) if dim % h == 0)
            self.fusion = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.image_adapter = _adapter(dim, ratio, dropout)
            self.text_adapter = _adapter(dim, ratio, dropout)
            self.image_head = ClusterHead(dim, n_clusters)
            self.text_head = ClusterHead(2 * dim, n_clusters, hidden=dim)

        def forward(self, fine, coarse, image):
            """(text probabilities, image probabilities), (B, K) each."""
            tokens = torch.stack([fine, coarse], dim=1)
            fused = F.normalize(self.fusion(tokens, tokens, tokens)[0].mean(dim=1), dim=1)
            image_embedding = self.image_adapter(image)
            text_embedding = self.text_adapter(fused)
            both = torch.cat([text_embedding, image_embedding], dim=1)
            return self.text_head(both), self.image_head(image_embedding)

        def image_probabilities(self, image):
            """The image branch alone: what labels the test split."""
            return self.image_head(self.image_adapter(image))

    return _MagicModel


def build_magic_model(dim: int, n_clusters: int, ratio: float, dropout: float, heads: int):
    """MAGIC's model, a torch module (its class is made on first use, so that importing the
    plugin needs no torch)."""
    return _magic_model_class()(dim, n_clusters, ratio, dropout, heads)


def column_cross_entropy(p_image, p_text, eps: float = 1e-8):
    """-mean_k sum_i a_ik log b_ik, with a and b the columns of p_image and p_text normalised to
    sum 1 over the batch (b clamped at `eps`)."""
    a = p_image / p_image.sum(dim=0, keepdim=True).clamp_min(eps)
    b = p_text / p_text.sum(dim=0, keepdim=True).clamp_min(eps)
    return -(a * b.clamp_min(eps).log()).sum(dim=0).mean()


def magic_loss(anchor, text_neighbour, image_neighbour, method: Magic):
    """MAGIC's loss on one batch from the model's (text, image) probabilities of the anchors and
    of their text and image neighbours; returns (loss, parts)."""
    from laicbench.cluster.heads import batch_entropy, cluster_contrastive

    (p_t, p_v), (t_a, v_a), (t_b, v_b) = anchor, text_neighbour, image_neighbour
    temperature = method.temperature
    intra = cluster_contrastive(p_v, v_a, temperature) + cluster_contrastive(p_t, t_b, temperature)
    inter = cluster_contrastive(p_v, t_a, temperature) + cluster_contrastive(p_t, v_b, temperature)
    align = column_cross_entropy(p_v, p_t)
    balance = batch_entropy(p_v) + batch_entropy(p_t)
    loss = intra + inter + method.alignment_weight * align - method.balance_weight * balance
    parts = {
        "loss": loss.detach(),
        "intra": intra.detach(),
        "inter": inter.detach(),
        "alignment": align.detach(),
        "balance": balance.detach(),
    }
    return loss, parts


def _bench_training_step(device: str) -> Callable[[], None]:
    """One MAGIC training step at ImageNet-1K size (K = 1,000, batch 8,192, 512-d), random
    features: three model passes, the loss, the update."""
    import torch

    from laicbench.api.bench import DIM

    model = build_magic_model(DIM, 1000, 0.25, 0.1, 8).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.99))
    method = Magic()

    def step() -> None:
        outputs = [model(*(torch.randn(8192, DIM, device=device) for _ in range(3))) for _ in "abc"]
        loss, _ = magic_loss(*outputs, method)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return step


Magic.training_step = ("magic: training", _bench_training_step)  # defined below the class
