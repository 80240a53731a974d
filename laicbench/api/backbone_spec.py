"""Backbone names: ``ARCH:PRETRAINED`` (an open_clip architecture and a pretrained tag or a
checkpoint file), ``ARCH:random`` (seeded random weights) or ``tiny-random``. Parsing a name needs
no model, so this lives in the torch-free plugin API; ``laicbench.data.backbone`` loads them."""

from __future__ import annotations

from dataclasses import dataclass

from laicbench.api.errors import UserError

TINY_RANDOM = "tiny-random"
RANDOM = "random"
TINY_ARCH = "laicbench-tiny"
DEFAULT_BACKBONE = "ViT-B-32:openai"
# The seven OpenCLIP/SigLIP backbones VLM4Cluster evaluates, as open_clip ARCH:TAG names.
VLM4CLUSTER_BACKBONES = (
    "ViT-B-32-quickgelu:laion400m_e32",
    "ViT-B-16:laion400m_e32",
    "ViT-L-14:laion400m_e32",
    "ViT-B-32:laion2b_s34b_b79k",
    "ViT-B-16:laion2b_s34b_b88k",
    "ViT-L-14:laion2b_s32b_b82k",
    "ViT-B-16-SigLIP:webli",
)


@dataclass(frozen=True)
class BackboneSpec:
    """An open_clip architecture and its weights (a pretrained tag, a checkpoint file or random)."""

    arch: str
    pretrained: str | None

    @classmethod
    def parse(cls, text: str) -> BackboneSpec:
        """Parse ``tiny-random``, ``ARCH:random`` (seeded random weights, for benchmarks) or
        ``ARCH:PRETRAINED`` (PRETRAINED an open_clip tag or a checkpoint file path)."""
        if text == TINY_RANDOM:
            return cls(TINY_ARCH, None)
        arch, sep, pretrained = text.partition(":")
        if not sep or not arch or not pretrained:
            raise UserError(
                f"backbone {text!r}: expected ARCH:PRETRAINED (e.g. {DEFAULT_BACKBONE}) "
                f"or {TINY_RANDOM!r}"
            )
        return cls(arch, None if pretrained == RANDOM else pretrained)

    def __str__(self) -> str:
        if self.is_tiny_random:
            return TINY_RANDOM
        return f"{self.arch}:{self.pretrained or RANDOM}"

    @property
    def is_tiny_random(self) -> bool:
        """True for the seeded random-weight test architecture."""
        return self.arch == TINY_ARCH and self.pretrained is None

    @property
    def is_random(self) -> bool:
        """True for seeded random weights (tiny-random or ARCH:random)."""
        return self.pretrained is None
