"""The attack interface: what an attack is given and what it returns.

An attack works in pixel space: on a batch of images after resizing and cropping, as floats in
[0, 1] before the backbone's mean/std normalisation, and returns the perturbed batch in the same
space. The pipeline normalises and encodes the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch

# Bump when an attack's code changes what it computes, so that old cache entries are not used.
ATTACK_CODE_VERSION = "1"


class Normalizer:
    """The backbone's input normalisation, ``(x - mean) / std`` per channel, on `device`."""

    def __init__(self, mean: list[float], std: list[float], device: str):
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """`pixels` (b, 3, H, W) in [0, 1] -> the model's input."""
        return (pixels - self.mean) / self.std


@dataclass
class AttackContext:
    """What an attack may use before it perturbs a split: the frozen model under attack and its
    normalisation, the device and precision of extraction, and `clean_test_features(backbone)`:
    the clean test features (n, d) of the split under a backbone (``ARCH:PRETRAINED``), in split
    order, from the feature cache (a surrogate's embeddings of the target images)."""

    model: torch.nn.Module
    normalize: Normalizer
    device: str
    precision: str
    clean_test_features: Callable[[str], np.ndarray]


class Attack:
    """Base class of attacks: a dataclass whose fields are its parameters.

    ``param_constraints`` declares each parameter's range (``laicbench.api.params``); ``check``
    adds the checks between parameters; ``key_fields`` is what identifies the attack in cache
    keys and records (its parameters, plus what a parameter points to: a checkpoint's checksum);
    ``setup`` is called once per split before ``perturb``, which is called per batch.
    """

    param_constraints: ClassVar[dict[str, Any]] = {}

    def check(self) -> None:
        """UserError for parameters that do not fit together (each is checked on its own)."""

    def key_fields(self) -> dict[str, Any]:
        """The cache-key fields of this attack: its parameters and code version."""
        return {**asdict(self), "attack_code": ATTACK_CODE_VERSION}

    def setup(self, context: AttackContext) -> None:
        """Keep what ``perturb`` needs of `context`."""
        self.context = context

    def perturb(self, pixels: torch.Tensor, first: int) -> torch.Tensor:
        """The perturbed `pixels` ((b, 3, H, W) in [0, 1] on the context's device; samples
        `first` to `first + b - 1` of the split), in [0, 1]."""
        raise NotImplementedError


def sample_generator(seed: int, index: int) -> torch.Generator:
    """A CPU generator for sample `index` of a split under attack seed `seed`: what a sample
    draws depends on neither the batch size nor the device. (torch seeds its CPU generator
    with 32 bits, so the pair is mixed into 32 bits by NumPy's SeedSequence.)"""
    state = np.random.SeedSequence([seed, index]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))
