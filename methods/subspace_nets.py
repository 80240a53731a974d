"""What CPP and PRO-DSC share: the two-head network on cached features
(``laicbench.cluster.rate_reduction.SubspaceNet``), its training (SGD with momentum, one
optimiser for the trunk and subspace head, one for the cluster head; a warm-up of total coding
rate alone on the subspace head, after which the cluster head starts from the subspace head's
weights, as both official codes do), and the labelling of the test split by spectral clustering
of a sparse affinity of its cluster-head vectors. Each method supplies its loss after the
warm-up and its test affinity. The last epoch's network labels the test split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from laicbench.methods.fallbacks import WithFallbacks
from laicbench.methods.spectral import EIGEN_SOLVERS

from laicbench.api import (
    AT_LEAST_ONE,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    FeatureBundle,
    Interval,
    MethodOutputs,
    Options,
)

SELECTION = "the last epoch's network (no epoch or checkpoint selection), no labels"


@dataclass
class SubspaceNetMethod(WithFallbacks):
    """Base (not registered) of the methods that train CPP's two-head network. A parameter left
    at None takes the per-dataset value, else the method's fallback (its module docstring)."""

    hidden: int | None = None
    """Width of the network's trunk (two linear layers, batch norm after the first)."""
    z_dim: int | None = None
    """Width of the subspace and cluster heads (unit vectors)."""
    epochs: int | None = None
    """Training epochs over the train split."""
    batch_size: int | None = None
    """Train images per step (all of them when fewer); the self-coefficients are batch x batch."""
    lr: float | None = None
    """SGD learning rate of the trunk and the subspace head."""
    lr_c: float | None = None
    """SGD learning rate of the cluster head."""
    momentum: float = 0.9
    """SGD momentum of both optimisers."""
    weight_decay: float = 1e-4
    """Weight decay of the trunk and the subspace head."""
    weight_decay_cluster: float = 5e-3
    """Weight decay of the cluster head."""
    eps: float = 0.1
    """Distortion eps^2 of the coding rates."""
    pieta: float | None = None
    """Entropic temperature of the Sinkhorn projection of |C C^T|."""
    piiter: int | None = None
    """Sinkhorn half-steps (row, column, ...; odd: exact row sums)."""
    warmup: int | None = None
    """Steps of total-coding-rate warm-up on the subspace head (steps 0 to warmup; -1: none),
    after which the cluster head starts from the subspace head's weights."""
    affinity_neighbors: int = 50
    """Entries kept per test image in the test affinity (its largest), symmetrised: the sparse
    stand-in for the official dense n x n affinity."""
    n_init: int = 10
    """Restarts of the k-means on the L2-normalised spectral embedding."""
    eigen_solver: str = "auto"
    """Eigensolver of the spectral embedding, as spectral's: 'arpack', 'lobpcg', 'amg' or
    'auto' (ARPACK below 20,000 test images, AMG from there on)."""

    # the parameters resolved per run (given, per-dataset, fallback) and recorded
    per_run: ClassVar[tuple[str, ...]] = (
        "hidden",
        "z_dim",
        "epochs",
        "batch_size",
        "lr",
        "lr_c",
        "pieta",
        "piiter",
        "warmup",
    )

    def batch_loss(self, z, c, n_clusters: int, values: dict[str, Any]):
        """(loss, its parts as floats) of a batch after the warm-up: Z and C (batch, z_dim)."""
        raise NotImplementedError

    def test_affinity(self, c, values: dict[str, Any], device: str):
        """The sparse symmetric affinity (scipy CSR) of the test split's cluster-head vectors C."""
        raise NotImplementedError

    def resolve(self, features: FeatureBundle, n_clusters: int) -> dict[str, Any]:
        """The per-run values of ``per_run`` (given, per-dataset, fallback)."""
        return {name: self.value(name, features) for name in self.per_run}

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Train the network on the train split; the last epoch's network embeds the test split,
        whose affinity spectral clustering labels."""
        import torch
        from laicbench.methods.spectral import resolved_eigen_solver, spectral_clustering_of

        from laicbench.cluster.tensors import unit_rows
        from laicbench.cluster.training import train_epochs

        values = self.resolve(features, n_clusters)
        device = features.device
        x = unit_rows(features.image_train, device)
        batch = min(values["batch_size"], len(x))
        self.check_batch(batch, n_clusters)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net, optimisers = self.build(x.shape[1], values, device)
        count = [0]

        def step(index: torch.Tensor, epoch: int) -> dict[str, float]:
            parts = self.train_step(net, optimisers, x[index], count[0], n_clusters, values)
            count[0] += 1
            return parts

        history = train_epochs(step, len(x), batch, values["epochs"], gen, device)
        z_test, c_test = net.embed(unit_rows(features.image_test, device))
        vectors = self.membership_vectors(z_test, c_test)
        n = len(vectors)
        if n <= n_clusters:
            raise ValueError(f"{self.name} needs more test images ({n}) than clusters")
        affinity = self.test_affinity(vectors, values, device)
        _, labels = spectral_clustering_of(
            affinity, n_clusters, self.eigen_solver, self.n_init, seed, device
        )
        self.outputs_ = MethodOutputs(representation_test=vectors.cpu().numpy())
        self.artefacts_ = {
            "resolved": {
                **values,
                "batch_size": batch,
                "affinity_neighbors": self.neighbours(n),
                "eigen_solver": resolved_eigen_solver(self.eigen_solver, n),
            },
            "steps": count[0],
            "loss_history": history,
            "selection": SELECTION,
        }
        return labels

    def build(self, dim: int, values: dict[str, Any], device: str):
        """(network, (optimiser of trunk and subspace head, optimiser of the cluster head))."""
        import torch

        from laicbench.cluster.rate_reduction import SubspaceNet

        net = SubspaceNet(dim, values["hidden"], values["z_dim"]).to(device)
        main, cluster = net.parameter_groups()
        optimiser = torch.optim.SGD(
            main, lr=values["lr"], momentum=self.momentum, weight_decay=self.weight_decay
        )
        optimiser_c = torch.optim.SGD(
            cluster,
            lr=values["lr_c"],
            momentum=self.momentum,
            weight_decay=self.weight_decay_cluster,
        )
        return net, (optimiser, optimiser_c)

    def train_step(
        self, net, optimisers, xb, step: int, n_clusters: int, values: dict[str, Any]
    ) -> dict[str, float]:
        """One SGD step on the batch `xb` (the `step`-th of the run): total coding rate alone
        up to the warm-up's end (the cluster head then copies the subspace head), the method's
        loss after. Returns the loss parts."""
        from laicbench.cluster.rate_reduction import total_coding_rate

        net.train()
        z, c = net(xb)
        warming = step <= values["warmup"]
        if warming:
            loss = -total_coding_rate(z, self.eps)
            parts = {"coding_rate": -loss.detach()}
        else:
            loss, parts = self.batch_loss(z, c, n_clusters, values)
        for optimiser in optimisers:
            optimiser.zero_grad()
        loss.backward()
        optimisers[0].step()
        if not warming:
            optimisers[1].step()
        if step == values["warmup"]:
            net.start_cluster_head_from_subspace_head()
        return {"loss": loss.detach(), **parts}  # summed on the device, read once an epoch

    def membership_vectors(self, z, c):
        """The vectors whose |V V^T| gives the test affinity: the cluster head's C."""
        del z
        return c

    def check_batch(self, batch: int, n_clusters: int) -> None:
        """Refuse a batch the loss cannot use (none by default)."""
        del batch, n_clusters

    def neighbours(self, n: int) -> int:
        """Entries kept per test image in the affinity: ``affinity_neighbors``, at most n - 1."""
        return min(self.affinity_neighbors, n - 1)


SHARED_CONSTRAINTS = {
    "hidden": AT_LEAST_ONE,
    "z_dim": AT_LEAST_ONE,
    "epochs": AT_LEAST_ONE,
    "batch_size": Interval(2, None),
    "lr": POSITIVE,
    "lr_c": POSITIVE,
    "momentum": FRACTION,
    "weight_decay": NON_NEGATIVE,
    "weight_decay_cluster": NON_NEGATIVE,
    "eps": POSITIVE,
    "pieta": POSITIVE,
    "piiter": AT_LEAST_ONE,
    "warmup": Interval(-1, None),
    "affinity_neighbors": AT_LEAST_ONE,
    "n_init": AT_LEAST_ONE,
    "eigen_solver": Options(EIGEN_SOLVERS),
}


class TrainingStep:
    """Picklable bench job: a subspace-net method (`cls`, its ImageNet-1K settings, K = 1,000):
    `PROBE` post-warm-up training steps on synthetic features, extrapolated to the epochs over
    1.28M train images (warm-up steps, cheaper, counted as full steps), and the test affinity of
    `TEST_PROBE` synthetic test images, extrapolated quadratically to 50,000 (its cost is
    chunked n x n work); the spectral clustering of 50,000 nodes is timed by spectral's row."""

    PROBE = 2
    TEST_PROBE = 5000

    def __init__(self, cls: type, device: str):
        self.cls, self.device = cls, device

    def __call__(self) -> tuple[float, float, str]:
        import torch

        from laicbench.api.bench import SIZES, synthetic, timed

        cfg = SIZES["imagenet"]
        k = cfg["k"]
        method = self.cls()
        values = {
            name: self.cls.value_in_run(name, "imagenet", cfg["n_train"], k)
            for name in method.per_run
        }
        values["warmup"] = -1
        batch = values["batch_size"]
        x = torch.as_tensor(synthetic(batch, k, 0)[0], device=self.device)
        net, optimisers = method.build(x.shape[1], values, self.device)
        method.train_step(net, optimisers, x, 0, k, values)  # allocations, first-call costs
        t_steps = timed(
            lambda: [
                method.train_step(net, optimisers, x, i + 1, k, values) for i in range(self.PROBE)
            ]
        )
        steps = cfg["n_train"] // batch * values["epochs"]
        t_step = t_steps / self.PROBE
        test = torch.as_tensor(synthetic(self.TEST_PROBE, k, 1)[0], device=self.device)
        z, c = net.embed(test)
        t_test = timed(
            lambda: method.test_affinity(method.membership_vectors(z, c), values, self.device)
        )
        scale = (cfg["n_test"] / self.TEST_PROBE) ** 2
        note = (
            f"{t_step:.2f} s per step (batch {batch}, z {values['z_dim']}) x {steps:,} steps; "
            f"test affinity of {self.TEST_PROBE:,} images {t_test:.1f} s x {scale:.0f}"
        )
        return t_steps + t_test, t_step * steps + t_test * scale, note
