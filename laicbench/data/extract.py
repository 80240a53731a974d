"""Feature extraction: images through the image tower, words through the text tower.

Images are encoded in batches on the chosen device (fp16 or bf16 autocast on GPU, fp32 on CPU
unless asked), with DataLoader workers decoding ahead, a rich progress bar, and on CUDA
out-of-memory the batch size halved and the batch retried.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

PRECISIONS = ("fp32", "fp16", "bf16")


def progress_bar(transient: bool = False) -> Progress:
    """The progress bar used for long work: description, bar, count, rate, time left (stderr)."""
    from rich.console import Console

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=transient,
    )


class _Transformed(torch.utils.data.Dataset):
    def __init__(self, images: Sequence[Any], transform: Callable):
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        image, _ = self.images[index]
        return self.transform(image)


def autocast_context(device: str, precision: str):
    """torch.autocast for fp16/bf16 on `device`, or a no-op for fp32."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dtype)


def encode_images(
    model: torch.nn.Module,
    images: Sequence[Any],
    transform: Callable,
    device: str,
    precision: str = "fp32",
    batch_size: int = 256,
    num_workers: int = 2,
    description: str = "images",
    prepare: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
) -> np.ndarray:
    """Unnormalised image features (n, d) float32 of `images` ((PIL image, label) items).

    `prepare(batch, first)`, when given, maps each transformed batch on `device` (samples
    `first`, `first + 1`, ...) to the model's input (an attack perturbs and normalises it); it
    runs outside inference mode, so that it may take gradients.
    """
    with torch.inference_mode(prepare is None), torch.no_grad():
        return _encode(
            model, images, transform, device, precision, batch_size, num_workers, description,
            prepare,
        )  # fmt: skip


def _encode(
    model, images, transform, device, precision, batch_size, num_workers, description, prepare
) -> np.ndarray:
    dataset = _Transformed(images, transform)
    n = len(dataset)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.startswith("cuda"),
        persistent_workers=False,
    )
    out: np.ndarray | None = None
    done = 0
    chunk = batch_size
    with progress_bar() as progress:
        task = progress.add_task(description, total=n, rate="")
        for batch in loader:
            start = 0
            while start < len(batch):
                piece = batch[start : start + chunk].to(device, non_blocking=True)
                try:
                    if prepare is not None:
                        piece = prepare(piece, done)
                    with autocast_context(device, precision):
                        features = model.encode_image(piece)
                except torch.cuda.OutOfMemoryError:
                    if chunk == 1:
                        raise
                    chunk = max(1, chunk // 2)
                    torch.cuda.empty_cache()
                    continue
                features = features.float().cpu().numpy()
                if out is None:
                    out = np.empty((n, features.shape[1]), dtype=np.float32)
                out[done : done + len(features)] = features
                done += len(features)
                start += len(features)
                elapsed = progress.tasks[task].elapsed or 0.0
                progress.update(
                    task, completed=done, rate=f"{done / elapsed:7.1f} img/s" if elapsed else ""
                )
    assert out is not None or n == 0
    return out if out is not None else np.empty((0, 0), dtype=np.float32)
