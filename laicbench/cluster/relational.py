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

Two further pieces (docs/ours.md):

- ``gcv_curve``: generalized cross-validation of the ridge regression of images on the nouns,
  GCV(lambda) = mean_i ||x_i - H x_i||^2 / d / (1 - tr(H) / d)^2 with the hat matrix
  H = T^T T (T^T T + lambda I)^-1, from one SVD of T: the classical label-free criterion for a
  ridge penalty (Golub, Heath and Wahba 1979), cheap for any number of penalties.
- ``RidgeRelations.sharpened``: each noun's relations standardised over the train images (its
  column of C: zero mean, unit variance; exact from the d x d second moment of the images, so
  C is never built for the train split), each row then standardised over the nouns, turned into
  a distribution over the nouns by a softmax at temperature tau, and mapped back to d dimensions
  as the mixture of the noun features it weights. The nouns an image relates to more than other
  images do then decide its representation: a noun related to many images alike (one that names
  a nuisance shared by all classes, or the part all texts share) weighs less, as do the many
  weak relations to nouns that describe the image poorly (which, summed, carry the nuisance).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

RIDGE_SCALES = ("relative", "absolute")
SHARPEN_CHUNK = 8192  # image rows whose N x M relations are built at once


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
    """The ridge solution for one noun set: B (d x d), the nouns T and the penalty; the isometry
    L (d x d) is computed on first use (the sharpened representation does not need it)."""

    nouns: np.ndarray
    ridge: np.ndarray
    penalty: float
    column_mean: np.ndarray | None = None
    column_std: np.ndarray | None = None

    @classmethod
    def fit(cls, nouns: np.ndarray, lam: float, scale: str = "absolute") -> RidgeRelations:
        """Solve for noun features `nouns` (M, d), rows L2-normalised, with ridge weight `lam`
        on `scale` (see ``effective_penalty``); ``penalty`` is the lambda actually used."""
        t = np.asarray(nouns, dtype=np.float64)
        t = t / np.linalg.norm(t, axis=1, keepdims=True)
        penalty = effective_penalty(lam, scale, *t.shape)
        gram = t.T @ t
        with _one_blas_thread():
            ridge = np.linalg.inv(gram + penalty * np.eye(gram.shape[0]))
        return cls(t, ridge, penalty)

    @functools.cached_property
    def isometry(self) -> np.ndarray:
        """L with L L^T = G = B T^T T B (d x d), also when G is singular (M < d)."""
        g = self.ridge @ (self.nouns.T @ self.nouns) @ self.ridge
        with _one_blas_thread():
            w, v = np.linalg.eigh((g + g.T) / 2)
        return v * np.sqrt(np.clip(w, 0, None))

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Rows x L of L2-normalised images (n, d): same Gram matrix as the rows of C."""
        x = _unit_rows(images)
        return (x @ self.isometry).astype(np.float32)

    def representation(self, images: np.ndarray) -> np.ndarray:
        """The relational representation r = normalise(c) of each image, in d dimensions."""
        z = self.embed(images)
        return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)

    def with_column_scale(self, images: np.ndarray) -> RidgeRelations:
        """These relations with each noun's mean and standard deviation of relation over
        `images` (the train split), from their d x d second moment (exact, no N x M matrix)."""
        x = _unit_rows(images, np.float32)
        weights = self.nouns @ self.ridge  # c_ij = x_i . w_j
        mean = weights @ x.mean(axis=0, dtype=np.float64)
        moment = (x.T @ x).astype(np.float64) / len(x)
        second = np.einsum("jd,de,je->j", weights, moment, weights)
        std = np.sqrt(np.maximum(second - mean**2, 0.0))
        return dataclasses.replace(self, column_mean=mean, column_std=np.maximum(std, 1e-12))

    def sharpened(self, images: np.ndarray, temperature: float) -> np.ndarray:
        """normalise(softmax(standardise(c_i) / temperature) T) for each relation row c_i of
        `images` (n, d), columns first standardised where ``with_column_scale`` set their scale;
        computed in float32, in chunks of rows; float32 (n, d)."""
        weights = (self.ridge @ self.nouns.T).astype(np.float32)  # d x M
        nouns = self.nouns.astype(np.float32)
        scaled = self.column_std is not None
        mean = self.column_mean.astype(np.float32) if scaled else None
        std = self.column_std.astype(np.float32) if scaled else None
        out = np.empty((len(images), nouns.shape[1]), dtype=np.float32)
        for start in range(0, len(images), SHARPEN_CHUNK):
            c = _unit_rows(images[start : start + SHARPEN_CHUNK], np.float32) @ weights
            if scaled:
                c = (c - mean) / std
            spread = np.maximum(c.std(axis=1, keepdims=True), 1e-12)
            p = np.exp((c - c.max(axis=1, keepdims=True)) / (spread * temperature))
            out[start : start + len(c)] = _unit_rows(p @ nouns, np.float32)
        return out

    def relations(self, images: np.ndarray) -> np.ndarray:
        """The explicit relation rows C = X B T^T (n, M), for small samples (figures, tests)."""
        x = _unit_rows(images)
        return x @ self.ridge @ self.nouns.T


def gcv_curve(nouns: np.ndarray, images: np.ndarray, penalties: np.ndarray) -> np.ndarray:
    """Generalized cross-validation error (see the module docstring) of the ridge regression of
    the L2-normalised `images` (n, d) on the L2-normalised `nouns` (M, d), one value per entry of
    `penalties` (absolute lambdas); one SVD of the nouns serves every penalty."""
    t = _unit_rows(nouns)
    x = _unit_rows(images)
    with _one_blas_thread():
        _, s, vt = np.linalg.svd(t, full_matrices=False)
    dim = t.shape[1]
    inside = (x @ vt.T) ** 2  # energy of each image along each right singular vector of T
    outside = float(np.sum(x**2) - np.sum(inside))  # energy the nouns do not span
    energy = inside.sum(axis=0)
    curve = []
    for lam in np.asarray(penalties, dtype=np.float64):
        shrink = lam / (s**2 + lam)
        residual = (float(np.sum(shrink**2 * energy)) + outside) / (len(x) * dim)
        fitted = float(np.sum(s**2 / (s**2 + lam)))
        curve.append(residual / (1 - fitted / dim) ** 2)
    return np.asarray(curve)


def _one_blas_thread():
    """A context in which LAPACK runs on one thread: the d x d decompositions here are small, and
    a multi-threaded OpenBLAS slows them down tenfold or more on a busy machine (measured: the SVD
    of 750 x 512 nouns took 17 s on two loaded cores with two threads, 1.5 s with one)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def _unit_rows(images: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Rows of `images` L2-normalised, in `dtype` (read-only cache arrays are not written)."""
    x = np.asarray(images, dtype=dtype)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
