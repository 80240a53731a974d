"""Encode a split's images under attack: perturb each batch in pixel space, then normalise and
encode it; record how far each image moved in pixels and in embedding space."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from laicbench.api.settings import AttackSpec
from laicbench.data.attacks import build_attack
from laicbench.data.attacks.base import AttackContext, Normalizer
from laicbench.data.extract import encode_images


def attack_key_fields(spec: AttackSpec) -> dict[str, Any]:
    """The cache-key fields of attack `spec` (its name, parameters, code version and what a
    parameter points to, such as a checkpoint's checksum)."""
    return {"name": spec.name, **build_attack(spec).key_fields()}


def encode_attacked(
    spec: AttackSpec,
    model: torch.nn.Module,
    images: Sequence[Any],
    pixel_transform: Callable,
    preprocess: dict[str, Any],
    clean_test_features: Callable[[str], np.ndarray],
    device: str,
    precision: str,
    batch_size: int,
    num_workers: int,
    description: str,
) -> dict[str, np.ndarray]:
    """{"features": (n, d) float32 of the perturbed images, "linf": (n,) largest absolute pixel
    change of each image in [0, 1] units}. `pixel_transform` maps an image to a [0, 1] tensor at
    the tower's input size (no normalisation); `preprocess` holds the tower's mean and std."""
    attack = build_attack(spec)
    normalize = Normalizer(preprocess["mean"], preprocess["std"], device)
    attack.setup(AttackContext(model, normalize, device, precision, clean_test_features))
    linf = np.zeros(len(images), dtype=np.float32)

    def prepare(pixels: torch.Tensor, first: int) -> torch.Tensor:
        adv = attack.perturb(pixels, first)
        change = (adv - pixels.float()).abs().flatten(1).amax(dim=1)
        linf[first : first + len(pixels)] = change.cpu().numpy()
        return normalize(adv)

    features = encode_images(
        model,
        images,
        pixel_transform,
        device,
        precision=precision,
        batch_size=batch_size,
        num_workers=num_workers,
        description=description,
        prepare=prepare,
    )
    return {"features": features, "linf": linf}


def attack_summary(spec: AttackSpec, clean: np.ndarray, arrays: dict[str, np.ndarray]) -> dict:
    """What a record says of an attacked split: the attack, the largest pixel change and the
    mean and smallest cosine similarity between each image's attacked and clean features."""
    attacked = np.asarray(arrays["features"], dtype=np.float64)
    clean = np.asarray(clean, dtype=np.float64)
    norms = np.linalg.norm(attacked, axis=1) * np.linalg.norm(clean, axis=1)
    cosine = np.sum(attacked * clean, axis=1) / np.maximum(norms, 1e-12)
    return {
        **spec.to_dict(),
        "max_linf": float(np.max(arrays["linf"])) if len(cosine) else 0.0,
        "mean_cosine_to_clean": float(np.mean(cosine)) if len(cosine) else 1.0,
        "min_cosine_to_clean": float(np.min(cosine)) if len(cosine) else 1.0,
    }
