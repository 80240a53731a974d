"""SIGTERM handled as Ctrl-C while a sweep or a tuning runs: the work stops after what is
stored and the command says how to resume, with either executor (``ray.init`` would otherwise
turn it into an exit in the middle of Tune, with its crash dump)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_TERMINATED = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM


class TerminationGuard:
    """While active: SIGTERM raises KeyboardInterrupt in the main thread; `received` says
    whether one came."""

    def __init__(self) -> None:
        self.received = False

    def _handle(self, signum, frame) -> None:
        del signum, frame
        self.received = True
        raise KeyboardInterrupt("SIGTERM")

    def install(self) -> None:
        """(Re)install the handler: call again after something (``ray.init``) replaced it."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._handle)


@contextmanager
def sigterm_as_interrupt() -> Iterator[TerminationGuard]:
    """Within: SIGTERM raises KeyboardInterrupt (``TerminationGuard``); the handler before is
    restored on leaving."""
    guard = TerminationGuard()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    guard.install()
    try:
        yield guard
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
