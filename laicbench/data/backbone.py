"""Backbones: open_clip models named ``ARCH:PRETRAINED`` or ``tiny-random``.

``tiny-random`` is a tiny open_clip architecture (``laicbench-tiny``, registered with open_clip
from this package's model_configs folder) with seeded random weights. Tests and the demo benchmark
use it: it runs the same code paths as a real CLIP at a fraction of the cost.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from laicbench.api.backbone_spec import BackboneSpec
from laicbench.api.errors import UserError, did_you_mean
from laicbench.data.text_encoder import TextEncoder

TINY_SEED = 0
_MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"


@functools.cache
def register_tiny_architecture() -> None:
    """Make ``laicbench-tiny`` known to open_clip (idempotent)."""
    import open_clip

    open_clip.add_model_config(_MODEL_CONFIG_DIR)


def create_model(spec: BackboneSpec, device: str = "cpu") -> torch.nn.Module:
    """Build the open_clip model of `spec` on `device`, in eval mode with frozen parameters.

    Random weights (``tiny-random``, ``ARCH:random``) are drawn from a fixed seed without touching
    the global RNG state.
    OpenAI weights need QuickGELU: when the architecture's config lacks it, it is forced (with a
    warning), so ``ViT-B-32:openai`` is the same network as ``ViT-B-32-quickgelu:openai``.
    """
    import open_clip

    register_tiny_architecture()
    if spec.arch not in open_clip.list_models():
        raise UserError(
            f"unknown open_clip architecture {spec.arch!r}{_did_you_mean_arch(spec.arch)}"
        )
    if spec.is_random:
        with torch.random.fork_rng(devices=[]), _quiet_logs():
            torch.manual_seed(TINY_SEED)
            model = open_clip.create_model(spec.arch, pretrained=None, device="cpu")
    else:
        weights = spec.pretrained
        is_file = Path(weights).expanduser().is_file()
        tags = open_clip.list_pretrained_tags_by_model(spec.arch)
        if not is_file and weights not in tags:
            if "/" in weights or weights.endswith((".pt", ".bin", ".safetensors", ".pth")):
                raise UserError(
                    f"backbone {spec}: checkpoint file {weights} does not exist; give an existing "
                    f"file or one of open_clip's tags for {spec.arch}: {', '.join(tags) or 'none'}"
                )
            raise UserError(
                f"backbone {spec}: {weights!r} is neither a file nor an open_clip pretrained tag "
                f"of {spec.arch}{did_you_mean(weights, tags)}"
            )
        force_quick_gelu = _needs_quick_gelu(spec, is_file)
        try:
            with _quiet_logs():
                model = open_clip.create_model(
                    spec.arch,
                    pretrained=str(Path(weights).expanduser()) if is_file else weights,
                    device="cpu",
                    force_quick_gelu=force_quick_gelu,
                )
        except Exception as exc:  # open_clip raises RuntimeError/OSError/hub errors alike
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(
                f"backbone {spec}: weights could not be loaded ({message}); either let open_clip "
                f"download tag {weights!r} into its cache on a machine with network access "
                f"(HF_HUB_OFFLINE unset) or pass a local checkpoint file as "
                f"{spec.arch}:/path/to/file.pt (HF_HUB_OFFLINE=1 makes offline failures fast)"
            ) from exc
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _needs_quick_gelu(spec: BackboneSpec, is_file: bool) -> bool:
    """Whether to force QuickGELU for `spec`; warns when the combination is a known pitfall."""
    import open_clip

    arch_quick = bool(open_clip.get_model_config(spec.arch).get("quick_gelu", False))
    if is_file:
        if not arch_quick and "openai" in Path(str(spec.pretrained)).name.lower():
            warnings.warn(
                f"{spec}: OpenAI checkpoints were trained with QuickGELU but {spec.arch} uses "
                f"GELU; use {spec.arch}-quickgelu for OpenAI weights",
                stacklevel=3,
            )
        return False
    tag_quick = bool(open_clip.get_pretrained_cfg(spec.arch, spec.pretrained).get("quick_gelu"))
    if tag_quick and not arch_quick:
        warnings.warn(
            f"{spec}: these weights were trained with QuickGELU, which {spec.arch} lacks; using "
            f"QuickGELU (the same network as {spec.arch}-quickgelu:{spec.pretrained})",
            stacklevel=3,
        )
        return True
    return False


def weights_identity(spec: BackboneSpec, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """What identifies the weights of `spec` for cache keys and records (a checkpoint's SHA-256
    is remembered in `cache_dir`, default the feature cache's)."""
    import open_clip

    register_tiny_architecture()
    if spec.is_random:
        return {"random_seed": TINY_SEED, "config": open_clip.get_model_config(spec.arch)}
    path = Path(str(spec.pretrained)).expanduser()
    if path.is_file():
        return {"file": str(path.resolve()), "sha256": _cached_file_sha256(path, cache_dir)}
    return {
        "tag": spec.pretrained,
        "pretrained_cfg": open_clip.get_pretrained_cfg(spec.arch, spec.pretrained),
    }


def preprocess_settings(spec: BackboneSpec) -> dict[str, Any]:
    """Input size, mean and std of the image tower of `spec` ({"image_size", "mean", "std"}), read
    from open_clip's model config and, for a pretrained tag, the tag's config: what
    ``open_clip.create_model`` sets on the model it builds (its visual tower's ``image_size``,
    ``image_mean`` and ``image_std``), without building it (a cache key must not load a CLIP
    model, 0.6 to 10 GB, on a trial's GPU share)."""
    import open_clip
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    register_tiny_architecture()
    config = open_clip.get_model_config(spec.arch)
    if config is None:
        raise UserError(
            f"unknown open_clip architecture {spec.arch!r}{_did_you_mean_arch(spec.arch)}"
        )
    preprocess = PreprocessCfg()
    is_tag = not spec.is_random and not Path(str(spec.pretrained)).expanduser().is_file()
    if is_tag:  # a checkpoint file or random weights keep open_clip's defaults
        tag_cfg = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained) or {}
        preprocess = PreprocessCfg(**merge_preprocess_dict(preprocess, tag_cfg))
    size = config["vision_cfg"].get("image_size", preprocess.size)
    return {
        "image_size": int(size[0] if isinstance(size, (tuple, list)) else size),
        "mean": [float(v) for v in preprocess.mean],
        "std": [float(v) for v in preprocess.std],
    }


def _cached_file_sha256(path: Path, cache_dir: str | Path | None) -> str:
    """SHA-256 of a checkpoint, remembered per (path, size, mtime) in the feature cache; the
    memo is updated under a file lock and written atomically, as cache entries are."""
    from filelock import FileLock

    from laicbench.data.cache import default_cache_dir
    from laicbench.files import atomic_write_bytes, file_sha256

    stat = path.stat()
    memo_file = Path(cache_dir or default_cache_dir()) / "weights_sha256.json"
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    known = _read_memo(memo_file).get(key)
    if known is not None:
        return known
    digest = file_sha256(path)
    with contextlib.suppress(OSError):  # an unwritable cache only costs re-hashing
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{memo_file}.lock"):  # two workers hashing two checkpoints keep both
            memo = {**_read_memo(memo_file), key: digest}
            atomic_write_bytes(memo_file, json.dumps(memo, indent=1).encode())
    return digest


def _read_memo(memo_file: Path) -> dict[str, str]:
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


@dataclass
class Backbone:
    """A loaded backbone: the model (built on first use), its preprocessing and tokenizer."""

    spec: BackboneSpec
    device: str

    @functools.cached_property
    def model(self) -> torch.nn.Module:
        """The frozen open_clip model."""
        return create_model(self.spec, self.device)

    @functools.cached_property
    def tokenizer(self):
        """open_clip's tokenizer for the architecture."""
        import open_clip

        register_tiny_architecture()
        return open_clip.get_tokenizer(self.spec.arch)

    @functools.cached_property
    def text_encoder(self) -> TextEncoder:
        """The frozen text tower."""
        return TextEncoder(self.model, self.tokenizer, self.device)

    @functools.cached_property
    def preprocess_cfg(self) -> dict[str, Any]:
        """Input size, mean and std of the image tower (``preprocess_settings``: from the
        configs, so that a cache key never builds the model)."""
        return preprocess_settings(self.spec)

    def image_transform(self, resize_ratio: float, normalize: bool = True) -> Callable:
        """Resize(round(ratio x size), bicubic), CenterCrop(size), RGB, to tensor, Normalize
        (without `normalize`: pixels in [0, 1], what an attack perturbs)."""
        from torchvision import transforms as T

        cfg = self.preprocess_cfg
        size = cfg["image_size"]
        return T.Compose(
            [
                T.Resize(round(size * resize_ratio), interpolation=T.InterpolationMode.BICUBIC),
                T.CenterCrop(size),
                T.Lambda(_to_rgb),
                T.ToTensor(),
                *([T.Normalize(cfg["mean"], cfg["std"])] if normalize else []),
            ]
        )


def _to_rgb(image):
    return image.convert("RGB")


@functools.lru_cache(maxsize=2)
def load_backbone(spec: BackboneSpec, device: str) -> Backbone:
    """The (per-process shared) Backbone of `spec` on `device`; the model loads lazily."""
    return Backbone(spec, device)


@contextlib.contextmanager
def _quiet_logs():
    """Silence open_clip's and the hub client's log lines: failures surface as one UserError."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)


def _did_you_mean_arch(arch: str) -> str:
    import open_clip

    return did_you_mean(arch, open_clip.list_models())
