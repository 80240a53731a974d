"""Peak resident memory of a block (laicbench.run.peak_memory)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from laicbench.run.peak_memory import PeakMemory

BLOCK_MB = 300


def _touch_block_then_free(hold_s: float) -> None:
    block = np.ones(BLOCK_MB * 2**20 // 8)  # written, so resident
    time.sleep(hold_s)
    del block


@pytest.mark.parametrize("use_kernel", [True, False])
def test_peak_sees_a_block_freed_before_exit(use_kernel):
    with PeakMemory(use_kernel=use_kernel) as before:
        pass
    with PeakMemory(use_kernel=use_kernel) as memory:
        _touch_block_then_free(hold_s=0.3)
    assert memory.peak_mb >= before.peak_mb + 0.9 * BLOCK_MB


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="the kernel's peak needs Linux"
)
def test_peak_is_reset_between_blocks():
    with PeakMemory() as first:
        _touch_block_then_free(hold_s=0)
    with PeakMemory() as second:
        pass
    assert first.peak_mb >= second.peak_mb + 0.9 * BLOCK_MB
