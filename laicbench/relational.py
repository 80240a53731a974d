"""Relational representations: ridge regression of images on nouns, computed exactly in d dims.

C = argmin ||X - C T||^2 + lambda ||C||^2 = X B T^T with B = (T^T T + lambda I_d)^-1 (d x d).
The rows of C have Gram matrix X G X^T with G = B T^T T B; with G = L L^T, x -> x L maps images
isometrically onto the rows of C. Distances, k-NN and k-means on the rows of C (normalised) are
therefore done on normalise(x L) in d dimensions; the N x M matrix C is only built for a sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RidgeRelations:
    """The ridge solution for one noun set: B (d x d), the isometry L (d x d) and the nouns T."""

    nouns: np.ndarray
    ridge: np.ndarray
    isometry: np.ndarray

    @classmethod
    def fit(cls, nouns: np.ndarray, lam: float) -> RidgeRelations:
        """Solve for noun features `nouns` (M, d), rows L2-normalised, with ridge weight `lam`."""
        t = np.asarray(nouns, dtype=np.float64)
        t = t / np.linalg.norm(t, axis=1, keepdims=True)
        gram = t.T @ t
        ridge = np.linalg.inv(gram + lam * np.eye(gram.shape[0]))
        g = ridge @ gram @ ridge
        w, v = np.linalg.eigh((g + g.T) / 2)
        isometry = v * np.sqrt(np.clip(w, 0, None))  # G = L L^T, also when G is singular (M < d)
        return cls(t, ridge, isometry)

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
