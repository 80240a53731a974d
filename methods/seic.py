"""SEIC, "Self-Enhanced Image Clustering with Cross-Modal Semantic Consistency" (AAAI 2026),
stage 1 on cached features, adapted. No official code was verified; the construction and the
losses follow the paper as hyw1008/VLM4Cluster (MIT) reads it (its docs and hyperparameter
reference, read, not copied), whose defaults are the paper appendix's loss weights.

Text per image (train split): spherical k-means with K clusters; the candidate nouns are the
union of the `k1` nouns most cosine-similar to each center; each image's text is the
L2-normalised mean of its `k2` most similar candidates weighted by softmax(cos / `text_tau`).

Stage 1 (frozen features): an image branch and a text branch, each a linear projection
(d -> d, L2-normalised: z) and a linear clustering layer on z (softmax: p), trained on the train
split with

    L = alpha L_ins + beta L_assign + gamma L_center + delta L_bal

L_ins: the symmetric InfoNCE of the pairs (z_v,i, z_t,i) with a learnable logit scale (initial
1 / `instance_temperature`, capped at 100); L_assign: the same of the cluster columns of p_v
and p_t (L2-normalised) at `assignment_temperature`; L_center: the same of the clusters'
centers in each modality (c_k = sum of p_ik z_i over the samples whose argmax is k), over the
clusters non-empty in both, at `center_temperature` (0 with fewer than two); L_bal: minus the
weighted entropies sum_k w_k m_k log(1 / m_k) of both batch-mean predictions m, with
w_k = min((1 / K) / h_k, `balance_max_weight`) renormalised to mean 1, h the running share of
the image branch's hard assignments (momentum `balance_momentum`, floored at
`balance_history_floor`). Adam. The image branch after the last epoch labels the test split.

Stage 2 (optional, off by default: ``stage2_epochs`` = 0): on an image dataset only (it needs the
images and the image tower, ``Need.IMAGE_TOWER``), a copy of the image tower gets LoRA adapters
(rank ``stage2_rank``, scaling ``stage2_alpha`` / rank) on its linear layers, and the adapters and
the stage-1 image branch are trained with cross-entropy on the stage-1 pseudo-labels of the most
confident ``stage2_fraction`` of each cluster's train images (AdamW, ``stage2_lr``); the test
images are then re-encoded by the adapted tower and labelled by the branch after the last epoch.

What differs (hence the tag ``adapted``): stage 2 uses the deterministic extraction transform
(no strong augmentations) and its LoRA settings are common defaults (no official code states
them); without it, this is the paper's SEIC-dagger (stage 1) on cached features; the noun bank
and text tower are the backbone's (TAC's WordNet nouns, 7-template ensemble) and the k-means is
laicbench's one.
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
    FloatRange,
    Method,
    Need,
    Resources,
    Scaled,
    register_method,
)

# VLM4Cluster's LAION-400M ViT-B/32 profile on the datasets laicbench has
SEIC_DATASET_SETTINGS: dict[str, dict[str, Any]] = {
    "dtd": {"text_tau": 0.008, "assignment_temperature": 0.2},
    "ucf101": {"text_tau": 0.02},
    "aircraft": {"text_tau": 0.02},
    "stanford-cars": {"text_tau": 0.05},
    "oxford-pets": {"text_tau": 0.008, "center_temperature": 0.4},
}
SEIC_DEFAULTS = {"text_tau": 0.01, "assignment_temperature": 0.5, "center_temperature": 0.5}


@register_method("seic")
@dataclass
class Seic(Method):
    """SEIC (adapted): image and text branches aligned by instance, assignment and center
    consistency with a history-weighted balance term; optional LoRA self-training of the image
    tower on image datasets (stage 2, off by default)."""

    k1: int = 200
    """Nouns nearest to each k-means center that join the candidate set."""
    k2: int = 50
    """Candidate nouns nearest to an image whose weighted mean is its text."""
    text_tau: float | None = None
    """Temperature of the softmax over an image's k2 cosines that weights its text (None: the
    per-dataset value, else 0.01)."""
    epochs: int = 200
    """Training epochs of stage 1."""
    batch_size: int = 1024
    """Train images per step, the last incomplete batch dropped; shrunk to the train split."""
    lr: float = 5e-3
    """Adam learning rate."""
    weight_decay: float = 0.0
    """Adam weight decay."""
    instance_temperature: float = 0.07
    """Initial temperature of the instance term (its logit scale is learnt)."""
    assignment_temperature: float | None = None
    """Temperature of the assignment term (None: the per-dataset value, else 0.5)."""
    center_temperature: float | None = None
    """Temperature of the center term (None: the per-dataset value, else 0.5)."""
    alpha: float = 0.5
    """Weight of the instance term."""
    beta: float = 1.0
    """Weight of the assignment term."""
    gamma: float = 1.0
    """Weight of the center term."""
    delta: float = 2.0
    """Weight of the balance term."""
    balance_momentum: float = 0.9
    """Momentum of the running share of each cluster in the image branch's hard assignments."""
    balance_history_floor: float = 0.01
    """Floor of that running share before its inverse weights the entropy."""
    balance_max_weight: float = 5.0
    """Cap of a cluster's weight in the balance term."""
    kmeans_n_init: int = 10
    """Restarts of the k-means whose centers pick the candidate nouns."""
    stage2_epochs: int = 0
    """Epochs of stage 2, the LoRA self-training of the image tower on the stage-1 pseudo-labels
    (0: off, the default; more needs an image dataset: its images and image tower)."""
    stage2_rank: int = 8
    """Rank r of the LoRA adapters of stage 2."""
    stage2_alpha: float = 16.0
    """LoRA scaling numerator: the update is (alpha / r) B A x."""
    stage2_lr: float = 1e-4
    """AdamW learning rate of stage 2 (adapters and the image branch)."""
    stage2_fraction: float = 0.5
    """Share of each cluster's train images, the most confident under stage 1, whose
    pseudo-labels stage 2 trains on."""
    stage2_batch_size: int = 64
    """Train images per step of stage 2, the last incomplete batch dropped."""

    version = "1"
    needs = frozenset({Need.NOUNS})
    tags = frozenset({"adapted"})
    resources = Resources(cpus=1, gpus=0.25)
    quick_params = {"epochs": 2, "kmeans_n_init": 2}
    param_constraints = {
        "k1": AT_LEAST_ONE,
        "k2": AT_LEAST_ONE,
        "text_tau": POSITIVE,
        "epochs": AT_LEAST_ONE,
        "batch_size": AT_LEAST_ONE,
        "lr": POSITIVE,
        "weight_decay": NON_NEGATIVE,
        "instance_temperature": POSITIVE,
        "assignment_temperature": POSITIVE,
        "center_temperature": POSITIVE,
        "alpha": NON_NEGATIVE,
        "beta": NON_NEGATIVE,
        "gamma": NON_NEGATIVE,
        "delta": NON_NEGATIVE,
        "balance_momentum": FRACTION,
        "balance_history_floor": FRACTION,
        "balance_max_weight": POSITIVE,
        "kmeans_n_init": AT_LEAST_ONE,
        "stage2_epochs": NON_NEGATIVE,
        "stage2_rank": AT_LEAST_ONE,
        "stage2_alpha": POSITIVE,
        "stage2_lr": POSITIVE,
        "stage2_fraction": FRACTION,
        "stage2_batch_size": AT_LEAST_ONE,
    }
    dataset_settings: ClassVar[dict[str, dict[str, Any]]] = SEIC_DATASET_SETTINGS
    # the three temperatures VLM4Cluster's profiles vary by dataset, and the balance weight
    param_space = {
        "text_tau": FloatRange(2e-3, 0.1, log=True),
        "assignment_temperature": FloatRange(0.1, 1.0, log=True),
        "center_temperature": FloatRange(0.1, 1.0, log=True),
        "delta": Scaled(0.25, 4.0),
    }

    @classmethod
    def run_needs(cls, params: dict[str, Any]) -> frozenset[Need]:
        """The noun bank; with stage 2 on, also the images and the image tower."""
        if params.get("stage2_epochs", 0) > 0:
            return cls.needs | {Need.IMAGE_TOWER}
        return cls.needs

    @classmethod
    def value_in_run(cls, name: str, dataset: str, n_train: int, n_clusters: int) -> Any:
        """The temperatures left at None: per dataset, else SEIC's defaults."""
        if name in SEIC_DEFAULTS:
            return cls().resolved(name, dataset, SEIC_DEFAULTS[name])
        return super().value_in_run(name, dataset, n_train, n_clusters)

    @classmethod
    def bench_steps(cls, size: str, device: str) -> list[tuple[str, Callable]]:
        """At ImageNet-1K size: the k-means with K = 1,000, each train image's top 50 of the
        candidate nouns (at most the whole bank: 1,000 centers x 200), and stage 1 (200 epochs
        of 1,024: 250,200 steps)."""
        from laicbench.api.bench import SIZES, PrimitiveStep, RepeatedStep

        if size != "imagenet":
            return []
        n = SIZES["imagenet"]["n_train"]
        texts = RepeatedStep(_bench_text_step, device, n / 8192, "8,192 images' top 50", 2)
        training = RepeatedStep(_bench_training_step, device, 250_200, "a step of batch 1,024")
        return [
            PrimitiveStep.job("kmeans_pseudo", device),
            ("seic: weighted text of every train image", texts),
            ("seic: stage-1 training", training),
        ]

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Build each train image's text, train both branches; the image branch labels the test
        split."""
        import torch

        from laicbench.cluster.tensors import unit_rows
        from laicbench.cluster.training import predict_labels, train_epochs

        device = features.device
        cfg = {name: self.resolved(name, features.dataset, v) for name, v in SEIC_DEFAULTS.items()}
        x = unit_rows(features.image_train, device)
        batch = min(self.batch_size, len(x))
        text, candidates = image_texts(
            x, features.noun_features, n_clusters, self, cfg["text_tau"], seed, device
        )
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        model = build_seic_branches(x.shape[1], n_clusters, self.instance_temperature).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        history_share = torch.full((n_clusters,), 1.0 / n_clusters, device=device)

        def step(index: torch.Tensor, _epoch: int) -> dict[str, float]:
            z_v, p_v = model.image(x[index])
            z_t, p_t = model.text(text[index])
            loss, parts = seic_loss(
                (z_v, p_v, z_t, p_t), model.logit_scale, history_share, cfg, self
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                share = torch.bincount(p_v.argmax(dim=1), minlength=n_clusters).float()
                momentum = self.balance_momentum
                history_share.mul_(momentum).add_((1 - momentum) * share / share.sum())
                history_share.div_(history_share.sum())
            return parts

        model.train()
        history = train_epochs(step, len(x), batch, self.epochs, gen, device)
        model.eval()
        words = features.noun_words
        self.artefacts_: dict[str, Any] = {
            "resolved": {**cfg, "batch_size": batch},
            "n_candidate_nouns": len(candidates),
            "candidate_nouns": [str(words[i]) for i in candidates[:50]],
            "loss_history": history,
            "stage": "1 (stage 2, LoRA self-training of the image tower, off: stage2_epochs 0)",
            "selection": "the image branch after the last epoch of stage 1, no labels",
        }
        if self.stage2_epochs > 0:
            from laicbench.methods.seic_stage2 import self_train_image_tower

            labels, stage2 = self_train_image_tower(
                features.image_tower, model.image, x, self, seed, device
            )
            self.artefacts_["stage2"] = stage2
            self.artefacts_["stage"] = "1 and 2 (LoRA self-training of the image tower)"
            self.artefacts_["selection"] = (
                "stage 1's image branch after its last epoch picks the pseudo-labels; the adapted "
                "tower and branch after the last epoch of stage 2 label the test split; no labels"
            )
            return labels
        return predict_labels(
            lambda rows: model.image(rows)[1], unit_rows(features.image_test, device)
        )


def image_texts(x, nouns, n_clusters: int, method: Seic, text_tau: float, seed: int, device):
    """SEIC's text of each row of `x` (unit rows, a tensor): (texts (n, d) unit rows, candidate
    noun indices (increasing)). Candidates: the union of the k1 nouns most similar to each of the
    K spherical k-means centers; text_i = normalise(sum over its k2 most similar candidates of
    softmax(cos / text_tau) n_j)."""
    import torch
    import torch.nn.functional as F

    from laicbench.cluster.kmeans import spherical_kmeans
    from laicbench.cluster.knn import cosine_knn
    from laicbench.cluster.tensors import unit_rows

    result = spherical_kmeans(x, n_clusters, n_init=method.kmeans_n_init, seed=seed, device=device)
    labels = torch.as_tensor(result.labels, device=device)
    centers = torch.zeros(n_clusters, x.shape[1], device=device).index_add_(0, labels, x)
    n = unit_rows(nouns, device)
    near, _ = cosine_knn(centers, min(method.k1, len(n)), keys=n, device=device)
    candidates = np.unique(near)
    pool = n[torch.as_tensor(candidates, device=device)]
    index, sims = cosine_knn(x, min(method.k2, len(pool)), keys=pool, device=device)
    index = torch.as_tensor(index, device=device)
    weights = torch.softmax(torch.as_tensor(sims, device=device) / text_tau, dim=1)
    texts = torch.empty_like(x)
    for start in range(0, len(x), 8192):
        rows = slice(start, start + 8192)
        texts[rows] = F.normalize((weights[rows, :, None] * pool[index[rows]]).sum(dim=1), dim=1)
    return texts, candidates


def build_seic_branches(dim: int, n_clusters: int, instance_temperature: float):
    """SEIC's two branches (projection d -> d, L2-normalised, then a linear clustering layer) and
    the learnt logit scale, as one torch module; weights trunc_normal(std 0.02), biases zero."""
    import math

    import torch
    import torch.nn.functional as F
    from torch import nn

    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.project = nn.Linear(dim, dim)
            self.cluster = nn.Linear(dim, n_clusters)
            for layer in (self.project, self.cluster):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)

        def forward(self, features):
            z = F.normalize(self.project(features), dim=1)
            return z, torch.softmax(self.cluster(z), dim=1)

    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.image, self.text = Branch(), Branch()
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / instance_temperature)))

    return Branches()


def symmetric_info_nce(left, right, scale):
    """(CE(s L R^T, I) + CE(s R L^T, I)) / 2 for L2-normalised rows of `left` and `right` (0 for
    fewer than two rows): each row's positive is its partner of the same index."""
    import torch
    import torch.nn.functional as F

    if len(left) < 2:
        return left.new_zeros(())
    logits = scale * F.normalize(left, dim=1) @ F.normalize(right, dim=1).T
    target = torch.arange(len(left), device=left.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def center_consistency(z_v, p_v, z_t, p_t, temperature: float):
    """SEIC's center term: each modality's centers c_k = sum of p_ik z_i over the rows whose
    argmax is k; symmetric InfoNCE at `temperature` over the clusters non-empty in both."""
    import torch.nn.functional as F

    def centers(z, p):
        hard = F.one_hot(p.argmax(dim=1), p.shape[1]).to(p.dtype)
        weights = p * hard
        return weights.T @ z, weights.sum(dim=0) > 1e-8

    c_v, valid_v = centers(z_v, p_v)
    c_t, valid_t = centers(z_t, p_t)
    valid = valid_v & valid_t
    return symmetric_info_nce(c_v[valid], c_t[valid], 1.0 / temperature)


def balance_term(p_v, p_t, history_share, floor: float, max_weight: float):
    """Minus the history-weighted entropies of both batch-mean predictions: weights
    w_k = min((1/K) / h_k, max_weight), h floored at `floor` and renormalised, w renormalised to
    mean 1."""
    history = history_share.clamp_min(floor)
    history = history / history.sum()
    weights = ((1.0 / len(history)) / history).clamp_max(max_weight)
    weights = weights / weights.mean()
    means = [p.mean(dim=0).clamp_min(1e-8) for p in (p_v, p_t)]
    return -sum((weights * m * -m.log()).sum() for m in means)


def seic_loss(outputs, logit_scale, history_share, cfg: dict, method: Seic):
    """SEIC's stage-1 loss of one batch from (z_v, p_v, z_t, p_t); returns (loss, parts)."""
    import torch.nn.functional as F

    z_v, p_v, z_t, p_t = outputs
    instance = symmetric_info_nce(z_v, z_t, logit_scale.exp().clamp(max=100.0))
    assign = symmetric_info_nce(
        F.normalize(p_v.T, dim=1), F.normalize(p_t.T, dim=1), 1.0 / cfg["assignment_temperature"]
    )
    center = center_consistency(z_v, p_v, z_t, p_t, cfg["center_temperature"])
    balance = balance_term(
        p_v, p_t, history_share, method.balance_history_floor, method.balance_max_weight
    )
    loss = (
        method.alpha * instance
        + method.beta * assign
        + method.gamma * center
        + method.delta * balance
    )
    parts = {
        "loss": loss.detach(),
        "instance": instance.detach(),
        "assignment": assign.detach(),
        "center": center.detach(),
        "balance": balance.detach(),
    }
    return loss, parts


def _bench_text_step(device: str) -> Callable[[], None]:
    """The top 50 of 8,192 images among every noun of the bank (the candidate set's bound at
    ImageNet-1K size), random features."""
    from laicbench.api.bench import N_NOUNS, synthetic
    from laicbench.cluster.knn import cosine_knn

    nouns = synthetic(N_NOUNS, 1000, 2)[0]
    images = synthetic(8192, 1000, 3)[0]
    return lambda: cosine_knn(images, 50, keys=nouns, device=device)


def _bench_training_step(device: str) -> Callable[[], None]:
    """One stage-1 step at ImageNet-1K size (K = 1,000, batch 1,024, 512-d), random features."""
    import torch

    from laicbench.api.bench import DIM

    model = build_seic_branches(DIM, 1000, 0.07).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
    share = torch.full((1000,), 1e-3, device=device)
    method = Seic()

    def step() -> None:
        z_v, p_v = model.image(torch.randn(1024, DIM, device=device))
        z_t, p_t = model.text(torch.randn(1024, DIM, device=device))
        loss, _ = seic_loss((z_v, p_v, z_t, p_t), model.logit_scale, share, SEIC_DEFAULTS, method)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return step
