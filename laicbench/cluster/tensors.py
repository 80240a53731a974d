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
