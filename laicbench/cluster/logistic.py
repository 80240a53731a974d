"""Multinomial logistic regression in torch, on the device of its features.

scikit-learn's ``LogisticRegression`` runs on the CPU; TURTLE's generalization score fits one
per fold and per gamma on the whole train split (TURTLE itself uses cuML's GPU solver), so a GPU
run would otherwise hold its GPU share while the CPU works. This solves the same problem as
scikit-learn's default (L2 penalty, lbfgs): the minimum of

    mean_i cross_entropy(x_i W + b, y_i) + ||W||^2 / (2 C n)

(C times the summed cross-entropy plus ||W||^2 / 2, scaled by 1 / (C n); the intercept is not
penalised), by full-batch L-BFGS with a strong-Wolfe line search, stopped when the largest
gradient entry falls below `tol` or after `max_iter` iterations, as scikit-learn stops. The
objective is strictly convex, so both reach the same classifier up to their tolerances.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class TorchLogisticRegression:
    """A scikit-learn-style classifier: ``fit(x, y)`` then ``predict(x)``, with `x` a tensor
    (its device is where the work runs) or an array, `y` integer labels (an array)."""

    def __init__(self, C: float = 1.0, max_iter: int = 1000, tol: float = 1e-4):
        self.C = C
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, x: torch.Tensor | np.ndarray, y: np.ndarray) -> TorchLogisticRegression:
        """Fit the weights to features `x` (n, d) and labels `y` (n,); returns self."""
        x = torch.as_tensor(x, dtype=torch.float32)
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        target = torch.as_tensor(codes, dtype=torch.long, device=x.device)
        n, k = len(x), len(self.classes_)
        self.weight_ = torch.zeros(x.shape[1], k, device=x.device, requires_grad=True)
        self.bias_ = torch.zeros(k, device=x.device, requires_grad=True)
        penalty = 1.0 / (2.0 * self.C * n)
        solver = torch.optim.LBFGS(
            [self.weight_, self.bias_],
            lr=1.0,
            max_iter=self.max_iter,
            tolerance_grad=self.tol,
            tolerance_change=1e-12,
            history_size=10,  # scipy's L-BFGS-B memory, which scikit-learn uses
            line_search_fn="strong_wolfe",
        )

        def objective() -> torch.Tensor:
            solver.zero_grad()
            logits = x @ self.weight_ + self.bias_
            loss = F.cross_entropy(logits, target) + penalty * (self.weight_ * self.weight_).sum()
            loss.backward()
            return loss

        solver.step(objective)
        return self

    def predict(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """The predicted label of each row of `x` (an array, the labels given to ``fit``)."""
        x = torch.as_tensor(x, dtype=torch.float32, device=self.weight_.device)
        with torch.no_grad():
            codes = (x @ self.weight_ + self.bias_).argmax(dim=1)
        return self.classes_[codes.cpu().numpy()]
