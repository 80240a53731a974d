"""SCAN's clustering step on frozen CLIP features (Van Gansbeke et al., "SCAN: Learning to
Classify Images without Labels", ECCV 2020; code wvangansbeke/Unsupervised-Classification,
CC BY-NC 4.0, so reimplemented from the paper and the configs' values, not from its code).

Neighbours: the `n_neighbors` nearest train images of each train image (exact cosine k-NN), the
image itself among the candidates as in SCAN's mining. `n_heads` linear heads on the
L2-normalised features are trained together with the SCAN loss per head: the mean of
-log <p_i, p_j> for each image i and one of its candidates j drawn anew every time (the log
capped at -100, as binary cross-entropy does), minus `entropy_weight` times the entropy of the
batch-mean prediction. After every epoch each head's loss is evaluated on the whole train split
(each image against its first 5 candidates, entropy weight 1, as SCAN's own evaluation); the
(epoch, head) with the lowest loss is kept and labels the test split. No label takes part.

Defaults follow SCAN's configurations with a frozen backbone (its ImageNet ones, the setting
that matches cached features): 10 heads, SGD with learning rate 5.0 and momentum 0.9, no weight
decay, batch 512, 100 epochs, entropy weight 5; 20 neighbours (CIFAR/STL configs) and 50 for the
ImageNet datasets. SCAN's CIFAR/STL configurations fine-tune the backbone (Adam 1e-4, batch 128),
which cached features cannot. Self-labelling (``self_label=True``, off by default): the kept head
is trained further with cross-entropy on its own predictions above `self_label_threshold`
(class-balanced weights, Adam; a batch without a confident image has loss 0, and its step only
applies the weight decay), without the strong augmentations of SCAN (cached features have none);
the test split is labelled by the self-labelled head.
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
    Options,
    Resources,
    Scaled,
    register_method,
)

EVAL_NEIGHBOURS = 5  # candidates per image in SCAN's loss evaluation (its val split: top 5)


@register_method("scan")
@dataclass
class Scan(Method):
    """SCAN's clustering step: linear heads on frozen features, neighbour-consistency loss."""

    n_neighbors: int | None = None
    """Nearest train images (exact cosine, the image itself among them) from which each image's
    consistency partner is drawn (None: the per-dataset value, else 20)."""
    n_heads: int = 10
    """Linear heads trained together; the one with the lowest SCAN loss labels the test split."""
    entropy_weight: float = 5.0
    """Weight of the entropy of the batch-mean prediction, subtracted from the consistency loss."""
    optimizer: str = "sgd"
    """Optimiser of the heads: 'sgd' (with momentum) or 'adam'."""
    lr: float = 5.0
    """Learning rate of the heads."""
    momentum: float = 0.9
    """SGD momentum (unused by adam)."""
    weight_decay: float = 0.0
    """Weight decay of the heads."""
    batch_size: int = 512
    """Train images per step."""
    epochs: int = 100
    """Training epochs; the (epoch, head) of lowest loss on the train split is kept."""
    self_label: bool = False
    """Train the kept head further on its own confident predictions (SCAN's self-labelling, without
    augmentations)."""
    self_label_threshold: float = 0.99
    """Predicted probability above which a train image joins the self-labelling cross-entropy."""
    self_label_lr: float = 1e-4
    """Adam learning rate of self-labelling."""
    self_label_epochs: int = 200
    """Epochs of self-labelling."""
    self_label_batch_size: int = 1000
    """Train images per self-labelling step."""

    version = "1"
    quick_params: ClassVar[dict[str, Any]] = {"epochs": 10}
    resources = Resources(cpus=1, gpus=0.25)
    param_constraints = {
        "n_neighbors": AT_LEAST_ONE,
        "n_heads": AT_LEAST_ONE,
        "entropy_weight": NON_NEGATIVE,
        "optimizer": Options(("sgd", "adam")),
        "lr": POSITIVE,
        "momentum": FRACTION,
        "weight_decay": NON_NEGATIVE,
        "batch_size": AT_LEAST_ONE,
        "epochs": AT_LEAST_ONE,
        "self_label_threshold": FRACTION,
        "self_label_lr": POSITIVE,
        "self_label_epochs": AT_LEAST_ONE,
        "self_label_batch_size": AT_LEAST_ONE,
    }
    # the heads' learning rate and the entropy weight (SCAN's 5), as multiples of the defaults
    param_space = {"lr": Scaled(0.1, 10.0), "entropy_weight": Scaled(0.2, 5.0)}
    dataset_settings: ClassVar[dict[str, dict[str, Any]]] = {
        name: {"n_neighbors": 50} for name in ("imagenet10", "imagenet-dogs", "imagenet")
    }

    @classmethod
    def bench_steps(cls, size: str, device: str) -> list[tuple[str, Callable]]:
        """At ImageNet-1K size: the exact k-NN of the train images."""
        from laicbench.api.bench import PrimitiveStep

        return [PrimitiveStep.job("knn", device)] if size == "imagenet" else []

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Train the heads on the train split; the lowest-loss head labels the test split."""
        import torch

        from laicbench.cluster.knn import cosine_knn
        from laicbench.cluster.tensors import unit_rows
        from laicbench.cluster.training import random_neighbour, train_epochs

        device = features.device
        x = unit_rows(features.image_train, device)
        k = min(self.resolved("n_neighbors", features.dataset, 20), len(x) - 1)
        knn = torch.as_tensor(cosine_knn(x, k, device=device)[0], device=device)
        candidates = torch.cat([torch.arange(len(x), device=device)[:, None], knn], dim=1)
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        heads = torch.nn.Linear(x.shape[1], n_clusters * self.n_heads).to(device)
        optimiser = self._optimiser(heads.parameters())
        best = {"loss": float("inf"), "epoch": -1, "head": -1}

        def step(index: torch.Tensor, epoch: int) -> dict[str, torch.Tensor]:
            anchors = self._probs(heads(x[index]), n_clusters)
            partners = self._probs(heads(x[random_neighbour(candidates, index, gen)]), n_clusters)
            losses = scan_loss(anchors, partners, self.entropy_weight)
            optimiser.zero_grad()
            losses.sum().backward()
            optimiser.step()
            return {"loss": losses.mean().detach()}  # read once per epoch

        def keep_best(epoch: int, _: dict[str, float]) -> None:
            with torch.no_grad():  # one read per epoch
                losses = self._evaluation_losses(heads, x, candidates, n_clusters).tolist()
            head = int(np.argmin(losses))  # a NaN is the minimum, as for torch.argmin
            if "state" not in best or losses[head] < best["loss"]:  # NaN never wins
                best.update(loss=losses[head], epoch=epoch, head=head)
                best["state"] = {n: p.detach().clone() for n, p in heads.state_dict().items()}

        history = train_epochs(
            step, len(x), self.batch_size, self.epochs, gen, device, on_epoch=keep_best
        )
        heads.load_state_dict(best.pop("state"))
        weight, bias = self._head(heads, best["head"], n_clusters)
        self.artefacts_ = {
            "resolved": {"n_neighbors": k},
            "loss_history": history,
            "selection": "the (epoch, head) with the lowest SCAN loss on the train split "
            "(entropy weight 1, 5 candidates per image), no labels",
            "selected": best,
        }
        if self.self_label:
            weight, bias = self._self_label(x, weight, bias, gen)
        x_test = unit_rows(features.image_test, device)
        with torch.no_grad():
            return (x_test @ weight.T + bias).argmax(dim=1).cpu().numpy()

    @staticmethod
    def _probs(logits, n_clusters: int):
        """(heads, batch, K) softmax probabilities of the stacked heads' logits."""
        import torch

        return torch.softmax(logits.view(len(logits), -1, n_clusters).transpose(0, 1), dim=2)

    @staticmethod
    def _head(heads, h: int, n_clusters: int):
        """(weight, bias) of head `h` of the stacked linear heads."""
        rows = slice(h * n_clusters, (h + 1) * n_clusters)
        return heads.weight[rows].detach().clone(), heads.bias[rows].detach().clone()

    def _evaluation_losses(self, heads, x, candidates, n_clusters: int, chunk: int = 8192):
        """Each head's SCAN loss on the whole train split: -log <p_i, p_j> over each image and
        its first EVAL_NEIGHBOURS candidates, minus the entropy of the mean prediction.
        Accumulated chunk by chunk, so memory stays bounded at ImageNet-1K size."""
        import torch

        cols = candidates[:, : EVAL_NEIGHBOURS + 1]
        consistency = torch.zeros(self.n_heads, device=x.device)
        prob_sum = torch.zeros(self.n_heads, n_clusters, device=x.device)
        for start in range(0, len(x), chunk):
            probs = self._probs(heads(x[start : start + chunk]), n_clusters)
            prob_sum += probs.sum(dim=1)
            for j in range(cols.shape[1]):
                partners = self._probs(heads(x[cols[start : start + chunk, j]]), n_clusters)
                consistency += consistency_loss(probs, partners) * probs.shape[1]
        consistency /= len(x) * cols.shape[1]
        return consistency - mean_entropy((prob_sum / len(x))[:, None, :])

    def _optimiser(self, params):
        import torch

        if self.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
            )
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)

    def _self_label(self, x, weight, bias, gen):
        """SCAN's self-labelling of one head: cross-entropy on its confident predictions."""
        import torch
        import torch.nn.functional as F

        from laicbench.cluster.training import train_epochs

        head = torch.nn.Linear(weight.shape[1], weight.shape[0]).to(x.device)
        with torch.no_grad():
            head.weight.copy_(weight)
            head.bias.copy_(bias)
        optimiser = torch.optim.Adam(head.parameters(), lr=self.self_label_lr, weight_decay=1e-4)
        kept = torch.zeros((), device=x.device)  # confident fractions summed over the steps

        def step(index: torch.Tensor, epoch: int) -> dict[str, torch.Tensor]:
            nonlocal kept
            logits = head(x[index])
            with torch.no_grad():
                confidence, target = torch.softmax(logits, dim=1).max(dim=1)
                mask = (confidence > self.self_label_threshold).float()
                kept = kept + mask.mean()
                # each confident class weighted by (confident images) / (its confident images)
                counts = torch.zeros(logits.shape[1], device=x.device).index_add_(0, target, mask)
                class_weights = mask.sum() / counts.clamp_min(1)
                weights = class_weights[target] * mask
            # the weighted cross-entropy of the confident images (0 when none is): masked by
            # weights rather than by indexing, so that no step waits for the host
            per_image = F.cross_entropy(logits, target, reduction="none")
            loss = (weights * per_image).sum() / weights.sum().clamp_min(1e-12)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            return {"loss": loss.detach()}

        self.artefacts_["self_label_history"] = train_epochs(
            step, len(x), self.self_label_batch_size, self.self_label_epochs, gen, str(x.device)
        )
        steps = self.self_label_epochs * (len(x) // min(self.self_label_batch_size, len(x)))
        self.artefacts_["self_label_confident_fraction"] = float(kept) / steps
        return head.weight.detach(), head.bias.detach()


def consistency_loss(p, q):
    """-log <p_i, q_i> per head, averaged over the samples (inputs (heads, n, K)); the log is
    capped at -100 as binary cross-entropy caps it."""
    import torch

    dot = (p * q).sum(dim=2).clamp(0, 1)
    return -torch.log(dot).clamp_min(-100).mean(dim=1)


def mean_entropy(p):
    """The entropy of the mean prediction per head (inputs (heads, n, K); clamped at 1e-8)."""
    import torch

    mean = p.mean(dim=1).clamp_min(1e-8)
    return -(mean * torch.log(mean)).sum(dim=1)


def scan_loss(anchors, partners, entropy_weight: float):
    """SCAN's loss per head: consistency of anchors with their partners minus `entropy_weight`
    times the entropy of the anchors' mean prediction (inputs (heads, batch, K))."""
    return consistency_loss(anchors, partners) - entropy_weight * mean_entropy(anchors)
