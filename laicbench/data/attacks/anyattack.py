"""AnyAttack: a pretrained decoder turns a target image's embedding into a perturbation.

As in AnyAttack (Zhang et al., CVPR 2025) and VLM4Cluster's robustness track: each test image
gets a target image of the same split; the surrogate CLIP (the one the decoder was trained with,
ViT-B/32 OpenAI for the released checkpoints) embeds the target, the decoder maps the embedding
to a perturbation, which is clamped to [-eps, eps], added to the image and the sum clamped to
[0, 1]. The attack is transferred: the backbone under attack need not be the surrogate.

Targets are label-free: a seeded random cyclic permutation of the split (Sattolo's algorithm),
so that no image is its own target. VLM4Cluster's default (``avoid_same_label=true``) draws each
target from another class, which reads the test labels; here about 1/K of the targets share
their source's class, which weakens the attack on those images a little.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from laicbench.api.backbone_spec import BackboneSpec
from laicbench.api.errors import UserError
from laicbench.api.params import Interval
from laicbench.data.attacks.base import Attack, AttackContext
from laicbench.data.attacks.decoder import load_decoder
from laicbench.data.attacks.pgd import EPS, SEED_RANGE
from laicbench.files import file_sha256

SURROGATE = "ViT-B-32:openai"


@dataclass
class AnyAttack(Attack):
    """A pretrained AnyAttack decoder, loaded from a local checkpoint."""

    checkpoint: str = ""
    """Path of the decoder checkpoint (required; e.g. AnyAttack-Cos ``coco_cos.pt``)."""
    eps: float = EPS
    """L-infinity bound of the perturbation in [0, 1] pixel units (8/255 by default)."""
    surrogate: str = SURROGATE
    """The backbone whose image embeddings the decoder takes (the one it was trained with)."""
    seed: int = 0
    """Seed of the target permutation."""

    param_constraints: ClassVar = {"eps": Interval(0, 1, open_low=True), "seed": SEED_RANGE}

    def __post_init__(self) -> None:
        if self.checkpoint:  # one run identity however the path is written
            self.checkpoint = str(Path(self.checkpoint).expanduser().absolute())
        if self.surrogate:
            self.surrogate = str(BackboneSpec.parse(self.surrogate))

    def check(self) -> None:
        """The checkpoint must be given and exist."""
        if not self.checkpoint:
            raise UserError(
                "--attack anyattack needs --attack-param checkpoint=PATH (an AnyAttack decoder, "
                "e.g. AnyAttack-Cos coco_cos.pt)"
            )
        if not Path(self.checkpoint).is_file():
            raise UserError(
                f"--attack anyattack: decoder checkpoint {self.checkpoint} does not exist"
            )

    def key_fields(self) -> dict[str, Any]:
        """The parameters and the checkpoint's SHA-256 (a replaced file is another attack)."""
        stat = Path(self.checkpoint).stat()
        return {
            **super().key_fields(),
            "checkpoint_sha256": _checksum(self.checkpoint, stat.st_size, stat.st_mtime_ns),
        }

    def setup(self, context: AttackContext) -> None:
        """Load the decoder and embed every target image with the surrogate (from the cache)."""
        super().setup(context)
        self.decoder = load_decoder(self.checkpoint, context.device)
        embeddings = np.asarray(context.clean_test_features(self.surrogate), dtype=np.float32)
        if embeddings.shape[1] != self.decoder.embed_dim:
            raise UserError(
                f"--attack anyattack: the decoder takes {self.decoder.embed_dim}-d embeddings but "
                f"surrogate {self.surrogate} gives {embeddings.shape[1]}-d ones; set "
                "--attack-param surrogate=ARCH:PRETRAINED to the backbone the decoder was "
                "trained with"
            )
        self.targets = embeddings[cyclic_permutation(len(embeddings), self.seed)]

    def perturb(self, pixels: torch.Tensor, first: int) -> torch.Tensor:
        """`pixels` plus the clamped decoder output of their targets, in [0, 1]."""
        targets = torch.from_numpy(self.targets[first : first + len(pixels)])
        with torch.no_grad():
            noise = self.decoder(targets.to(pixels.device))
            if noise.shape[-2:] != pixels.shape[-2:]:  # the decoder's size is not the tower's
                noise = F.interpolate(
                    noise, size=pixels.shape[-2:], mode="bilinear", align_corners=False
                )
            noise = noise.clamp(-self.eps, self.eps)
            return (pixels.float() + noise).clamp(0, 1)


def cyclic_permutation(n: int, seed: int) -> np.ndarray:
    """A uniformly random permutation of range(n) made of one cycle (Sattolo's algorithm,
    seeded): for n > 1 no index maps to itself."""
    rng = np.random.default_rng(seed)
    order = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(0, i))
        order[i], order[j] = order[j], order[i]
    return order


@functools.lru_cache(maxsize=8)
def _checksum(path: str, size: int, mtime_ns: int) -> str:
    del size, mtime_ns  # part of the memo's key only
    return file_sha256(path)
