"""Peak resident memory of this process over a block of code (``peak_rss_mb`` in records).

On Linux the kernel's own high-water mark (VmHWM) is reset on entry (``/proc/self/clear_refs``)
and read on exit: exact, and free while the run computes. Where that is unavailable a thread
samples the resident size every 20 ms instead; sampling slows a CPU-bound run (GIL hand-overs),
which is why it is only the fallback.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import psutil

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _reset_kernel_peak() -> bool:
    """Reset this process's VmHWM to its current RSS; False where the kernel does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
        return _kernel_peak_mb() is not None
    except OSError:
        return False


def _kernel_peak_mb() -> float | None:
    """This process's VmHWM in MiB, or None without /proc."""
    try:
        found = re.search(r"^VmHWM:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) / 1024 if found else None


class PeakMemory:
    """Context manager measuring this process's peak resident memory; ``peak_mb`` after exit.

    `use_kernel` False forces the sampling fallback (every `interval` seconds).
    """

    def __init__(self, interval: float = 0.05, use_kernel: bool = True):
        self.interval = interval
        self.use_kernel = use_kernel
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._process = psutil.Process()
        self._thread: threading.Thread | None = None

    def _rss_mb(self) -> float:
        return self._process.memory_info().rss / 2**20

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._rss_mb())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        if not (self.use_kernel and _reset_kernel_peak()):
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is None:
            self.peak_mb = max(self.peak_mb, _kernel_peak_mb() or 0.0)
        else:
            self._stop.set()
            self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss_mb())
