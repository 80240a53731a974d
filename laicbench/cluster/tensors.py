"""Arrays to torch tensors, the one conversion every primitive uses, and torch's thread pool."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F


def as_tensor(x: np.ndarray | torch.Tensor, device: str = "cpu") -> torch.Tensor:
    """`x` as a float32 tensor on `device`; read-only arrays (memory-mapped cache files) are
    copied, since torch cannot wrap them."""
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=torch.float32)
    array = np.asarray(x, dtype=np.float32)
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array).to(device)


def unit_rows(x: np.ndarray | torch.Tensor, device: str = "cpu") -> torch.Tensor:
    """Rows of `x` L2-normalised, as a float32 tensor on `device`."""
    return F.normalize(as_tensor(x, device), dim=1)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with torch's intra-op pool at `n` threads (None: as it is), then restore."""
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# Elements of the one-hot block (rows x labels) that ``label_sums`` builds at a time on a GPU,
# and of the gathered rows (groups x members x d) that ``row_means`` holds at a time: 64 MiB.
BLOCK_ELEMENTS = 2**24


def label_sums(x: torch.Tensor, labels: torch.Tensor, n_labels: int) -> torch.Tensor:
    """The sum of the rows of `x` (n, d) with each label, (n_labels, d), the same on every run.

    On the CPU ``index_add_`` adds the rows in order (deterministic and the cheapest); on a GPU
    it adds them with atomics, in an order that changes from run to run, so there the sums are
    ``one_hot_sums`` (matrix products: deterministic, and fast on a GPU)."""
    if x.device.type == "cpu":
        sums = torch.zeros(n_labels, x.shape[1], dtype=x.dtype, device=x.device)
        return sums.index_add_(0, labels, x)
    return one_hot_sums(x, labels, n_labels)


def one_hot_sums(x: torch.Tensor, labels: torch.Tensor, n_labels: int) -> torch.Tensor:
    """``label_sums`` as the product of one-hot blocks of the labels (at most ``BLOCK_ELEMENTS``
    values each) with the rows: no atomics, so the same on every run on a GPU."""
    sums = torch.zeros(n_labels, x.shape[1], dtype=x.dtype, device=x.device)
    rows = max(1, BLOCK_ELEMENTS // n_labels)
    for start in range(0, x.shape[0], rows):
        block = labels[start : start + rows]
        one_hot = torch.zeros(len(block), n_labels, dtype=x.dtype, device=x.device)
        one_hot.scatter_(1, block[:, None], 1.0)
        sums += one_hot.T @ x[start : start + rows]
    return sums


def label_means(x: torch.Tensor, labels: torch.Tensor, n_labels: int) -> torch.Tensor:
    """The mean of the rows of `x` (n, d) with each label, (n_labels, d) (a label without rows:
    zeros), deterministic on every device (``label_sums``): k-means's centers for `labels`."""
    counts = torch.bincount(labels, minlength=n_labels).clamp_min(1)
    return label_sums(x, labels, n_labels) / counts[:, None].to(x.dtype)


def row_means(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """For each row of `index` (groups, m), the mean of those m rows of `x` (n, d): (groups, d).
    The rows are gathered a block of groups at a time (at most ``BLOCK_ELEMENTS`` values), and
    each mean is a plain reduction, so the result is the same on every run on any device (a
    sparse product would add with atomics on a GPU)."""
    groups, members = index.shape
    out = torch.empty(groups, x.shape[1], dtype=x.dtype, device=x.device)
    step = max(1, BLOCK_ELEMENTS // max(1, members * x.shape[1]))
    for start in range(0, groups, step):
        out[start : start + step] = x[index[start : start + step]].mean(dim=1)
    return out
