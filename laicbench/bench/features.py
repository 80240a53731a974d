"""Throughput benchmarks of the feature pipeline (``laicbench bench features``).

Image encoding is compared with the GEMM-bound limit measured in the same run: the model's FLOPs
per image (torch's FlopCounterMode: 2 FLOPs per multiply-add) divided by the FLOP/s of a large
matmul. Text encoding (truncated to the longest real token length of each length-sorted batch) is
compared with open_clip's full-context ``encode_text`` on the same distinct prompts.
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from laicbench.data.backbone import Backbone
from laicbench.data.extract import autocast_context
from laicbench.data.text_encoder import NOUN_TEMPLATES
from laicbench.data.vocab import wordnet_nouns


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@torch.inference_mode()
def gemm_flops_per_s(device: str, precision: str = "fp32", n: int = 2048, reps: int = 5) -> float:
    """FLOP/s of an n x n x n matmul on `device` in `precision` (best of `reps`)."""
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def image_flops_per_item(backbone: Backbone, device: str) -> float:
    """FLOPs of encoding one image (multiply-add = 2 FLOPs).

    Counted with autograd enabled: under no_grad, nn.MultiheadAttention takes a fused fast path
    whose projections the counter does not see.
    """
    size = backbone.preprocess_cfg["image_size"]
    x = torch.randn(1, 3, size, size, device=device, requires_grad=True)
    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
        backbone.model.encode_image(x)
    return float(counter.get_total_flops())


@torch.inference_mode()
def image_throughput(
    backbone: Backbone, device: str, n_images: int, batch_size: int, precision: str
) -> float:
    """Images per second of ``encode_image`` on preprocessed random batches."""
    size = backbone.preprocess_cfg["image_size"]
    x = torch.randn(batch_size, 3, size, size, device=device)
    with autocast_context(device, precision):
        backbone.model.encode_image(x[: min(8, batch_size)])  # warm-up
        _sync(device)
        done = 0
        t = time.perf_counter()
        while done < n_images:
            backbone.model.encode_image(x)
            done += batch_size
        _sync(device)
    return done / (time.perf_counter() - t)


def sample_prompts(n: int, seed: int = 0) -> list[str]:
    """`n` distinct noun prompts (WordNet nouns in TAC's templates), drawn with `seed`."""
    rng = random.Random(seed)
    words = sorted(set(wordnet_nouns()))
    prompts: set[str] = set()
    while len(prompts) < n:
        prompts.add(rng.choice(NOUN_TEMPLATES).format(rng.choice(words)))
    return sorted(prompts)


@torch.inference_mode()
def text_comparison(
    backbone: Backbone, device: str, n_prompts: int, batch_size: int = 256
) -> dict[str, float]:
    """Prompts/s of truncated vs full-context encoding and their max abs difference."""
    prompts = sample_prompts(n_prompts)
    encoder = backbone.text_encoder
    tokens = encoder.tokenize(prompts)
    backbone.model.encode_text(tokens[:2])  # warm-up
    t = time.perf_counter()
    full = torch.cat(
        [
            backbone.model.encode_text(tokens[i : i + batch_size]).float()
            for i in range(0, len(tokens), batch_size)
        ]
    )
    _sync(device)
    full_s = time.perf_counter() - t
    t = time.perf_counter()
    truncated = encoder.encode(prompts, batch_size=batch_size)
    _sync(device)
    truncated_s = time.perf_counter() - t
    diff = float(np.abs(truncated - full.cpu().numpy()).max())
    return {
        "prompts": len(prompts),
        "mean_tokens": float((tokens.argmax(dim=-1) + 1).float().mean()),
        "full_context_per_s": len(prompts) / full_s,
        "truncated_per_s": len(prompts) / truncated_s,
        "speedup": full_s / truncated_s,
        "max_abs_diff": diff,
    }


def bench_features(
    backbone: Backbone,
    device: str,
    n_images: int = 128,
    n_prompts: int = 512,
    batch_size: int = 64,
    precision: str = "fp32",
) -> dict[str, Any]:
    """The whole features benchmark as a JSON-able dict."""
    torch.manual_seed(0)
    gemm = gemm_flops_per_s(device, precision)
    flops = image_flops_per_item(backbone, device)
    images_per_s = image_throughput(backbone, device, n_images, batch_size, precision)
    limit = gemm / flops
    return {
        "backbone": str(backbone.spec),
        "device": device,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "gemm_gflop_per_s": gemm / 1e9,
        "image_gflop_per_item": flops / 1e9,
        "image_per_s": images_per_s,
        "image_gemm_bound_per_s": limit,
        "image_fraction_of_bound": images_per_s / limit,
        "text": text_comparison(backbone, device, n_prompts),
    }
