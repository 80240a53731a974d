"""SAC, "Semantic-Augmented Image Clustering via Adaptive Multi-Modal Collaboration" (AAAI 2026),
adapted: on TAC-style text counterparts, as hyw1008/VLM4Cluster (MIT) runs it. No official code
was verified; the formulas below follow VLM4Cluster's reading of the paper (docs/methods.md and
docs/method_hyperparameters.md of that repository, read, not copied).

What differs from the paper (hence the tag ``adapted``): SAC captions every image with BLIP-2
and embeds the captions with SBERT; here each image's text is TAC's counterpart (the softmax-
weighted mean, at temperature `tau`, of the nouns TAC's selection keeps from the noun bank, in
the backbone's own text space), so no captioner and no second text encoder run.

On the train split, with a text head h_T and an image head h_V (TAC's ClusterHead: Linear,
BatchNorm, ReLU, Linear, softmax), `n_neighbors` exact neighbours per image in image space
(N_V) and in counterpart space (N_T), each step draws for every anchor i a text neighbour
a in N_T(i), an image neighbour b in N_V(i), and the cross pairs c in N_V(i) (its text) and
e in N_T(i) (its image):

    p_t = h_T(t_i), p_v = h_V(x_i), q_t = h_T(t_a), q_v = h_V(x_b), r_t = h_T(t_c), r_v = h_V(x_e)
    L = D(p_v, r_v | g, h) + D(p_v, q_t | g', h') + D(p_t, q_v | g', h')
        + lambda_a [beta C_inst(p_t, p_v) + (1 - beta) C_clu(p_t, p_v)]
        - lambda_b [H(mean p_t) + H(mean p_v)]

D(u, w | g, h) is the reliability-weighted contrast of instances: rows of u and w L1-normalised,
the 2B rows compared by dot product / `temperature`, each row's positive its partner, its
negatives the other 2B - 2 rows; pair j's two rows are weighted by
alpha sigmoid(a <g_0j, g_1j> / T) + (1 - alpha) sigmoid(a <h_0j, h_1j> / T) with the anchor pair
g and the other view's pair h, normalised by the weights' sum: g = (p_v, r_v), h = (p_t, r_t) in
the first term, g' = (p_v, q_t), h' = (p_t, q_v) in the other two.
C_inst = -mean log <p_t,i, p_v,i> (TAC's consistency); C_clu = BCE-with-logits of the column
sums sum_i p_t,ik p_v,ik against 1; H: entropy of the batch mean.

Deliberate differences from VLM4Cluster's reading: the contrast excludes each row's similarity
to itself from its denominator (NT-Xent, as SimCLR); the reliability weights are constants of
each step (no gradient flows through them, so the heads cannot lower the loss by down-weighting
samples); laicbench's one k-NN and TAC's selection as elsewhere; the shared loop drops the last
incomplete batch. The image head after the last epoch labels the test split (no labels: SAC's
test-label early stopping is not used).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from laicbench.methods.noun_selecting import CounterpartTrainingMethod, NounSelectingMethod

from laicbench.api import (
    AT_LEAST_ONE,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    FeatureBundle,
    Resources,
    merge_settings,
    register_method,
)

# VLM4Cluster's SAC training defaults by the number of clusters: "large" above 512
SAC_SMALL = {"epochs": 30, "batch_size": 512, "n_neighbors": 20}
SAC_LARGE = {"epochs": 100, "batch_size": 8192, "n_neighbors": 50}
LARGE_ABOVE = 512


@register_method("sac")
@dataclass
class Sac(CounterpartTrainingMethod):
    """SAC (adapted: TAC counterparts for BLIP-2 captions): text and image heads trained with
    reliability-weighted instance contrast, bidirectional alignment and balance."""

    tau: float | None = None
    """Temperature of the softmax over the selected nouns that weights each image's counterpart
    (None: the per-dataset value, else TAC's 0.005)."""
    n_neighbors: int | None = None
    """Exact neighbours per train image in each space (None: 50 above 512 clusters, else 20)."""
    epochs: int | None = None
    """Training epochs (None: 100 above 512 clusters, else 30)."""
    batch_size: int | None = None
    """Train images per step, the last incomplete batch dropped; shrunk to the train split when
    larger (None: 8,192 above 512 clusters, else 512)."""
    lr: float = 1e-3
    """Adam learning rate of both heads (betas 0.9, 0.99)."""
    temperature: float = 1.1
    """Temperature T of the instance contrast and its reliability weights."""
    weight_scale: float = 1.0
    """a: scale of the similarity inside the reliability weight's sigmoid."""
    alpha: float = 0.9
    """Share of the anchor pair's reliability in a sample's weight (the rest: the other view's)."""
    alignment_weight: float = 0.6
    """lambda_a: weight of the bidirectional alignment of the two heads."""
    consistency_beta: float = 0.5
    """beta: share of the instance term in the alignment (the rest: the cluster-column term)."""
    balance_weight: float = 4.0
    """lambda_b: weight of the entropy of both heads' batch-mean predictions (subtracted)."""
    weighted: bool = True
    """Weight the instance contrast by reliability (False: plain mean)."""

    version = "1"
    tags = frozenset({"adapted"})
    resources = Resources(cpus=1, gpus=0.25)
    quick_params = {"epochs": 2, "select_n_init": 2}
    param_constraints = {
        **NounSelectingMethod.param_constraints,
        "tau": POSITIVE,
        "n_neighbors": AT_LEAST_ONE,
        "epochs": AT_LEAST_ONE,
        "batch_size": AT_LEAST_ONE,
        "lr": POSITIVE,
        "temperature": POSITIVE,
        "weight_scale": POSITIVE,
        "alpha": FRACTION,
        "alignment_weight": NON_NEGATIVE,
        "consistency_beta": FRACTION,
        "balance_weight": NON_NEGATIVE,
    }
    # VLM4Cluster's LAION-400M ViT-B/32 profile (its only non-default value on our datasets)
    dataset_settings: ClassVar[dict[str, dict[str, Any]]] = merge_settings(
        NounSelectingMethod.dataset_settings, {"imagenet": {"tau": 0.01}}
    )

    def training_config(self, dataset: str, n_train: int, n_clusters: int) -> dict[str, Any]:
        """tau, epochs, batch size and neighbours of a run: the given values, else by K."""
        rule = SAC_LARGE if n_clusters > LARGE_ABOVE else SAC_SMALL
        config = {name: self.resolved(name, dataset, value) for name, value in rule.items()}
        config["tau"] = self.resolved("tau", dataset, 0.005)
        config["batch_size"] = min(config["batch_size"], n_train)
        config["n_neighbors"] = min(config["n_neighbors"], n_train - 1)
        return config

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Train both heads on the train split; the image head labels the test split."""
        import torch

        from laicbench.cluster.heads import ClusterHead
        from laicbench.cluster.knn import cosine_knn
        from laicbench.cluster.nouns import normalise, text_counterparts
        from laicbench.cluster.training import predict_labels, random_neighbour, train_epochs

        device = features.device
        selected = self._select(features, n_clusters, seed)
        x_np = normalise(features.image_train).numpy()
        cfg = self.training_config(features.dataset, len(x_np), n_clusters)
        self.artefacts_["resolved"].update(cfg)
        t_np = text_counterparts(x_np, selected, cfg["tau"], device=device)
        k = cfg["n_neighbors"]
        nb_text = torch.as_tensor(cosine_knn(t_np, k, device=device)[0], device=device)
        nb_image = torch.as_tensor(cosine_knn(x_np, k, device=device)[0], device=device)
        x, t = torch.as_tensor(x_np, device=device), torch.as_tensor(t_np, device=device)

        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        dim = x.shape[1]
        text_head = ClusterHead(dim, n_clusters).to(device)
        image_head = ClusterHead(dim, n_clusters).to(device)
        params = [*text_head.parameters(), *image_head.parameters()]
        optimiser = torch.optim.Adam(params, lr=self.lr, betas=(0.9, 0.99))

        def step(index: torch.Tensor, _epoch: int) -> dict[str, float]:
            a, b = random_neighbour(nb_text, index, gen), random_neighbour(nb_image, index, gen)
            c, e = random_neighbour(nb_image, index, gen), random_neighbour(nb_text, index, gen)
            probs = {
                "p_t": text_head(t[index]),
                "p_v": image_head(x[index]),
                "q_t": text_head(t[a]),
                "q_v": image_head(x[b]),
                "r_t": text_head(t[c]),
                "r_v": image_head(x[e]),
            }
            loss, parts = sac_loss(probs, self)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            return parts

        for head in (text_head, image_head):
            head.train()
        history = train_epochs(step, len(x), cfg["batch_size"], cfg["epochs"], gen, device)
        image_head.eval()
        x_test = normalise(features.image_test, device)
        labels = predict_labels(image_head, x_test)
        _, nearest = text_counterparts(
            x_test.cpu().numpy(), selected, cfg["tau"], device=device, return_nearest=True
        )
        self.artefacts_.update(
            {
                "loss_history": history,
                "selection": "the image head after the last epoch, no labels (SAC's test-label "
                "early stopping is not used)",
                "text_source": "TAC counterparts of the noun bank (SAC: BLIP-2 captions, SBERT)",
                "cluster_nouns": self._cluster_nouns(labels, nearest),
            }
        )
        return labels


def reliability_contrast(
    u, w, anchor, view, *, temperature: float, weight_scale: float, alpha: float, weighted: bool
):
    """SAC's instance contrast D(u, w) of two (B, K) probability batches: the mean over the 2B
    rows of -log softmax (over the other 2B - 1 rows) of the partner's similarity, rows
    L1-normalised, similarities / `temperature`. With `weighted`, both rows of pair j weigh
    alpha sigmoid(a <anchor_0j, anchor_1j> / T) + (1 - alpha) sigmoid(a <view_0j, view_1j> / T)
    (rows L1-normalised; no gradient) and the mean is weighted."""
    import torch
    import torch.nn.functional as F

    def pair_similarity(pair):
        left, right = (F.normalize(p, p=1, dim=1) for p in pair)
        return (left * right).sum(dim=1)

    n = len(u)
    z = torch.cat([F.normalize(u, p=1, dim=1), F.normalize(w, p=1, dim=1)])
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=sim.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(sim.device)
    losses = F.cross_entropy(sim, partner, reduction="none")
    if not weighted:
        return losses.mean()
    with torch.no_grad():
        first = torch.sigmoid(weight_scale * pair_similarity(anchor) / temperature)
        second = torch.sigmoid(weight_scale * pair_similarity(view) / temperature)
        weights = (alpha * first + (1 - alpha) * second).repeat(2)
    return (weights * losses).sum() / weights.sum().clamp_min(1e-8)


def column_alignment(p_text, p_image):
    """SAC's cluster-level alignment: binary cross-entropy with logits of each cluster's column
    sum over the batch of p_text * p_image against 1, averaged over clusters."""
    import torch
    import torch.nn.functional as F

    sums = (p_text * p_image).sum(dim=0)
    return F.binary_cross_entropy_with_logits(sums, torch.ones_like(sums))


def sac_loss(probs: dict, method: Sac):
    """SAC's loss on one batch of the six probability batches (p_t, p_v, q_t, q_v, r_t, r_v:
    anchors, text and image neighbours, cross pairs); returns (loss, parts)."""
    from laicbench.cluster.heads import batch_entropy, consistency

    options = {
        "temperature": method.temperature,
        "weight_scale": method.weight_scale,
        "alpha": method.alpha,
        "weighted": method.weighted,
    }
    p_t, p_v, q_t, q_v = probs["p_t"], probs["p_v"], probs["q_t"], probs["q_v"]
    r_t, r_v = probs["r_t"], probs["r_v"]
    intra = reliability_contrast(p_v, r_v, (p_v, r_v), (p_t, r_t), **options)
    inter = reliability_contrast(p_v, q_t, (p_v, q_t), (p_t, q_v), **options)
    inter = inter + reliability_contrast(p_t, q_v, (p_v, q_t), (p_t, q_v), **options)
    beta = method.consistency_beta
    align = beta * consistency(p_t, p_v) + (1 - beta) * column_alignment(p_t, p_v)
    balance = batch_entropy(p_t) + batch_entropy(p_v)
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
    """One SAC training step at ImageNet-1K size (K = 1,000, batch 8,192, 512-d), random
    features: six head passes, the loss, the update."""
    import torch

    from laicbench.api.bench import DIM
    from laicbench.cluster.heads import ClusterHead

    heads = (ClusterHead(DIM, 1000).to(device), ClusterHead(DIM, 1000).to(device))
    optimiser = torch.optim.Adam([p for h in heads for p in h.parameters()], betas=(0.9, 0.99))
    method = Sac()

    def step() -> None:
        names = ("p_t", "p_v", "q_t", "q_v", "r_t", "r_v")
        probs = {
            n: heads[i % 2](torch.randn(8192, DIM, device=device)) for i, n in enumerate(names)
        }
        loss, _ = sac_loss(probs, method)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return step


Sac.training_step = ("sac: head training", _bench_training_step)  # defined below the class
