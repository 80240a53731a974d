"""GradNorm: "On the Provable Importance of Gradients for (Autonomous) Language-Assisted Image
Clustering" (Peng, Lu, Zhang, Fang; ICCV 2025; extended version arXiv 2510.16335). Official code:
github.com/60pen9/On-the-Provable-Importance-of-Gradients-for-Language-Assisted-Image-Clustering,
which has no licence file, so it was read, not copied.

GradNorm is TAC's pipeline with TAC's noun filter replaced (the official ``filter_nouns.py``; the
rest of the repository is TAC's ``concat_kmeans.py`` with other temperatures). On the train split:
k_s semantic centers c_l (spherical k-means, normalised member means, as TAC); for every noun t
the softmax over centers p = softmax(<c_l, t> / T) at the filter temperature T; each noun goes to
its winning center y = argmax p; each center keeps the gamma nouns with the LOWEST score

    g(t) = ((sum_k p_k^q - p_y^q + (1 - p_y)^q) * ||t||_q^q)^(1/q),   q = 2 (``norm_p``),

which is the entrywise q-norm of the gradient of the cross-entropy CE(p, y) (pseudo-label y = the
argmax) with respect to the weights W = C / T of the linear classifier z = W t whose rows are the
centers over T: that gradient is the outer product (p - e_y) t^T, whose entrywise q-norm is
||p - e_y||_q * ||t||_q (with respect to the logits it is p - e_y, the same for unit nouns and
q = 2). Then TAC: soft nearest-noun counterparts at temperature tau, and either spherical k-means
with K on [x; t] of the test split (``gradnorm-notrain``) or TAC's two cluster heads trained by
cross-modal distillation, the image head labelling the test split (``gradnorm``).

Which end is kept: the LOWEST gradient norms, as the official code does. ``filter_nouns.py`` ranks
each center's nouns with ``rank = torch.argsort(-score, descending=True)`` and keeps
``class_index[rank[:topK]]``: sorting -score from largest to smallest is sorting score from
smallest to largest, so the first topK are the topK lowest scores (hyw1008/VLM4Cluster's
re-implementation, ``methods/gradnorm/core.py``, has the same line). It is also the reading under
which the paper's claim that GradNorm subsumes earlier filters holds: a small gradient means the
softmax is close to the one-hot pseudo-label, i.e. a confidently assigned noun, and as q grows
||p - e_y||_q tends to 1 - p_y, so ranking by the lowest norm becomes TAC's ranking by the highest
confidence; keeping the highest norms would keep the least confident nouns of each center.
``keep="highest"`` runs that other reading for ablation.

Per-dataset values (the official comments for ViT-B/32, declared in ``dataset_settings``): k_s
(``cluster_num``) 250/200/30/50/50/180/303/2000, T (``temp``) 0.06/0.08/0.08/0.018/0.02/0.08/
0.02/0.02 and gamma (``topK``) 5 except 3 on ImageNet, from ``filter_nouns.py``; tau
0.009/0.008/0.01/0.006/0.007/0.01/0.01/0.006 from ``concat_kmeans.py``; for CIFAR-10, CIFAR-20,
STL-10, ImageNet-10, ImageNet-Dogs, DTD, UCF101 and ImageNet. Other datasets: TAC's k_s rule
(max(N_train / 300, 3K)), gamma 5 and VLM4Cluster's defaults T = 0.04, tau = 0.005.

Deliberate differences from the official code: the center k-means is laicbench's (torch, greedy
k-means++, faiss's 256 points per centroid, TAC's 10 restarts; the official repository loads
precomputed centers, ``{dataset}_weights_{k}cluster.npy``, from a script it does not ship), and
the centers are TAC's normalised member means; all arithmetic is fp32 (official: fp16 nouns); the
score is computed without cancellation, 1 - p_y as the sum of the other probabilities and the
winner's term left out rather than added and subtracted (the same number in exact arithmetic). The
repository ships no head training: ``gradnorm`` is TAC's heads (methods/tac.py, its per-dataset
training table) on GradNorm's nouns, with train counterparts at the same tau as the test ones (the
repository's unused ``retrieve_text.py`` sets tau = 100, which makes every counterpart nearly the
mean noun). Model selection: none in ``gradnorm-notrain``; ``gradnorm`` keeps the heads after the
last epoch (TAC's rule), no labels (``artefacts.selection``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from laicbench.methods.noun_selecting import SEMANTIC_CENTERS_SPACE, NounSelectingMethod
from laicbench.methods.tac import RETRIEVAL_TAU_SPACE, Tac, TacHeadsStep, TacNoTrain

from laicbench.api import (
    POSITIVE,
    FeatureBundle,
    Options,
    PrimitiveStep,
    Scaled,
    merge_settings,
    register_method,
)

if TYPE_CHECKING:
    import torch

# GradNorm's official values for ViT-B/32, per dataset: k_s ("cluster_num"), the filter temperature
# ("temp") and nouns per center ("topK") from filter_nouns.py, the retrieval temperature ("tau")
# from concat_kmeans.py
GRADNORM_OFFICIAL = {
    "cifar10": (250, 0.06, 5, 0.009),
    "cifar20": (200, 0.08, 5, 0.008),
    "stl10": (30, 0.08, 5, 0.01),
    "imagenet10": (50, 0.018, 5, 0.006),
    "imagenet-dogs": (50, 0.02, 5, 0.007),
    "dtd": (180, 0.08, 5, 0.01),
    "ucf101": (303, 0.02, 5, 0.01),
    "imagenet": (2000, 0.02, 3, 0.006),
}
GRADNORM_SETTINGS = {
    dataset: {"n_semantic_centers": k, "filter_temperature": t, "gamma": gamma, "tau": tau}
    for dataset, (k, t, gamma, tau) in GRADNORM_OFFICIAL.items()
}
# datasets the official code does not list: TAC's gamma, VLM4Cluster's default temperatures
UNLISTED_DEFAULTS = {"gamma": 5, "filter_temperature": 0.04, "tau": 0.005}
KEEP = ("lowest", "highest")


def gradnorm_scores(probs: torch.Tensor, nouns: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """GradNorm's score of each noun: ||softmax - onehot(argmax)||_p * ||t||_p.

    `probs` (k_s, m): the softmax over centers of m nouns; `nouns` (m, d). That product is the
    entrywise p-norm of the gradient of the cross-entropy against the argmax pseudo-label with
    respect to the weights of the linear classifier on the noun (the official
    ``(score_1 * score_2) ** (1 / p)``); the winner's term is left out and 1 - p_y is the sum of
    the other probabilities, so a confident noun's small score suffers no cancellation.
    """
    winner = probs.argmax(dim=0, keepdim=True)
    others = probs.scatter(0, winner, 0.0)
    residual = others.pow(p).sum(dim=0) + others.sum(dim=0).pow(p)
    return (residual * nouns.abs().pow(p).sum(dim=1)).pow(1.0 / p)


def _positiveness(probs: torch.Tensor, nouns: torch.Tensor, p: float, keep: str) -> torch.Tensor:
    """The selection score (each center keeps its highest): minus the gradient norm when the
    lowest norms are kept, the norm itself otherwise."""
    scores = gradnorm_scores(probs, nouns, p)
    return -scores if keep == "lowest" else scores


@dataclass
class _GradNormSelection(NounSelectingMethod):
    """GradNorm's noun filter on NounSelectingMethod's selection."""

    gamma: int | None = None
    """Nouns kept per semantic center (None: the official per-dataset value, else 5)."""
    filter_temperature: float | None = None
    """T of the softmax over the semantic centers that assigns each noun and enters its gradient
    norm (None: the official per-dataset value, else 0.04)."""
    norm_p: float = 2.0
    """q of the entrywise q-norm of the cross-entropy gradient that scores each noun."""
    keep: str = "lowest"
    """Which end of the gradient norms each center keeps: 'lowest' (the confidently assigned nouns,
    as the official code) or 'highest' (the other reading, for ablation)."""

    version = "1"
    param_constraints = {
        "filter_temperature": POSITIVE,
        "norm_p": POSITIVE,
        "keep": Options(KEEP),
    }
    dataset_settings: ClassVar[dict[str, dict[str, Any]]] = GRADNORM_SETTINGS
    quick_params: ClassVar[dict[str, Any]] = {"select_n_init": 2, "n_init": 2}
    # the filter's temperature (official 0.018-0.08 by dataset: a multiple of the run's value),
    # TAC's retrieval temperature and k_s
    param_space = {
        "filter_temperature": Scaled(0.25, 4.0),
        "tau": RETRIEVAL_TAU_SPACE,
        "n_semantic_centers": SEMANTIC_CENTERS_SPACE,
    }

    @classmethod
    def value_in_run(cls, name: str, dataset: str, n_train: int, n_clusters: int) -> Any:
        """gamma, filter_temperature and tau: the official value for `dataset`, else
        ``UNLISTED_DEFAULTS``; others as the base's."""
        if name in UNLISTED_DEFAULTS:
            return cls().resolved(name, dataset, UNLISTED_DEFAULTS[name])
        return super().value_in_run(name, dataset, n_train, n_clusters)

    def _selection_rule(self) -> dict[str, Any]:
        if self.keep not in KEEP:
            raise ValueError(f"keep must be one of {KEEP}")
        score = functools.partial(_positiveness, p=self.norm_p, keep=self.keep)
        return {"temperature": self.filter_temperature, "score": score}

    def _for_dataset(self, dataset: str) -> _GradNormSelection:
        """A copy whose parameters left at None hold their values for `dataset` (official, else
        ``UNLISTED_DEFAULTS``; the rest stay None for the TAC code to resolve)."""
        names = self.param_names()
        return type(self)(
            **{name: self.resolved(name, dataset, UNLISTED_DEFAULTS.get(name)) for name in names}
        )

    def _adopt(self, run: _GradNormSelection) -> None:
        """Take the artefacts of the resolved copy `run`, with GradNorm's resolved values."""
        self.artefacts_ = run.artefacts_
        self.artefacts_["resolved"].update(
            {"gamma": run.gamma, "filter_temperature": run.filter_temperature, "tau": run.tau}
        )
        self._selected_words = run._selected_words


def _imagenet_selection_steps(device: str) -> list[tuple[str, Callable]]:
    return [GradNormStep.job(step, device) for step in ("kmeans_gradnorm", "gradnorm_scores")]


@register_method("gradnorm-notrain", aliases=("gradnorm_notrain", "gradnorm-nt"))
@dataclass
class GradNormNoTrain(_GradNormSelection, TacNoTrain):
    """GradNorm without training: TAC's k-means on [image; counterpart] with GradNorm's nouns."""

    tau: float | None = None
    """Temperature of the softmax over the selected nouns that weights each image's text
    counterpart (None: the official per-dataset value, else 0.005)."""

    param_constraints = {
        **TacNoTrain.param_constraints,
        **_GradNormSelection.param_constraints,
    }

    @classmethod
    def bench_steps(cls, size: str, device: str) -> list[tuple[str, Callable]]:
        """At ImageNet-1K size: the k-means of its k_s = 2,000 centers and the scoring of every
        noun (the test counterparts, 50,000 x at most 6,000 nouns, take seconds)."""
        return _imagenet_selection_steps(device) if size == "imagenet" else []

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """TAC no-train's clustering on GradNorm's nouns, with the per-dataset values."""
        run = self._for_dataset(features.dataset)
        labels = TacNoTrain.fit_predict(run, features, n_clusters, seed)
        self._adopt(run)
        return labels


@register_method("gradnorm")
@dataclass
class GradNorm(_GradNormSelection, Tac):
    """GradNorm's nouns with TAC's text and image cluster heads; the last epoch's image head."""

    tau: float | None = None
    """Temperature of the softmax over the selected nouns that weights each image's text
    counterpart (None: the official per-dataset value, else 0.005)."""

    param_constraints = {**Tac.param_constraints, **_GradNormSelection.param_constraints}
    dataset_settings: ClassVar[dict[str, dict[str, Any]]] = merge_settings(
        Tac.dataset_settings, GRADNORM_SETTINGS
    )
    quick_params: ClassVar[dict[str, Any]] = {"select_n_init": 2, "epochs": 2}
    # GradNorm's selection, and TAC's distillation temperature for the heads
    param_space = {
        **_GradNormSelection.param_space,
        "temperature": Tac.param_space["temperature"],
    }

    @classmethod
    def bench_steps(cls, size: str, device: str) -> list[tuple[str, Callable]]:
        """At ImageNet-1K size: GradNorm's selection, then TAC's counterparts (timed for 21,355
        nouns, an upper bound for GradNorm's 6,000), exact k-NN of both spaces and head training."""
        if size != "imagenet":
            return []
        tac = [PrimitiveStep.job(s, device) for s in ("counterparts", "knn")]
        return (
            _imagenet_selection_steps(device)
            + tac
            + [("tac: cluster-head training", TacHeadsStep(device))]
        )

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """TAC's head training on GradNorm's nouns, with the per-dataset values."""
        run = self._for_dataset(features.dataset)
        labels = Tac.fit_predict(run, features, n_clusters, seed)
        self._adopt(run)
        self.artefacts_["selection"] = (
            "none: the heads after the last epoch (TAC's rule), no labels"
        )
        return labels


class GradNormStep(PrimitiveStep):
    """Picklable bench job: GradNorm's selection at ImageNet-1K size (k_s = 2,000)."""

    LABELS = {
        "kmeans_gradnorm": "gradnorm noun selection: spherical k-means, k_s = 2,000",
        "gradnorm_scores": "gradnorm noun selection: tempered softmax and gradient norm of "
        "every noun, k_s = 2,000",
    }

    def _kmeans_gradnorm(self) -> tuple[float, float, str]:
        return self._kmeans(self._train(), 2000, 10, "k_s = 2,000")

    def _gradnorm_scores(self) -> tuple[float, float, str]:
        import torch

        from laicbench.api.bench import N_NOUNS, synthetic, timed
        from laicbench.cluster.nouns import normalise

        nouns, _ = synthetic(N_NOUNS, 4000, 2)
        centers = normalise(synthetic(2000, 2000, 3)[0], self.device)

        def score():
            for start in range(0, N_NOUNS, 16384):
                block = normalise(nouns[start : start + 16384], self.device)
                probs = torch.softmax(centers @ block.T / 0.02, dim=0)
                probs.max(dim=0)
                _positiveness(probs, block, 2.0, "lowest")

        seconds = timed(score)
        note = "softmax over 2,000 centers at T = 0.02 and the gradient norm of all 146,347 nouns"
        return seconds, seconds, note
