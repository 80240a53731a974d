"""CPP (Chu, Tong, ..., Ma, "Image Clustering via the Principle of Rate Reduction in the Age of
Pretrained Models", ICLR 2024; code LeslieTrue/CPP, no licence file: reimplemented from the
paper and the code's settings, not copied), on cached features.

A network (``laicbench.cluster.rate_reduction.SubspaceNet``: a two-layer trunk and two
L2-normalised linear heads) maps each L2-normalised train feature to Z (subspace head) and C
(cluster head). Per batch of B images the membership is the Sinkhorn projection of the
self-coefficients, Pi = B * Sinkhorn(|C C^T|; `pieta`, `piiter` half-steps)
(``laicbench.cluster.sinkhorn``), and the loss is the maximal coding rate reduction
    -R(Z) + R_c(Z, Pi) + `pi_weight` / 2 ||Pi||_F^2
(``laicbench.cluster.rate_reduction``; each column of Pi is one membership). The first
`warmup` + 1 steps maximise R(Z) alone; the cluster head then starts from the subspace head's
weights. SGD with momentum, one optimiser per group (`lr`, `lr_c`). ``single_head`` builds Pi
from Z instead (the official ``main_efficient.py``). The test split's membership is the
Sinkhorn plan of |C C^T| over all its images, computed chunked; its `affinity_neighbors`
largest entries per image, symmetrised, are spectrally clustered.

Fallbacks are the official parser's defaults (hidden 4,096, z 128, 30 epochs, batch 2,000, lr
3e-3, lr_c 2e-3, pieta 0.175, 5 half-steps, no warm-up beyond step 0); the per-dataset values are
the README's CIFAR-10 and ImageNet commands and the paper's CIFAR-20/100 settings as
VLM4Cluster lists them (its Table 8 profile). Label-free selection: the last epoch's network.
Deliberate differences: the official evaluation prints the accuracy of the batch being trained
on, and VLM4Cluster's default returns the epoch of best test accuracy: laicbench never looks at
labels and labels with the last epoch; the test affinity keeps the largest entries of the
exact plan per image (sparse, so that 50,000 test images fit) where the paper clusters the
dense membership; float32 throughout (the official code trains under autocast); features are
L2-normalised first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from laicbench.methods.subspace_nets import SHARED_CONSTRAINTS, SubspaceNetMethod, TrainingStep

from laicbench.api import NON_NEGATIVE, Resources, Scaled, register_method

# the paper's settings shared by its CIFAR runs
_PAPER = {"hidden": 4096, "z_dim": 128, "lr": 1e-4, "lr_c": 1e-4}


@register_method("cpp")
@dataclass
class Cpp(SubspaceNetMethod):
    """CPP: maximal coding rate reduction with a Sinkhorn-projected membership, spectral
    clustering of the test membership. Where a parameter left at None has no per-dataset value:
    hidden 4096, z_dim 128, 30 epochs, batch 2000, lr 3e-3, lr_c 2e-3, pieta 0.175, piiter 5,
    warmup 0 (the official parser's defaults)."""

    pi_weight: float = 0.05
    """Weight of the Frobenius penalty 1/2 ||Pi||_F^2 of the membership (the code's pigam)."""
    single_head: bool = False
    """Build the membership from the subspace head's Z (the code's main_efficient.py) instead
    of the cluster head's C."""

    version = "1"
    tags = frozenset({"heavy"})
    resources = Resources(cpus=1, gpus=0.25)
    quick_params = {"hidden": 32, "z_dim": 8, "epochs": 1, "batch_size": 128, "warmup": 2}
    param_constraints = {**SHARED_CONSTRAINTS, "pi_weight": NON_NEGATIVE}
    fallbacks = {
        "hidden": 4096,
        "z_dim": 128,
        "epochs": 30,
        "batch_size": 2000,
        "lr": 3e-3,
        "lr_c": 2e-3,
        "pieta": 0.175,
        "piiter": 5,
        "warmup": 0,
    }
    dataset_settings = {
        "cifar10": {**_PAPER, "epochs": 15, "batch_size": 1024, "pieta": 0.175, "warmup": 50},
        "cifar20": {**_PAPER, "epochs": 15, "batch_size": 1024, "pieta": 0.13, "warmup": 50},
        "cifar100": {**_PAPER, "epochs": 50, "batch_size": 1500, "pieta": 0.1, "warmup": 33},
        "imagenet": {
            "hidden": 2048,
            "z_dim": 1024,
            "epochs": 20,
            "batch_size": 1024,
            "lr": 1e-4,
            "lr_c": 1e-4,
            "pieta": 0.12,
            "warmup": 2000,
        },
    }
    # the learning rate (a decade either side) and the Sinkhorn temperature, which sets how
    # sparse the membership is (half to twice the run's)
    param_space = {"lr": Scaled(0.1, 10.0), "pieta": Scaled(0.5, 2.0)}

    @classmethod
    def bench_steps(cls, size: str, device: str) -> list[tuple[str, Callable]]:
        """At ImageNet-1K size: the training steps (ImageNet settings) and the test membership
        and spectral clustering of 50,000 images."""
        if size != "imagenet":
            return []
        label = "cpp: training (ImageNet settings) and the test membership of 50,000 images"
        return [(label, TrainingStep(cls, device))]

    def batch_loss(self, z, c, n_clusters: int, values: dict[str, Any]):
        """CPP's loss of a batch after the warm-up: -R(Z) + R_c(Z, Pi) + pi_weight/2 ||Pi||^2."""
        del n_clusters
        from laicbench.cluster.rate_reduction import membership_coding_rate, total_coding_rate
        from laicbench.cluster.sinkhorn import sinkhorn_plan

        source = z if self.single_head else c
        pi = sinkhorn_plan((source @ source.T).abs(), values["pieta"], values["piiter"])
        pi = pi * len(pi)
        expansion = total_coding_rate(z, self.eps)
        compression = membership_coding_rate(z, pi.T, self.eps)
        penalty = self.pi_weight * 0.5 * (pi**2).sum()
        loss = -expansion + compression + penalty
        parts = {
            "coding_rate": expansion.detach(),
            "membership_rate": compression.detach(),
        }
        return loss, parts

    def membership_vectors(self, z, c):
        """The vectors of the test membership: Z with ``single_head``, else C."""
        return z if self.single_head else c

    def test_affinity(self, c, values: dict[str, Any], device: str):
        """The largest `affinity_neighbors` entries per image of the test split's Sinkhorn plan
        of |C C^T| (chunked), symmetrised."""
        from laicbench.cluster.sinkhorn import top_plan_entries

        def score(rows: slice, cols: slice):
            return (c[rows] @ c[cols].T).abs()

        n = len(c)
        return top_plan_entries(
            score, n, self.neighbours(n), values["pieta"], values["piiter"], device=device
        )
