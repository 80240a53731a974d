"""Backbones: open_clip models named ``ARCH:PRETRAINED`` or ``tiny-random``.

``tiny-random`` is a tiny open_clip architecture (``laicbench-tiny``, registered with open_clip
from this package's model_configs folder) with seeded random weights. Tests and the demo benchmark
use it: it runs the same code paths as a real CLIP at a fraction of the cost.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from laicbench.errors import UserError

TINY_RANDOM = "tiny-random"
TINY_ARCH = "laicbench-tiny"
TINY_SEED = 0
DEFAULT_BACKBONE = "ViT-B-32:openai"
_MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"


@dataclass(frozen=True)
class BackboneSpec:
    """An open_clip architecture and its weights (a pretrained tag, a checkpoint file or random)."""

    arch: str
    pretrained: str | None

    @classmethod
    def parse(cls, text: str) -> BackboneSpec:
        """Parse ``tiny-random`` or ``ARCH:PRETRAINED`` (PRETRAINED a tag or a file path)."""
        if text == TINY_RANDOM:
            return cls(TINY_ARCH, None)
        arch, sep, pretrained = text.partition(":")
        if not sep or not arch or not pretrained:
            raise UserError(
                f"backbone {text!r}: expected ARCH:PRETRAINED (e.g. {DEFAULT_BACKBONE}) "
                f"or {TINY_RANDOM!r}"
            )
        return cls(arch, pretrained)

    def __str__(self) -> str:
        return TINY_RANDOM if self.is_tiny_random else f"{self.arch}:{self.pretrained}"

    @property
    def is_tiny_random(self) -> bool:
        """True for the seeded random-weight test architecture."""
        return self.arch == TINY_ARCH and self.pretrained is None


@functools.cache
def register_tiny_architecture() -> None:
    """Make ``laicbench-tiny`` known to open_clip (idempotent)."""
    import open_clip

    open_clip.add_model_config(_MODEL_CONFIG_DIR)


def create_model(spec: BackboneSpec, device: str = "cpu") -> torch.nn.Module:
    """Build the open_clip model of `spec` on `device`, in eval mode with frozen parameters.

    ``tiny-random`` weights are drawn from a fixed seed without touching the global RNG state.
    """
    import open_clip

    register_tiny_architecture()
    if spec.arch not in open_clip.list_models():
        raise UserError(
            f"unknown open_clip architecture {spec.arch!r}{_did_you_mean_arch(spec.arch)}"
        )
    if spec.is_tiny_random:
        with torch.random.fork_rng(devices=[]), _quiet_root_logger():
            torch.manual_seed(TINY_SEED)
            model = open_clip.create_model(TINY_ARCH, pretrained=None, device="cpu")
    else:
        try:
            model = open_clip.create_model(spec.arch, pretrained=spec.pretrained, device="cpu")
        except Exception as exc:  # open_clip raises RuntimeError/OSError/hub errors alike
            raise UserError(
                f"backbone {spec}: weights could not be loaded ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); either give a local checkpoint "
                f"file as {spec.arch}:/path/to/weights.pt or allow open_clip to download the tag"
            ) from exc
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@contextlib.contextmanager
def _quiet_root_logger():
    """Silence open_clip's 'no pretrained weights' warning: random weights are the point here."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _did_you_mean_arch(arch: str) -> str:
    import open_clip

    from laicbench.errors import did_you_mean

    return did_you_mean(arch, open_clip.list_models())
