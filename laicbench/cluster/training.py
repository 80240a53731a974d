"""The training loop shared by the methods that train cluster heads on cached features in
mini-batches (SCAN, TEMI, SIC): seeded shuffling, drop-last batches, per-epoch loss history read
from the device once per epoch, and the drawing of a random neighbour per sample."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

LossParts = Mapping[str, torch.Tensor | float]


def train_epochs(
    step: Callable[[torch.Tensor, int], LossParts],
    n: int,
    batch_size: int,
    epochs: int,
    generator: torch.Generator,
    device: str = "cpu",
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Run `epochs` passes over `n` samples in shuffled batches of `batch_size` (the last,
    incomplete batch dropped; the batch shrinks to `n` when larger): ``step(indices, epoch)``
    takes one optimisation step and returns its loss parts (detached 0-dim tensors, summed on
    the device, or floats). Returns each epoch's mean parts as floats; `on_epoch(epoch, means)`
    is called after each epoch."""
    batch_size = min(batch_size, n)
    steps = n // batch_size
    history = []
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator).to(device)
        totals: dict[str, torch.Tensor | float] = {}
        for i in range(steps):
            for key, value in step(order[i * batch_size : (i + 1) * batch_size], epoch).items():
                totals[key] = totals.get(key, 0.0) + value
        means = {key: value / steps for key, value in as_floats(totals).items()}
        history.append(means)
        if on_epoch is not None:
            on_epoch(epoch, means)
    return history


def as_floats(parts: LossParts) -> dict[str, float]:
    """`parts` (0-dim tensors on one device, or floats) as floats, the tensors read from the
    device in one transfer: the one host sync of an epoch's bookkeeping."""
    keys = [key for key, value in parts.items() if isinstance(value, torch.Tensor)]
    read = torch.stack([parts[key].detach().float() for key in keys]).tolist() if keys else []
    values = dict(zip(keys, read, strict=True))
    return {key: values[key] if key in values else float(value) for key, value in parts.items()}


def random_neighbour(
    neighbours: torch.Tensor, index: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """For each sample of `index`, one of its rows in `neighbours` (n, k) drawn uniformly."""
    k = neighbours.shape[1]
    pick = torch.randint(k, (len(index),), generator=generator).to(neighbours.device)
    return neighbours[index, pick]


def predict_labels(
    score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int = 65536
):
    """The argmax over clusters of ``score(rows)`` for `x` in chunks of `chunk` rows, without
    gradients: an integer numpy array (len(x),)."""
    with torch.no_grad():
        parts = [score(x[i : i + chunk]).argmax(dim=1) for i in range(0, len(x), chunk)]
    return torch.cat(parts).cpu().numpy()
