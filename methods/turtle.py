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

Label-free selection: with ``gamma_grid`` (e.g. ``[1, 3, 10, 30]``) one task encoder is trained
per value and the one with the best generalization score is kept: the mean accuracy with which a
logistic regression (scikit-learn, C = 1) predicts the encoder's train pseudo-labels on held-out
folds (`cv_folds`, as TURTLE's cross-validation with cuML). The scores are in the record.

TURTLE can combine several representation spaces (one encoder per backbone, probabilities
averaged); laicbench gives it the run's one backbone until sweeps take several backbones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from laicbench.api.features import FeatureBundle
from laicbench.api.method import Method, Resources
from laicbench.api.params import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Interval
from laicbench.api.registry import register_method


@register_method("turtle")
@dataclass
class Turtle(Method):
    """TURTLE: a linear task encoder whose labels a fresh linear classifier learns best."""

    gamma: float = 10.0
    outer_lr: float = 1e-3
    inner_lr: float = 1e-3
    inner_steps: int = 10
    iterations: int = 6000
    batch_size: int = 10_000
    warm_start: bool = False
    gamma_grid: list[float] | None = None
    cv_folds: int = 10

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

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Train the task encoder on the train split (per gamma of the grid, keeping the best
        generalization score); it labels the test split."""
        import torch

        device = features.device
        x = torch.as_tensor(np.asarray(features.image_train, dtype=np.float32), device=device)
        gammas = list(self.gamma_grid) if self.gamma_grid else [self.gamma]
        scores: dict[str, float] = {}
        best = None
        for gamma in gammas:
            encoder, history = self._train(x, n_clusters, float(gamma), seed)
            if len(gammas) > 1:
                with torch.no_grad():
                    pseudo = encoder(x).argmax(dim=1).cpu().numpy()
                score = generalization_score(
                    np.asarray(features.image_train), pseudo, self.cv_folds, seed
                )
                scores[str(gamma)] = score
                if best is None or score > best[0]:
                    best = (score, gamma, encoder, history)
            else:
                best = (None, gamma, encoder, history)
        _, gamma, encoder, history = best
        self.artefacts_ = {
            "resolved": {"gamma": gamma, "spaces": 1},
            "loss_history": history,
            "selection": "gamma with the best generalization score (cross-validated logistic "
            "regression on the train pseudo-labels), no labels"
            if len(gammas) > 1
            else "none (one gamma)",
        }
        if scores:
            self.artefacts_["generalization_scores"] = scores
        x_test = torch.as_tensor(np.asarray(features.image_test, dtype=np.float32), device=device)
        with torch.no_grad():
            return encoder(x_test).argmax(dim=1).cpu().numpy()

    def _train(self, x, n_clusters: int, gamma: float, seed: int):
        """(task encoder, loss history every 100 iterations) for one gamma."""
        import torch
        import torch.nn.functional as F
        from torch.nn.utils.parametrizations import weight_norm

        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        n, dim = x.shape
        encoder = weight_norm(torch.nn.Linear(dim, n_clusters)).to(x.device)
        outer = torch.optim.Adam(encoder.parameters(), lr=self.outer_lr)
        inner = inner_optimiser = None
        history = []
        for iteration in range(self.iterations):
            index = torch.randperm(n, generator=gen)[: self.batch_size].to(x.device)
            batch = x[index]
            tau = torch.softmax(encoder(batch), dim=1)
            if inner is None or not self.warm_start:
                inner = torch.nn.Linear(dim, n_clusters).to(x.device)
                inner_optimiser = torch.optim.Adam(inner.parameters(), lr=self.inner_lr)
            targets = tau.detach()
            for _ in range(self.inner_steps):
                loss = F.cross_entropy(inner(batch), targets)
                inner_optimiser.zero_grad()
                loss.backward()
                inner_optimiser.step()
            loss, parts = turtle_loss(tau, inner(batch).detach(), gamma)
            outer.zero_grad()
            loss.backward()
            outer.step()
            if iteration % 100 == 0 or iteration == self.iterations - 1:
                history.append({"iteration": iteration, **parts})
        return encoder.eval(), history


def turtle_loss(tau, inner_logits, gamma: float):
    """TURTLE's outer loss on a batch: the cross-entropy of the inner classifier's predictions
    (`inner_logits`, detached) against the task encoder's labels `tau` (B, K), minus `gamma`
    times the entropy of tau's batch mean. Returns (loss, its parts as floats)."""
    import torch

    cross_entropy = -(tau * torch.log_softmax(inner_logits, dim=1)).sum(dim=1).mean()
    mean = tau.mean(dim=0)
    entropy = -(mean * torch.log(mean.clamp_min(1e-12))).sum()
    loss = cross_entropy - gamma * entropy
    parts = {"cross_entropy": cross_entropy.item(), "entropy": entropy.item()}
    return loss, parts


def generalization_score(x: np.ndarray, pseudo: np.ndarray, folds: int, seed: int) -> float:
    """TURTLE's label-free score of a labelling: the mean held-out accuracy of a logistic
    regression (C = 1) trained to predict `pseudo` from `x`, over `folds` folds."""
    from sklearn.linear_model import LogisticRegression

    order = np.random.default_rng(seed).permutation(len(x))
    accuracies = []
    for held_out in np.array_split(order, min(folds, len(x))):
        train = np.setdiff1d(order, held_out, assume_unique=True)
        if len(np.unique(pseudo[train])) < 2:  # one class: the held-out fold is that class
            accuracies.append(float(np.mean(pseudo[held_out] == pseudo[train][0])))
            continue
        model = LogisticRegression(C=1.0, max_iter=1000).fit(x[train], pseudo[train])
        accuracies.append(float(model.score(x[held_out], pseudo[held_out])))
    return float(np.mean(accuracies))
