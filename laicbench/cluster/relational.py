"""Relational representations: ridge regression of images on nouns, computed exactly in d dims.

C = argmin ||X - C T||^2 + lambda ||C||^2 = X B T^T with B = (T^T T + lambda I_d)^-1 (d x d).
The penalty is given either as is ("absolute") or relative to the mean eigenvalue of T^T T
("relative": lambda = ridge_lambda * trace(T^T T) / d = ridge_lambda * M / d for unit-norm nouns).
The relative form means the same shrinkage whatever the number M of selected nouns: it is invariant
to repeating the noun set (T stacked twice gives the same relational representation), whereas an
absolute lambda fades as M grows and the solution drifts towards whitening T's weakest directions.
The rows of C have Gram matrix X G X^T with G = B T^T T B; with G = L L^T, x -> x L maps images
isometrically onto the rows of C. Distances, k-NN and k-means on the rows of C (normalised) are
therefore done on normalise(x L) in d dimensions; the N x M matrix C is only built for a sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RIDGE_SCALES = ("relative", "absolute")


def effective_penalty(ridge_lambda: float, scale: str, n_nouns: int, dim: int) -> float:
    """The lambda of the ridge problem for `ridge_lambda` given on `scale` ("relative": times
    the mean eigenvalue M / d of T^T T for M unit-norm nouns in d dimensions; "absolute": as is)."""
    if scale == "relative":
        return ridge_lambda * n_nouns / dim
    if scale == "absolute":
        return ridge_lambda
    raise ValueError(f"ridge_scale must be one of {RIDGE_SCALES}, not {scale!r}")


@dataclass(frozen=True)
class RidgeRelations:
    """The ridge solution for one noun set: B (d x d), the isometry L (d x d) and the nouns T."""

    nouns: np.ndarray
    ridge: np.ndarray
    isometry: np.ndarray
    penalty: float

    @classmethod
    def fit(cls, nouns: np.ndarray, lam: float, scale: str = "absolute") -> RidgeRelations:
        """Solve for noun features `nouns` (M, d), rows L2-normalised, with ridge weight `lam`
        on `scale` (see ``effective_penalty``); ``penalty`` is the lambda actually used."""
        t = np.asarray(nouns, dtype=np.float64)
        t = t / np.linalg.norm(t, axis=1, keepdims=True)
        penalty = effective_penalty(lam, scale, *t.shape)
        gram = t.T @ t
        ridge = np.linalg.inv(gram + penalty * np.eye(gram.shape[0]))
        g = ridge @ gram @ ridge
        w, v = np.linalg.eigh((g + g.T) / 2)
        isometry = v * np.sqrt(np.clip(w, 0, None))  # G = L L^T, also when G is singular (M < d)
        return cls(t, ridge, isometry, penalty)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Rows x L of L2-normalised images (n, d): same Gram matrix as the rows of C."""
        x = _unit_rows(images)
        return (x @ self.isometry).astype(np.float32)

    def representation(self, images: np.ndarray) -> np.ndarray:
        """The relational representation r = normalise(c) of each image, in d dimensions."""
        z = self.embed(images)
        return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)

    def relations(self, images: np.ndarray) -> np.ndarray:
        """The explicit relation rows C = X B T^T (n, M), for small samples (figures, tests)."""
        x = _unit_rows(images)
        return x @ self.ridge @ self.nouns.T


def _unit_rows(images: np.ndarray) -> np.ndarray:
    """Rows of `images` L2-normalised, in float64 (read-only cache arrays are not written)."""
    x = np.asarray(images, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
