"""NTK-SC: "Delving into Spectral Clustering with Vision-Language Representations" (Peng, Hu,
Liu, Chen, Lu, Fang; ICLR 2026; arXiv 2602.09586). Official code:
github.com/hyw1008/ICLR2026-Delving-into-Spectral-Clustering-with-Vision-Language-Representations
(not readable from here); its co-author's re-implementation hyw1008/VLM4Cluster
(``vlm4cluster/methods/ntk_sc/core.py``, MIT) was read as the reference. Neither states a licence
for the NTK-SC code itself (VLM4Cluster's source audit: "No repository-level license
identified"), so nothing is copied: this is written from the paper's description and the
reference's behaviour.

The method, on cached features:

1. Positive nouns: TAC's selection on the train split (k_s semantic centers by spherical
   k-means, each noun to the center winning a softmax over centers, the gamma most confident
   nouns of each center; ``laicbench.cluster.nouns.select_nouns``). k_s: the reference's
   per-dataset values, else 3K; gamma 5.
2. One affinity per prompt template t (T = 7, TAC's templates): the neural tangent kernel of
   the logsumexp of an image's cosine logits to the selected nouns N_t (each noun's embedding in
   template t), with respect to the nouns, anchored there. Its closed form (the reference's
   "pNTK fast") is the product of visual proximity and semantic overlap,

       K_t(i, j) = <x_i, x_j> * <p_i, p_j> / tau^2,   p_i = softmax(<x_i, N_t> / tau),

   over the L2-normalised test images x. Each image keeps its ``graph_k`` (30) largest kernel
   values (not itself); W_t = max(G, G^T) with negative values set to 0; the transition
   T_t = D^-1/2 W_t D^-1/2 with degrees below 1 counted as 1, as the reference does.
3. Regularised affinity diffusion (RAD) ensembles the T templates: starting from A = I and
   uniform weights beta, ``t_outer`` rounds of (alpha = beta / (mu + sum beta); up to
   ``t_diffuse`` steps A <- sum_t alpha_t T_t A T_t^T + (1 - sum alpha) I, symmetrised, negative
   entries cleared, until the relative Frobenius change falls below ``tol``; then the weights
   beta by ``ta_cd`` passes of pairwise coordinate descent on
   sum_t beta_t h_t + lam/2 ||beta||^2 over the simplex, with
   h_t = ||A||_F^2 - <A, T_t A T_t^T>, and a projection onto the simplex).
4. Spectral clustering of the diffused affinity A with K clusters.

Sparse, so that ImageNet-1K's 50,000 test images fit in memory. The reference is dense: it
computes each template's kernel as an N x N matrix and diffuses a dense N x N affinity (dense
CPU/GPU backends up to 50,000 test images, out-of-core N x N memory maps above). Here the
kernel graph is found exactly in bounded chunks (laicbench's chunked k-NN search,
``top_k_by``): the reference's graph without an N x N matrix. RAD is the reference's dense
computation when the test split has at most ``dense_limit`` (2,000) images (ImageNet-10,
ImageNet-Dogs, DTD, the demos: N x N float64, 32 MB at 2,000). Above, it keeps the diffused
affinity sparse, which is the approximation: after every step each row keeps its diagonal and
its ``n_neighbors`` largest other entries and the matrix is symmetrised by the element-wise
maximum (the reference's own sparse backend, ``full_sparse`` with ``red_prune_k``); the
products run in row blocks of bounded size, the half products A T_t cut to ``n_neighbors`` + 1
entries per row as well. At ``n_neighbors >= N - 1`` nothing is cut and the sparse path gives
the dense result. The default of 100 is a compromise between memory and accuracy, measured
against dense RAD (docs/methods.md). The terms h_t are exact on the sparse A
(<A, T A T> = sum((A T) * (A T)^T) for symmetric A and T). The spectral step is scikit-learn's,
with ``spectral``'s solver rule (``eigen_solver="auto"``): ARPACK's shift-invert factorisation
does not fit in memory at 50,000 test images with an affinity this wide, so AMG-preconditioned
LOBPCG takes over from 20,000 test images on. Time and memory at ImageNet-1K size
(``NtkScStep``): the documentation's performance page.

Deliberate differences from the reference: the spectral step is scikit-learn's spectral
embedding (normalised Laplacian, K eigenvectors) and laicbench's spherical k-means on its
normalised rows (shared with ``spectral``), in place of scikit-learn's ``SpectralClustering``
with ``assign_labels="discretize"``; the noun selection uses TAC's template ensemble (mean of the
unnormalised template embeddings, laicbench's cached noun features) where the reference averages
the normalised ones (their cosine on the demo's nouns is above 0.999), and laicbench's k-means
(torch, greedy k-means++, faiss's 256 points per centroid, 10 restarts) where it calls faiss. The
per-dataset temperatures and k_s are the reference's profile for LAION-400M ViT-B/32 (its
``NTK_SC_HYPERPARAMETER_DEFAULTS``; ``graph_k`` is 30 everywhere), applied here by dataset
whatever the backbone. Training-free: nothing is learned and nothing is selected with labels;
the template weights come from RAD's own objective (``artefacts_["selection"]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from laicbench.methods.noun_selecting import NounSelectingMethod
from laicbench.methods.spectral import EIGEN_SOLVERS

from laicbench.api import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    Constraint,
    FeatureBundle,
    IntRange,
    MethodOutputs,
    Need,
    Options,
    Resources,
    Scaled,
    register_method,
)

# The reference's per-dataset settings for LAION-400M ViT-B/32 (VLM4Cluster
# NTK_SC_HYPERPARAMETER_DEFAULTS and docs/method_hyperparameters.md): the pNTK temperature and
# the number of proxy clusters k_s ("filter_cluster_num"); datasets it leaves at the defaults
# take temperature 0.04 and k_s = 3K (written out where laicbench has the dataset).
NTK_SC_SETTINGS: dict[str, dict[str, Any]] = {
    "cifar10": {"temperature": 0.05, "n_semantic_centers": 167},
    "cifar20": {"temperature": 0.01, "n_semantic_centers": 167},
    "cifar100": {"temperature": 0.05, "n_semantic_centers": 167},
    "stl10": {"temperature": 0.06, "n_semantic_centers": 30},
    "imagenet10": {"temperature": 0.02, "n_semantic_centers": 43},
    "imagenet-dogs": {"temperature": 0.01, "n_semantic_centers": 65},
    "dtd": {"temperature": 0.05, "n_semantic_centers": 141},
    "ucf101": {"n_semantic_centers": 303},
    "imagenet": {"n_semantic_centers": 4271},
    "places365": {"n_semantic_centers": 6012},
    "aircraft": {"temperature": 0.07},
    "stanford-cars": {"temperature": 0.09, "n_semantic_centers": 300},
    "flowers102": {"temperature": 0.03, "n_semantic_centers": 300},
    "food101": {"temperature": 0.06, "n_semantic_centers": 300},
    "oxford-pets": {"n_semantic_centers": 100},
}
DEFAULT_TEMPERATURE = 0.04
# sparse entries an intermediate row block may hold (bounds the memory of every product)
BLOCK_ENTRIES = 1 << 23


@register_method("ntk-sc", aliases=("ntk_sc", "ntksc"))
@dataclass
class NtkSC(NounSelectingMethod):
    """NTK-SC (ICLR 2026): noun-anchored neural-tangent-kernel graphs per prompt template,
    ensembled by regularised affinity diffusion, then spectral clustering of the test split."""

    temperature: float | None = None
    """tau of each image's softmax over the selected nouns and of the kernel (None: the reference's
    per-dataset value, else 0.04)."""
    graph_k: int = 30
    """Largest kernel values kept per test image in each template's kernel graph."""
    n_neighbors: int = 100
    """Largest off-diagonal entries per row that the sparse diffusion keeps after every step (its
    approximation), used above dense_limit test images."""
    dense_limit: int = 2000
    """Up to this many test images the diffusion is dense and exact (N x N float64)."""
    mu: float = 0.1
    """RAD's mu: the template weights are alpha = beta / (mu + sum beta), so the identity keeps a
    share."""
    lam: float = 10.0
    """RAD's lambda: the L2 penalty on the template weights beta, which spreads them over the
    templates."""
    t_outer: int = 5
    """RAD's outer rounds (diffusion, then the template weights)."""
    t_diffuse: int = 8
    """Diffusion steps per round at most."""
    ta_cd: int = 4
    """Passes of pairwise coordinate descent on the template weights per round."""
    tol: float = 1e-4
    """A round's diffusion stops once the relative Frobenius change of the affinity falls below
    this."""
    eigen_solver: str = "auto"
    """scikit-learn's eigensolver of the spectral step, as spectral's: 'auto' (ARPACK below 20,000
    test images, AMG from there on), 'arpack', 'lobpcg' or 'amg'."""
    n_init: int = 10
    """Restarts of the k-means on the L2-normalised spectral embedding rows."""

    version = "2"
    needs = frozenset({Need.NOUNS, Need.NOUN_TEMPLATES})
    tags = frozenset({"training-free"})
    resources = Resources(cpus=1, gpus=0.25)
    quick_params: ClassVar[dict[str, Any]] = {"select_n_init": 1, "t_outer": 2, "t_diffuse": 3}
    param_constraints: ClassVar[dict[str, Constraint]] = {
        **NounSelectingMethod.param_constraints,
        "temperature": POSITIVE,
        "graph_k": AT_LEAST_ONE,
        "n_neighbors": AT_LEAST_ONE,
        "dense_limit": NON_NEGATIVE,
        "mu": POSITIVE,
        "lam": POSITIVE,
        "t_outer": AT_LEAST_ONE,
        "t_diffuse": AT_LEAST_ONE,
        "ta_cd": NON_NEGATIVE,
        "tol": NON_NEGATIVE,
        "eigen_solver": Options(EIGEN_SOLVERS),
        "n_init": AT_LEAST_ONE,
    }
    dataset_settings: ClassVar[dict[str, dict[str, Any]]] = NTK_SC_SETTINGS
    # the kernel's temperature (the reference's per-dataset values span 0.01-0.09: a multiple of
    # the run's value) and the kernel graph's neighbours (30 everywhere in the reference)
    param_space: ClassVar[dict[str, Any]] = {
        "temperature": Scaled(0.25, 4.0),
        "graph_k": IntRange(10, 100, log=True),
    }

    @classmethod
    def value_in_run(cls, name: str, dataset: str, n_train: int, n_clusters: int) -> Any:
        """The temperature: per dataset, else 0.04; others as the base's."""
        if name == "temperature":
            return cls().resolved(name, dataset, DEFAULT_TEMPERATURE)
        return super().value_in_run(name, dataset, n_train, n_clusters)

    def semantic_centers(self, dataset: str, n_train: int, n_clusters: int) -> int:
        """k_s: the given value, else the reference's per-dataset value, else 3K (its default;
        TAC's max(N / 300, 3K) is not used)."""
        del n_train
        return self.resolved("n_semantic_centers", dataset, 3 * n_clusters)

    @classmethod
    def bench_steps(cls, size: str, device: str) -> list[tuple[str, Callable]]:
        """At ImageNet-1K size: the noun selection (shared), the kernel graphs and sparse RAD of
        50,000 test images (``NtkScStep``) and the spectral step on a graph as wide as the
        diffused affinity (``n_neighbors`` entries per row; ``SpectralStep``)."""
        from laicbench.methods.spectral import SpectralStep

        steps = super().bench_steps(size, device)
        if size == "imagenet":
            steps.append(("ntk-sc: kernel graphs and sparse RAD, 50,000", NtkScStep(device)))
            steps.append(SpectralStep.job(cls.n_neighbors, device))
        return steps

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Labels of the test images from the spectral clustering of their diffused affinity."""
        from laicbench.methods.spectral import resolved_eigen_solver, spectral_clustering_of

        x = np.asarray(features.image_test, dtype=np.float32)
        if len(x) <= n_clusters:
            raise ValueError(
                f"NTK-SC needs more test images ({len(x)}) than clusters ({n_clusters})"
            )
        selected = self._selected_indices(features, n_clusters, seed)
        templates = np.asarray(features.noun_template_features[:, selected], dtype=np.float32)
        temperature = float(self.resolved("temperature", features.dataset, DEFAULT_TEMPERATURE))
        graph_k = min(self.graph_k, len(x) - 1)
        transitions = [
            transition(kernel_graph(x, nouns, temperature, graph_k, device=features.device))
            for nouns in templates
        ]
        affinity, beta, info = rad(
            transitions,
            mu=self.mu,
            lam=self.lam,
            t_outer=self.t_outer,
            t_diffuse=self.t_diffuse,
            ta_cd=self.ta_cd,
            tol=self.tol,
            n_neighbors=None if len(x) <= self.dense_limit else self.n_neighbors,
            device=None if features.device == "cpu" else features.device,  # dense: on the GPU
        )
        embedding, labels = spectral_clustering_of(
            affinity, n_clusters, self.eigen_solver, self.n_init, seed, features.device
        )
        self.outputs_ = MethodOutputs(representation_test=embedding)
        self.artefacts_["resolved"].update(
            {
                "temperature": temperature,
                "graph_k": graph_k,
                "n_templates": len(templates),
                "eigen_solver": resolved_eigen_solver(self.eigen_solver, len(x)),
                "diffusion": info.pop("diffusion"),
            }
        )
        self.artefacts_["template_weights"] = [round(float(b), 6) for b in beta]
        self.artefacts_["rad"] = info
        self.artefacts_["selection"] = (
            "none: training-free; the template weights are RAD's own objective, no labels"
        )
        return labels


# ---------------------------------------------------------------------------------------------
# the kernel graphs


def kernel_graph(
    x: np.ndarray,
    nouns: np.ndarray,
    temperature: float,
    k: int,
    *,
    device: str = "cpu",
    query_chunk: int = 1024,
    key_chunk: int = 16384,
):
    """The symmetric k-NN graph (scipy CSR, float64, no self loops) of the noun-anchored kernel
    K(i, j) = <x_i, x_j> <p_i, p_j> / temperature^2 with p_i = softmax(<x_i, nouns> /
    temperature), rows L2-normalised: each image's `k` largest kernel values among the others,
    G -> max(G, G^T), negative values set to 0. Exact, in chunks (never N x N)."""
    import scipy.sparse as sp
    import torch

    from laicbench.cluster.knn import top_k_by
    from laicbench.cluster.tensors import unit_rows

    n = len(x)
    images = unit_rows(x, device)
    p = soft_assignments(images, unit_rows(nouns, device), temperature)
    scale = 1.0 / (temperature * temperature)

    def score(rows: slice, cols: slice) -> torch.Tensor:
        return (images[rows] @ images[cols].T) * (p[rows] @ p[cols].T) * scale

    idx, values = top_k_by(
        score,
        n,
        n,
        k,
        exclude_self=True,
        query_chunk=query_chunk,
        key_chunk=key_chunk,
        device=device,
    )
    rows = np.repeat(np.arange(n), k)
    values = np.maximum(np.nan_to_num(values.ravel().astype(np.float64)), 0.0)
    graph = sp.csr_matrix((values, (rows, idx.ravel())), shape=(n, n))
    graph = graph.maximum(graph.T).tocsr()
    graph.eliminate_zeros()
    return graph


def soft_assignments(images, nouns, temperature: float, chunk: int = 8192):
    """softmax(<x_i, n_j> / temperature) over the nouns, row chunk by row chunk (N x |S|, the
    one array of the graphs that grows with the nouns: 4.3 GB at ImageNet-1K's 50,000 x
    21,355)."""
    import torch

    out = torch.empty(len(images), len(nouns), device=images.device)
    for start in range(0, len(images), chunk):
        logits = images[start : start + chunk] @ nouns.T
        out[start : start + chunk] = torch.softmax(logits / temperature, dim=1)
    return out


def transition(graph):
    """D^-1/2 W D^-1/2 of a symmetric sparse graph, degrees below 1 counted as 1 (the
    reference's normalisation: it keeps the kernel's scale where degrees are small)."""
    import scipy.sparse as sp

    degree = np.asarray(graph.sum(axis=1)).ravel()
    scale = sp.diags(1.0 / np.sqrt(np.maximum(degree, 1.0)))
    out = (scale @ graph @ scale).tocsr()
    out.sort_indices()
    return out


# ---------------------------------------------------------------------------------------------
# regularised affinity diffusion


def rad(
    transitions: list,
    *,
    mu: float = 0.1,
    lam: float = 10.0,
    t_outer: int = 5,
    t_diffuse: int = 8,
    ta_cd: int = 4,
    tol: float = 1e-4,
    n_neighbors: int | None = None,
    device: str | None = None,
) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """Regularised affinity diffusion of the symmetric sparse `transitions` (module docstring):
    (the diffused affinity A as a sparse CSR matrix, the template weights beta, a summary).
    `n_neighbors` None: the reference's dense diffusion (N x N), with NumPy and SciPy, or with
    torch (float64, dense transitions) on `device` when one is given, as a GPU run does; else
    sparse (SciPy, on the CPU), each row cut to its diagonal and `n_neighbors` other entries
    after every step (nothing is cut when `n_neighbors` >= N - 1, which gives the dense
    result)."""
    import scipy.sparse as sp

    n = transitions[0].shape[0]
    if n_neighbors is None and device is not None:
        import torch

        affinity: Any = torch.eye(n, dtype=torch.float64, device=device)
        transitions = [
            torch.as_tensor(t.toarray(), dtype=torch.float64, device=device) for t in transitions
        ]
        step: Callable = _torch_dense_step
        overlap: Callable = _dense_overlap
    elif n_neighbors is None:
        affinity = np.eye(n)
        step = _dense_step
        overlap = _dense_overlap
    else:
        keep = min(int(n_neighbors), n - 1)
        affinity = sp.identity(n, dtype=np.float64, format="csr")

        def step(a, ts, alpha):
            return diffusion_step(a, ts, alpha, keep)

        overlap = quadratic_overlap
    beta = np.full(len(transitions), 1.0 / len(transitions))
    deltas: list[float] = []
    for _ in range(t_outer):
        alpha = beta / (mu + beta.sum())
        previous = affinity
        for _ in range(t_diffuse):
            affinity = step(affinity, transitions, alpha)
            deltas.append(relative_change(affinity, previous))
            if deltas[-1] < tol:
                break
            previous = affinity
        squared = _squared_norm(affinity)
        h = np.array([squared - overlap(affinity, t) for t in transitions])
        beta = update_weights(beta, h, lam, ta_cd)
    if not isinstance(affinity, (np.ndarray, sp.spmatrix, sp.sparray)):  # a torch tensor
        affinity = affinity.cpu().numpy()
    affinity = sp.csr_matrix(affinity)
    info = {
        "diffusion": "dense" if n_neighbors is None else f"sparse, {keep} neighbours per row",
        "steps": len(deltas),
        "last_changes": [float(f"{d:.3g}") for d in deltas[-3:]],
        "nnz_per_row": round(affinity.nnz / n, 2),
    }
    return affinity, beta, info


def _dense_step(affinity: np.ndarray, transitions: list, alpha: np.ndarray) -> np.ndarray:
    """The reference's dense RAD step: sum_t alpha_t T_t A T_t + (1 - sum alpha) I, symmetrised
    by the mean, negative entries cleared (T_t sparse, A dense: T A T = T (T A)^T)."""
    out = (1.0 - alpha.sum()) * np.eye(len(affinity))
    for a, t in zip(alpha, transitions, strict=True):
        out += a * (t @ (t @ affinity).T)
    out = 0.5 * (out + out.T)
    return np.maximum(out, 0.0, out=out)


def _torch_dense_step(affinity, transitions: list, alpha: np.ndarray):
    """``_dense_step`` in torch: A and the transitions T_t dense float64 tensors on one device."""
    import torch

    out = torch.eye(len(affinity), dtype=affinity.dtype, device=affinity.device)
    out *= 1.0 - float(alpha.sum())
    for a, t in zip(alpha, transitions, strict=True):
        out += float(a) * (t @ (t @ affinity).T)
    out = 0.5 * (out + out.T)
    return out.clamp_(min=0.0)


def _dense_overlap(affinity, t) -> float:
    """<A, T A T> for dense symmetric A (an array with T sparse, or tensors)."""
    return float((affinity * (t @ (t @ affinity).T)).sum())


def _squared_norm(a) -> float:
    return float(a.multiply(a).sum()) if hasattr(a, "multiply") else float((a * a).sum())


def diffusion_step(affinity, transitions: list, alpha: np.ndarray, keep: int):
    """One sparse RAD step: sum_t alpha_t T_t A T_t + (1 - sum alpha) I, negative entries
    cleared, each row cut to its diagonal and `keep` largest other entries, then symmetrised by
    the element-wise maximum (the reference's sparse backend). Computed in row blocks, as one
    product [alpha_1 T_1, ..., alpha_T T_T] @ [A T_1; ...; A T_T], with the half products A T_t
    cut to their `keep` + 1 largest entries per row as well."""
    import scipy.sparse as sp

    n = affinity.shape[0]
    halves = sp.vstack([_blocked(affinity, t, keep + 1) for t in transitions], format="csr")
    weighted = sp.hstack([a * t for a, t in zip(alpha, transitions, strict=True)], format="csr")
    identity = sp.identity(n, dtype=np.float64, format="csr") * (1.0 - alpha.sum())
    blocks = []
    for rows in row_blocks(weighted, halves):
        block = (weighted[rows] @ halves + identity[rows]).tocsr()
        block.data[block.data < 0] = 0.0
        blocks.append(_top_per_row(block, keep, diagonal_offset=rows.start))
    out = sp.vstack(blocks, format="csr")
    out = out.maximum(out.T).tocsr()
    out.eliminate_zeros()
    out.sort_indices()
    return out


def _blocked(left, right, keep: int):
    """left @ right in row blocks, each row cut to its `keep` largest entries."""
    import scipy.sparse as sp

    parts = [_top_per_row(left[rows] @ right, keep) for rows in row_blocks(left, right)]
    return sp.vstack(parts, format="csr")


def row_blocks(left, right) -> list[slice]:
    """Consecutive row ranges of ``left @ right`` whose products hold about ``BLOCK_ENTRIES``
    entries or fewer each (row i holds at most the sum of nnz(right[k]) over its entries k)."""
    import scipy.sparse as sp

    n = left.shape[0]
    pattern = sp.csr_matrix((np.ones(left.nnz), left.indices, left.indptr), shape=left.shape)
    bound = np.cumsum(pattern @ np.diff(right.indptr).astype(np.float64))
    total = bound[-1] if n else 0.0
    cuts = np.searchsorted(bound, np.arange(BLOCK_ENTRIES, total, BLOCK_ENTRIES), side="right")
    edges = np.unique(np.concatenate([[0], cuts, [n]]).astype(np.int64))
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _top_per_row(matrix, keep: int | None, diagonal_offset: int | None = None):
    """`matrix` (CSR) with each row cut to its `keep` largest entries (plus, with
    `diagonal_offset`, its diagonal entry, column = row + offset, always kept); None: as is."""
    import scipy.sparse as sp

    matrix = matrix.tocsr()
    counts = np.diff(matrix.indptr)
    extra = 0 if diagonal_offset is None else 1
    if keep is None or counts.max(initial=0) <= keep + extra:
        return matrix
    n_rows = matrix.shape[0]
    rows = np.repeat(np.arange(n_rows), counts)
    position = np.arange(matrix.nnz) - np.repeat(matrix.indptr[:-1], counts)
    values = np.full((n_rows, int(counts.max())), -np.inf)
    values[rows, position] = matrix.data
    if diagonal_offset is not None:
        diagonal = matrix.indices == rows + diagonal_offset
        values[rows[diagonal], position[diagonal]] = np.inf
    width = min(keep + extra, values.shape[1])
    top = np.argpartition(-values, width - 1, axis=1)[:, :width]
    valid = np.take_along_axis(values, top, axis=1) > -np.inf
    source = (matrix.indptr[:-1, None] + top)[valid]
    row_of = np.broadcast_to(np.arange(n_rows)[:, None], top.shape)[valid]
    out = sp.csr_matrix((matrix.data[source], (row_of, matrix.indices[source])), shape=matrix.shape)
    out.sort_indices()
    return out


def relative_change(current, previous) -> float:
    """||current - previous||_F / (||previous||_F + 1e-12) (dense or sparse)."""
    return float(np.sqrt(_squared_norm(current - previous))) / (
        float(np.sqrt(_squared_norm(previous))) + 1e-12
    )


def quadratic_overlap(affinity, t) -> float:
    """<A, T A T^T> for symmetric A and T, as sum((A T) * (A T)^T), in row blocks."""
    return sum(
        float((affinity[rows] @ t).multiply(t[rows] @ affinity).sum())
        for rows in row_blocks(affinity, t)
    )


def update_weights(beta: np.ndarray, h: np.ndarray, lam: float, passes: int) -> np.ndarray:
    """RAD's template weights: `passes` sweeps of pairwise coordinate descent on
    sum_t beta_t h_t + lam / 2 ||beta||^2 (each pair (i, j) moves along beta_i + beta_j =
    const, clipped to [0, 1]), each sweep followed by the projection onto the simplex."""
    beta = np.array(beta, dtype=np.float64)
    for _ in range(passes):
        for i in range(len(beta)):
            for j in range(i + 1, len(beta)):
                total = beta[i] + beta[j]
                new_i = min(max((lam * total + h[j] - h[i]) / (2.0 * lam), 0.0), 1.0)
                beta[i], beta[j] = new_i, min(max(total - new_i, 0.0), 1.0)
        beta = project_to_simplex(beta)
    return beta


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """The Euclidean projection of max(v, 0) onto the probability simplex (uniform when all
    entries are 0)."""
    v = np.maximum(np.asarray(v, dtype=np.float64), 0.0)
    if v.sum() == 0.0:
        return np.full(len(v), 1.0 / len(v))
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u)
    ranks = np.arange(1, len(v) + 1)
    rho = np.nonzero(u > (cumulative - 1.0) / ranks)[0][-1]
    theta = (cumulative[rho] - 1.0) / (rho + 1.0)
    return np.maximum(v - theta, 0.0)


class NtkScStep:
    """Picklable bench job: NTK-SC's own steps at ImageNet-1K's test size (50,000 images, K =
    1,000, 7 templates of 21,355 selected nouns, i.e. 4,271 centers x 5), on synthetic
    features: the soft assignments and one template's exact 30-NN kernel graph (a slice of
    queries timed against all images, x 7 templates), then one sparse RAD step (100 entries per
    row) and one term h_t on full-size 30-NN graphs (x 40 steps, the most the defaults take,
    and x 7 templates x 5 rounds).
    Peak memory is that of the full-size arrays; the spectral step is its own job
    (``SpectralStep``)."""

    QUERIES = 1024

    def __init__(self, device: str):
        self.device = device

    def __call__(self) -> tuple[float, float, str]:
        import time

        import scipy.sparse as sp
        import torch

        from laicbench.api.bench import synthetic, timed
        from laicbench.cluster.knn import cosine_knn, top_k_by
        from laicbench.cluster.tensors import unit_rows

        n, n_templates, n_nouns, tau = 50_000, 7, 21_355, DEFAULT_TEMPERATURE
        k, keep = NtkSC.graph_k, NtkSC.n_neighbors
        x = unit_rows(synthetic(n, 1000, 1)[0], self.device)
        nouns = unit_rows(synthetic(n_nouns, 1000, 3)[0], self.device)
        start = time.perf_counter()
        soft = [soft_assignments(x, nouns, tau)]  # 50,000 x 21,355: 4.3 GB
        t_soft = time.perf_counter() - start

        def score(rows: slice, cols: slice) -> torch.Tensor:
            return (x[rows] @ x[cols].T) * (soft[0][rows] @ soft[0][cols].T)

        q = self.QUERIES
        t_graph = timed(
            lambda: top_k_by(score, q, n, k, exclude_self=True, key_chunk=16384, device=self.device)
        )
        soft.clear()
        idx, sims = cosine_knn(x, k, device=self.device)
        graph = sp.csr_matrix(
            (
                np.maximum(sims.ravel(), 0.0).astype(np.float64),
                (np.repeat(np.arange(n), k), idx.ravel()),
            ),
            shape=(n, n),
        )
        t = transition(graph.maximum(graph.T).tocsr())
        transitions = [t] * n_templates
        alpha = np.full(n_templates, 1.0 / n_templates / 1.1)
        affinity = sp.identity(n, dtype=np.float64, format="csr")
        affinity = diffusion_step(affinity, transitions, alpha, keep)  # settles the width
        steps: list[float] = []
        for _ in range(2):
            holder = [affinity]
            steps.append(
                timed(lambda h=holder: h.append(diffusion_step(h[0], transitions, alpha, keep)))
            )
            affinity = holder[-1]
        t_step = steps[-1]
        t_h = timed(lambda: quadratic_overlap(affinity, t))
        graphs = (t_soft + t_graph * n / q) * n_templates
        diffusion = t_step * 40 + t_h * n_templates * 5
        note = (
            f"kernel graphs {graphs / 60:.0f} min (soft assignments {t_soft:.0f} s + "
            f"{t_graph:.0f} s for {q:,} of 50,000 queries, x {n / q:.0f} x 7 templates); RAD "
            f"{diffusion / 60:.0f} min ({t_step:.1f} s per step x 40, {t_h:.1f} s per term h_t "
            f"x 7 x 5; affinity {affinity.nnz / n:.0f} entries per row)"
        )
        measured = t_soft + t_graph + sum(steps) + t_h
        return measured, graphs + diffusion, note
