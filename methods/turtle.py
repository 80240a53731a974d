"""TURTLE (Gadetsky et al., "Let Go of Your Labels with Unsupervised Transfer", ICML 2024; code
mlbio-epfl/turtle, no licence file: reimplemented from the paper's description and the code's
settings, not copied).

A task encoder, a weight-normalised linear layer from the features to K classes, labels the
train images: tau(x) = softmax(theta x). Every outer iteration draws `batch_size` train images
(without replacement; all of them when fewer) and fits a fresh linear classifier to tau's soft
labels with `inner_steps` Adam steps (`inner_lr`; kept across iterations with ``warm_start``).
The outer loss is the cross-entropy of that classifier's (detached) predictions against tau,
minus `gamma` times the entropy of the batch-mean of tau (first-order: the inner optimisation is
not differentiated through); Adam with `outer_lr`, `iterations` times. The test split is labelled
by argmax tau. Features are used as cached (TURTLE normalises nothing). Defaults are the code's:
gamma 10, 6,000 iterations, batch 10,000, 10 inner steps, both learning rates 1e-3.

Several representation spaces (``spaces``, a list of backbone names: the run's backbone is
always space 0, the others are added in order, repeats ignored), as the official code's
``--phis``: one task encoder per space, the labelling is the mean over spaces of their softmax
probabilities (the paper's Eq. 9); one inner classifier per space, all fitted to that common
labelling; the outer loss sums the spaces' cross-entropies and subtracts `gamma` times the sum
of each space's own batch-mean entropy. The other spaces' features are the same images under
the other backbones, read from laicbench's feature cache (so not on the simulated demo or a
features file, which live in one backbone's space).

Label-free selection: with ``gamma_grid`` (e.g. ``[1, 3, 10, 30]``) one task encoder is trained
per value and the one with the best generalization score is kept: the mean accuracy with which a
logistic regression (C = 1, scikit-learn's objective and stopping rule, solved in torch on the
run's device as TURTLE solves it with cuML on the GPU: ``laicbench.cluster.logistic``) predicts
the encoder's train pseudo-labels on held-out folds (`cv_folds`), averaged over the spaces as the
official code does. The scores are in the record.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from laicbench.api import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    FeatureBundle,
    FloatRange,
    Interval,
    Method,
    Resources,
    UserError,
    register_method,
)
from laicbench.api.features import other_backbones


@register_method("turtle")
@dataclass
class Turtle(Method):
    """TURTLE: a linear task encoder whose labels a fresh linear classifier learns best."""

    gamma: float = 10.0
    """Weight of the entropy of the batch-mean labelling, subtracted from the outer loss (it keeps
    the clusters balanced); the value used when gamma_grid is None."""
    outer_lr: float = 1e-3
    """Adam learning rate of the task encoder."""
    inner_lr: float = 1e-3
    """Adam learning rate of the inner linear classifier."""
    inner_steps: int = 10
    """Adam steps that fit the inner classifier to the task encoder's labels per outer iteration."""
    iterations: int = 6000
    """Outer iterations (task-encoder updates)."""
    batch_size: int = 10_000
    """Train images drawn per outer iteration (all of them when fewer)."""
    warm_start: bool = False
    """Keep the inner classifier across iterations instead of starting each one fresh."""
    gamma_grid: list[float] | None = None
    """Values of gamma to try, one task encoder each; the one with the best generalization score is
    kept (None: gamma alone)."""
    cv_folds: int = 10
    """Folds of the cross-validated logistic regression whose held-out accuracy on the pseudo-
    labels is the generalization score."""
    spaces: list[str] | None = None
    """Backbones whose features of the same images are further representation spaces, one task
    encoder each (None: the run's backbone alone)."""

    version = "1"
    tags = frozenset({"heavy"})
    quick_params = {"iterations": 30}
    resources = Resources(cpus=1, gpus=0.25)
    param_constraints = {
        "gamma": NON_NEGATIVE,
        "outer_lr": POSITIVE,
        "inner_lr": POSITIVE,
        "inner_steps": AT_LEAST_ONE,
        "iterations": AT_LEAST_ONE,
        "batch_size": AT_LEAST_ONE,
        "cv_folds": Interval(2, None),
    }
    # gamma, the weight of the entropy term: a decade either side of the code's 10
    param_space = {"gamma": FloatRange(1.0, 100.0, log=True)}

    @classmethod
    def extra_backbones(cls, params: dict[str, Any]) -> list[str]:
        """The backbones named by ``spaces`` (the harness drops the run's own and grants the run
        Need.IMAGE_SPACES for the others)."""
        spaces = params.get("spaces")
        if spaces is None:
            return []
        if not isinstance(spaces, list) or not all(isinstance(b, str) for b in spaces):
            raise UserError(
                "method 'turtle': spaces must be a list of backbone names, e.g. "
                f'["ViT-B-32:openai", "ViT-L-14:openai"], not {spaces!r}'
            )
        return list(spaces)

    @classmethod
    def bench_steps(cls, size: str, device: str) -> list[tuple[str, Callable]]:
        """At ImageNet-1K size: the outer iterations on the 1.28M train features."""
        if size != "imagenet":
            return []
        return [("turtle: outer iterations, batch 10,000, K = 1,000", _BenchIterations(device))]

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Train the task encoder on the train split (per gamma of the grid, keeping the best
        generalization score); it labels the test split."""
        import torch

        device = features.device
        others = other_backbones(self.extra_backbones(self.get_params()), features.backbone)
        spaces = [(features.image_train, features.image_test), *features.image_spaces(others)]
        for name, (train, test) in zip(others, spaces[1:], strict=True):
            if (len(train), len(test)) != (len(spaces[0][0]), len(spaces[0][1])):
                raise ValueError(
                    f"the features under {name} have {len(train)} / {len(test)} rows, not "
                    f"{len(spaces[0][0])} / {len(spaces[0][1])}: not the same images"
                )

        def tensors(split: int) -> list:
            return [
                torch.as_tensor(np.asarray(space[split], dtype=np.float32), device=device)
                for space in spaces
            ]

        xs = tensors(0)
        gammas = list(self.gamma_grid) if self.gamma_grid else [self.gamma]
        scores: dict[str, float] = {}
        best = None
        for gamma in gammas:
            encoders, history = self._train(xs, n_clusters, float(gamma), seed)
            if len(gammas) > 1:
                with torch.no_grad():
                    pseudo = task_labels(encoders, xs).cpu().numpy()
                score = float(
                    np.mean([generalization_score(x, pseudo, self.cv_folds, seed) for x in xs])
                )
                scores[str(gamma)] = score
                if best is None or score > best[0]:
                    best = (score, gamma, encoders, history)
            else:
                best = (None, gamma, encoders, history)
        _, gamma, encoders, history = best
        self.artefacts_ = {
            "resolved": {"gamma": gamma, "spaces": len(spaces)},
            "loss_history": history,
            "selection": "gamma with the best generalization score (cross-validated logistic "
            "regression on the train pseudo-labels), no labels"
            if len(gammas) > 1
            else "none (one gamma)",
        }
        if others:
            self.artefacts_["resolved"]["space_backbones"] = [features.backbone, *others]
        if scores:
            self.artefacts_["generalization_scores"] = scores
        del xs
        with torch.no_grad():
            return task_labels(encoders, tensors(1)).cpu().numpy()

    def _train(self, xs: list, n_clusters: int, gamma: float, seed: int):
        """(task encoder per space, loss history every 100 iterations) for one gamma."""
        import torch
        import torch.nn.functional as F
        from torch.nn.utils.parametrizations import weight_norm

        from laicbench.cluster.training import as_floats

        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        n = xs[0].shape[0]
        dims = [x.shape[1] for x in xs]
        encoders = [weight_norm(torch.nn.Linear(d, n_clusters)).to(xs[0].device) for d in dims]
        outer = torch.optim.Adam([p for e in encoders for p in e.parameters()], lr=self.outer_lr)
        inners = inner_optimiser = None
        history = []
        for iteration in range(self.iterations):
            index = torch.randperm(n, generator=gen)[: self.batch_size].to(xs[0].device)
            batches = [x[index] for x in xs]
            probs = [torch.softmax(e(b), dim=1) for e, b in zip(encoders, batches, strict=True)]
            if inners is None or not self.warm_start:
                inners = [torch.nn.Linear(d, n_clusters).to(xs[0].device) for d in dims]
                inner_optimiser = torch.optim.Adam(
                    [p for m in inners for p in m.parameters()], lr=self.inner_lr
                )
            targets = combine_spaces(probs).detach()
            for _ in range(self.inner_steps):
                loss = _total(
                    F.cross_entropy(m(b), targets) for m, b in zip(inners, batches, strict=True)
                )
                inner_optimiser.zero_grad()
                loss.backward()
                inner_optimiser.step()
            logits = [m(b).detach() for m, b in zip(inners, batches, strict=True)]
            loss, parts = turtle_loss(probs, logits, gamma)
            outer.zero_grad()
            loss.backward()
            outer.step()
            if iteration % 100 == 0 or iteration == self.iterations - 1:
                history.append({"iteration": iteration, **as_floats(parts)})  # a sync per 100
        return [e.eval() for e in encoders], history


class _BenchIterations:
    """Picklable bench job: `PROBE` outer iterations of TURTLE (default settings, one space) on
    ImageNet-1K-size synthetic train features, extrapolated to the default 6,000."""

    PROBE = 20

    def __init__(self, device: str):
        self.device = device

    def __call__(self) -> tuple[float, float, str]:
        import torch

        from laicbench.api.bench import SIZES, synthetic, timed

        cfg = SIZES["imagenet"]
        x = torch.as_tensor(synthetic(cfg["n_train"], cfg["k"], 0)[0], device=self.device)
        method = Turtle(iterations=self.PROBE)
        seconds = timed(lambda: method._train([x], cfg["k"], method.gamma, 0))
        factor = Turtle().iterations / self.PROBE
        note = (
            f"{self.PROBE} outer iterations (10 inner steps each) on 1.28M x 512 train features, "
            f"x {factor:.0f} for the default {Turtle().iterations:,}; x the number of spaces "
            "with `spaces`, x the grid's size with gamma_grid"
        )
        return seconds, seconds * factor, note


def _total(terms):
    """The sum of `terms` (tensors) without a leading 0: one term is itself."""
    return functools.reduce(operator.add, terms)


def combine_spaces(probs):
    """TURTLE's labelling from several representation spaces: the mean of the task encoders'
    softmax probabilities (B, K), one tensor per space (Eq. 9 of the paper; one space: its own
    probabilities)."""
    import torch

    return probs[0] if len(probs) == 1 else torch.stack(list(probs)).mean(dim=0)


def task_labels(encoders: list, xs: list):
    """argmax over K of the combined labelling of the task encoders on features `xs` (one per
    space); one space: the argmax of its logits."""
    import torch

    if len(encoders) == 1:
        return encoders[0](xs[0]).argmax(dim=1)
    probs = [torch.softmax(e(x), dim=1) for e, x in zip(encoders, xs, strict=True)]
    return combine_spaces(probs).argmax(dim=1)


def turtle_loss(tau, inner_logits, gamma: float):
    """TURTLE's outer loss on a batch: the cross-entropy of the inner classifier's predictions
    (`inner_logits`, detached) against the task encoder's labels `tau` (B, K), minus `gamma`
    times the entropy of tau's batch mean. With several spaces `tau` and `inner_logits` are
    lists (one tensor per space): the labels are their combination (``combine_spaces``), the
    cross-entropies of the spaces' inner classifiers are summed and so are the entropies of each
    space's own batch mean. Returns (loss, its parts as detached 0-dim tensors)."""
    import torch

    probs = [tau] if isinstance(tau, torch.Tensor) else list(tau)
    logits = [inner_logits] if isinstance(inner_logits, torch.Tensor) else list(inner_logits)
    labels = combine_spaces(probs)
    cross_entropy = _total(
        -(labels * torch.log_softmax(z, dim=1)).sum(dim=1).mean() for z in logits
    )
    entropy = _total(_entropy(p.mean(dim=0)) for p in probs)
    loss = cross_entropy - gamma * entropy
    parts = {"cross_entropy": cross_entropy.detach(), "entropy": entropy.detach()}
    return loss, parts


def _entropy(mean):
    import torch

    return -(mean * torch.log(mean.clamp_min(1e-12))).sum()


def generalization_score(x, pseudo: np.ndarray, folds: int, seed: int) -> float:
    """TURTLE's label-free score of a labelling: the mean held-out accuracy of a logistic
    regression (C = 1) trained to predict `pseudo` (an array) from `x` (a tensor, whose device
    runs the regressions, or an array), over `folds` folds."""
    from laicbench.cluster.internal import held_out_predictions
    from laicbench.cluster.logistic import TorchLogisticRegression

    def classifier() -> TorchLogisticRegression:
        return TorchLogisticRegression(C=1.0, max_iter=1000)

    accuracies = [
        float(np.mean(pseudo[held_out] == predicted))
        for held_out, predicted in held_out_predictions(x, pseudo, folds, seed, classifier)
    ]
    return float(np.mean(accuracies))
