"""The per-run time limit (``--run-timeout``): a run's work in a helper thread, given up on at
the limit.

The same mechanism serves both executors (the local one runs it in the driver's main thread, a
Ray trial in Tune's trial thread, where signals cannot reach). At the limit the run becomes a
``timeout`` record and the sweep goes on; the helper thread is then asked to stop by an
exception raised in it (never while it imports a module, which would leave the module half
made for every later run), which Python delivers at its next bytecode: a method looping in
Python stops at once, one blocked in ``sleep`` or in one long native call (a big matrix
product) only when that call returns, its result discarded.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class RunTimeout(Exception):
    """A run that did not finish within its time limit."""


class _GiveUp(BaseException):
    """Raised in a timed-out run's thread to stop it (a BaseException, so that a method's
    ``except Exception`` does not swallow it)."""


def call_with_timeout(work: Callable[[], T], seconds: float | None) -> T:
    """`work()`'s result; with `seconds`, RunTimeout when it has not returned after that many
    seconds (it then runs on in its thread until the exception raised there stops it). What
    `work` raises is raised here; so is an interruption (Ctrl-C) of the wait, after asking the
    thread to stop."""
    if seconds is None:
        return work()
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="laicbench-run", daemon=True)
    thread.start()
    try:
        thread.join(seconds)
    except BaseException:
        _stop_later(thread)
        raise
    if thread.is_alive():
        _stop_later(thread)
        raise RunTimeout(
            f"the run did not finish within its time limit (--run-timeout {seconds:g} s)"
        )
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def _stop_later(thread: threading.Thread, every_s: float = 0.05) -> None:
    """Stop `thread` from a watcher thread: raise ``_GiveUp`` in it as soon as it is not
    importing a module, again every second while it lives (a method may catch it once)."""

    def watch() -> None:
        while thread.is_alive():
            if _importing(thread):
                time.sleep(every_s)
                continue
            _raise_in(thread, _GiveUp)
            thread.join(1.0)

    threading.Thread(target=watch, name="laicbench-run-stopper", daemon=True).start()


_FRAMES_LOCK = threading.Lock()


def _importing(thread: threading.Thread) -> bool:
    """Whether `thread` is inside an import (a frame of importlib's bootstrap on its stack)."""
    # sys._current_frames holds the interpreter's thread-list lock while it allocates: a garbage
    # collection there can free a torch tensor, whose destructor takes the GIL through that same
    # lock and deadlocks the process; so no collection may run during the call
    with _FRAMES_LOCK:
        collecting = gc.isenabled()
        gc.disable()
        try:
            frame = sys._current_frames().get(thread.ident or -1)
        finally:
            if collecting:
                gc.enable()
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _raise_in(thread: threading.Thread, kind: type[BaseException]) -> None:
    """Raise `kind` in `thread` at its next bytecode (CPython's async exception; no effect on a
    thread that has ended)."""
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(kind)
        )
