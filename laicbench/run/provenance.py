"""Where and with what a run was made: library versions, git commit, device, host."""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

LIBRARIES = (
    "laicbench",
    "torch",
    "torchvision",
    "open_clip_torch",
    "numpy",
    "scipy",
    "pandas",
    "ray",
)


@functools.cache
def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that can change results (None when missing)."""
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


@functools.cache
def git_commit() -> str | None:
    """The laicbench source tree's git commit (with '-dirty' if modified), or None outside git."""
    source = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def device_description(device: str) -> str:
    """A readable name of `device`, e.g. 'cpu (x86_64, 2 threads)' or 'cuda:0 (NVIDIA H100)'."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def environment() -> dict[str, Any]:
    """The environment block of a result record."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "libraries": library_versions(),
        "git_commit": git_commit(),
        "torch_threads": torch.get_num_threads(),
    }


def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible else 'cpu'; 'cuda' without a GPU is an error."""
    from laicbench.api.errors import UserError

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {requested}: no CUDA GPU is visible; use --device cpu or auto")
    if requested != "cpu" and not requested.startswith("cuda"):
        raise UserError(f"--device {requested!r}: expected auto, cpu, cuda or cuda:N")
    return requested
