"""A virtual CUDA device for CPU test runs: code believes its tensors are on ``cuda:0`` while they
live on the CPU, and what a real GPU would reject or pay for is recorded instead.

Inside ``with virtual_cuda() as report:``

- a tensor created with ``device="cuda"`` (or moved there with ``.to``/``.cuda``, or a module's
  ``.to("cuda")``) is a CPU tensor tagged as CUDA; ``.device`` of a tagged tensor answers
  ``cuda:0`` and ``.is_cuda`` True, and the result of an op on a tagged tensor is tagged, so a
  method's ``device`` logic runs as on a GPU;
- ``torch.Generator(device="cuda")`` is a CPU generator that says it is on CUDA;
- ``torch.cuda.synchronize`` and the peak-memory counters answer as on an idle GPU.

What is recorded (each entry keyed by the call site: the innermost frame of the repository's own
code, ``path:line``):

- ``report.problems``: what CUDA rejects: an op mixing a CUDA tensor with a CPU tensor of one or
  more dimensions (a 0-dim CPU tensor is a scalar CUDA accepts), a CPU tensor indexed by a CUDA
  tensor, ``.numpy()`` or ``np.asarray`` of a CUDA tensor, a random draw whose generator is on
  another device than its result;
- ``report.syncs``: host synchronisations on CUDA tensors: ``.item()``, ``float()``/``int()``/
  ``bool()``, ``.tolist()``, a copy to the host (``.cpu()``, ``.to("cpu")``), and ops whose
  result's shape depends on the data (``nonzero``, ``unique``, boolean-mask indexing);
- ``report.cpu_heavy``: heavy work left on the CPU while the run's device is CUDA: torch
  matmuls, top-k, sorts and eigensolvers on CPU tensors of ``HEAVY_ELEMENTS`` elements or more,
  and calls of the CPU library routines listed in ``CPU_LIBRARY_CALLS`` (scikit-learn's
  spectral embedding and logistic regression, SciPy's eigensolvers and sparse matrix products);
- the order of syncs and ``torch.optim`` steps, from which ``syncs_per_training_step`` counts
  each call site's syncs per step of the training loop alone (between its first and last
  step: not those of a k-means or a selection around it).

This is a model of CUDA's device rules, not an emulator: kernels, memory and timing are the
CPU's, and an op the model does not know propagates the device of its inputs.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

CUDA = torch.device("cuda:0")
CPU = torch.device("cpu")
REPOSITORY = Path(__file__).resolve().parents[1]
_HERE = str(Path(__file__).resolve())
_TAG = "_virtual_cuda"

# ops that read a CUDA value back to the host
_READS = {"item", "__float__", "__int__", "__bool__", "__index__", "tolist", "equal", "allclose"}
# ops whose result's size depends on the data (the host waits for it)
_DATA_DEPENDENT = {"nonzero", "unique", "unique_consecutive", "masked_select", "argwhere"}
_TO_NUMPY = {"numpy", "__array__"}
# ops that may move data between devices
_TRANSFERS = {"to", "cpu", "cuda", "copy_"}
# heavy torch ops: left on CPU tensors while the run is on CUDA they are recorded
_HEAVY = {
    "matmul", "__matmul__", "__rmatmul__", "mm", "bmm", "addmm", "linear", "einsum", "cdist",
    "topk", "sort", "argsort", "lobpcg", "eigh", "eigvalsh", "svd", "qr", "solve", "lstsq",
}  # fmt: skip
HEAVY_ELEMENTS = 50_000  # the largest input of a heavy op, in elements, from which it counts
HEAVY_LIBRARY_WORK = 1_000_000  # multiply-adds (or matrix elements) from which a call counts


def _sparse_product_work(left: Any, right: Any) -> float:
    """Multiply-adds of ``left @ right`` with `left` a SciPy sparse matrix: its entries times the
    width of a dense `right`, or times the mean entries per row of a sparse one."""
    nnz = getattr(left, "nnz", 0)
    if hasattr(right, "nnz"):
        return nnz * right.nnz / max(right.shape[0], 1)
    shape = getattr(right, "shape", ())
    return nnz * (shape[1] if len(shape) == 2 else 1)


# (module, attribute, what it is, its work from its arguments): CPU routines recorded when
# called inside a CUDA run with HEAVY_LIBRARY_WORK or more
CPU_LIBRARY_CALLS = (
    ("sklearn.manifold", "spectral_embedding", "scikit-learn spectral embedding",
     lambda graph, *a, **k: graph.shape[0] * 1_000),
    ("sklearn.linear_model", "LogisticRegression.fit", "scikit-learn logistic regression",
     lambda model, x, *a, **k: x.size * 100),
    ("scipy.sparse.linalg", "eigsh", "SciPy ARPACK eigensolver",
     lambda a, *r, **k: a.shape[0] * 1_000),
    ("scipy.sparse.linalg", "lobpcg", "SciPy LOBPCG eigensolver",
     lambda a, *r, **k: a.shape[0] * 1_000),
    ("scipy.sparse._base", "_spbase.__matmul__", "SciPy sparse matrix product",
     _sparse_product_work),
    ("numpy.linalg", "eigh", "NumPy eigensolver", lambda a, *r, **k: a.size),
)  # fmt: skip


@dataclass
class Report:
    """What one ``virtual_cuda`` block recorded; each counter maps "site: what" to a count."""

    problems: collections.Counter = field(default_factory=collections.Counter)
    syncs: collections.Counter = field(default_factory=collections.Counter)
    cpu_heavy: collections.Counter = field(default_factory=collections.Counter)
    # the syncs in order, and per optimiser the number of syncs so far at each of its steps
    sync_log: list[str] = field(default_factory=list)
    step_marks: dict[int, list[int]] = field(default_factory=dict)
    _serials: itertools.count = field(default_factory=itertools.count)

    def sync(self, what: str) -> None:
        """Record a host synchronisation at the caller's call site."""
        key = f"{call_site()}: {what}"
        self.syncs[key] += 1
        self.sync_log.append(key)

    def step(self, optimiser: Any) -> None:
        """Record a step of `optimiser` (told apart by a serial number: ids are reused)."""
        serial = optimiser.__dict__.setdefault("_virtual_cuda_serial", next(self._serials))
        self.step_marks.setdefault(serial, []).append(len(self.sync_log))

    @property
    def training_steps(self) -> int:
        """The steps of the optimiser that stepped most (the training loop's)."""
        return max((len(marks) for marks in self.step_marks.values()), default=0)

    def syncs_per_training_step(self) -> dict[str, float]:
        """Per call site, its syncs between the first and the last step of the busiest optimiser
        divided by the steps in between: 1 or more is a sync on every step of the training loop;
        a read once per epoch of n steps is 1/n. Empty without two steps."""
        marks = max(self.step_marks.values(), key=len, default=[])
        if len(marks) < 2:
            return {}
        window = collections.Counter(self.sync_log[marks[0] : marks[-1]])
        return {site: count / (len(marks) - 1) for site, count in window.items()}


def _is_cuda(device: Any) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    return isinstance(device, str) and device.startswith("cuda")


def _is_device(value: Any) -> bool:
    return isinstance(value, torch.device) or (
        isinstance(value, str) and value.split(":")[0] in ("cpu", "cuda")
    )


def is_tagged(value: Any) -> bool:
    """Whether `value` is a tensor that the virtual device holds on CUDA."""
    return isinstance(value, torch.Tensor) and getattr(value, _TAG, False)


def _set_tag(value: Any, on_cuda: bool) -> None:
    if isinstance(value, torch.Tensor):
        with contextlib.suppress(AttributeError, RuntimeError):
            setattr(value, _TAG, on_cuda)


def _leaves(value: Any) -> list[Any]:
    """The leaves of nested lists, tuples and dicts (the shapes torch ops take and return)."""
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _leaves(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    return [value]


def _tag_all(out: Any) -> None:
    for leaf in _leaves(out):
        _set_tag(leaf, True)


def call_site() -> str:
    """The innermost frame of the repository's code (not this file, not a library) as
    ``relative/path.py:line``; "?" when there is none."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename != _HERE and filename.startswith(str(REPOSITORY)) and "/.venv/" not in filename:
            return f"{Path(filename).relative_to(REPOSITORY)}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


class VirtualGenerator(torch.Generator):
    """A CPU generator that reports the device it was asked for."""

    def __new__(cls, device: Any = "cpu"):
        generator = super().__new__(cls, "cpu")
        generator.on_cuda = _is_cuda(device)
        return generator

    def __init__(self, device: Any = "cpu"):
        del device  # torch.Generator's state is made in __new__

    @property
    def device(self) -> torch.device:
        return CUDA if self.on_cuda else CPU


def _largest(tensors: list[torch.Tensor]) -> int:
    return max((t.numel() for t in tensors), default=0)


class _VirtualCudaMode(TorchFunctionMode):
    """The torch function mode behind ``virtual_cuda``: tags, checks and records every op."""

    def __init__(self, report: Report):
        super().__init__()
        self.report = report

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", str(func))
        if name == "__get__":
            return self._attribute(func, args, kwargs)
        args = list(args)
        to_cuda = self._destination(name, args, kwargs)  # None: where the inputs are
        if name == "cuda":
            func, args = torch.Tensor.to, [args[0], "cpu"]
        flat = _leaves((args, kwargs))
        tensors = [t for t in flat if isinstance(t, torch.Tensor)]
        on_cuda = [t for t in tensors if is_tagged(t)]
        on_cpu = [t for t in tensors if not is_tagged(t) and t.dim() > 0]
        out_cuda = to_cuda if to_cuda is not None else bool(on_cuda)
        self._check(name, args, flat, tensors, on_cuda, on_cpu, out_cuda, to_cuda)
        out = func(*args, **kwargs)
        if name in ("to", "cpu", "cuda") and out is args[0] and to_cuda is not None:
            if to_cuda != is_tagged(out):  # the same CPU tensor stands for another device
                out = out.view_as(out)  # the mode is off inside its own handler
            _set_tag(out, to_cuda)
        elif out_cuda and name not in _TO_NUMPY and name not in _READS:
            _tag_all(out)
        return out

    @staticmethod
    def _attribute(func, args, kwargs):
        """Tensor attributes: ``.device``/``.is_cuda`` answer for the virtual device; tensors
        read off a CUDA tensor (``.grad``, ``.data``, ``.T``) are on CUDA."""
        out = func(*args, **kwargs)
        owner = args[0] if args else None
        if not is_tagged(owner):
            return out
        attribute = getattr(getattr(func, "__self__", None), "__name__", "")
        if attribute == "device":
            return CUDA
        if attribute == "is_cuda":
            return True
        if attribute == "is_cpu":
            return False
        if isinstance(out, torch.Tensor):
            _set_tag(out, True)
        return out

    @staticmethod
    def _destination(name: str, args: list, kwargs: dict) -> bool | None:
        """True/False when the op puts its result on CUDA/the CPU (arguments rewritten so the
        real op stays on the CPU); None when the result follows its inputs."""
        to_cuda = None
        if "device" in kwargs and kwargs["device"] is not None:
            to_cuda = _is_cuda(kwargs["device"])
            if to_cuda:
                kwargs["device"] = "cpu"
        if name == "cuda":
            return True
        if name == "cpu":
            return False
        if name == "to" and args and isinstance(args[0], torch.Tensor):
            for i, value in enumerate(args[1:], 1):
                if _is_device(value):
                    to_cuda = _is_cuda(value)
                    args[i] = "cpu"
                elif isinstance(value, torch.Tensor):
                    to_cuda = is_tagged(value)
        return to_cuda

    def _check(self, name, args, flat, tensors, on_cuda, on_cpu, out_cuda, to_cuda) -> None:
        report = self.report
        if name in _TO_NUMPY and on_cuda:
            report.problems[f"{call_site()}: .{name}() of a CUDA tensor (CUDA: TypeError)"] += 1
        if name in _READS and on_cuda:
            report.sync(name)
        if name in _DATA_DEPENDENT and on_cuda:
            report.sync(f"{name} (data-dependent shape)")
        if name in ("to", "cpu") and to_cuda is False and args and is_tagged(args[0]):
            report.sync("copy to the host")
        if name in ("__getitem__", "__setitem__"):
            self._check_indexing(name, args)
        elif on_cuda and on_cpu and name not in _TRANSFERS:
            report.problems[
                f"{call_site()}: {name} mixes CUDA and CPU tensors (CUDA: RuntimeError)"
            ] += 1
        for generator in (g for g in flat if isinstance(g, torch.Generator)):
            generator_cuda = getattr(generator, "on_cuda", False)
            if generator_cuda != out_cuda and name != "manual_seed":
                report.problems[
                    f"{call_site()}: {name} draws with a {'CUDA' if generator_cuda else 'CPU'} "
                    f"generator for a {'CUDA' if out_cuda else 'CPU'} tensor (CUDA: RuntimeError)"
                ] += 1
        if name in _HEAVY and not on_cuda and _largest(tensors) >= HEAVY_ELEMENTS:
            report.cpu_heavy[f"{call_site()}: torch {name} on CPU tensors"] += 1

    def _check_indexing(self, name: str, args: list) -> None:
        """CUDA indexes a CUDA tensor with CPU or CUDA indices, never a CPU tensor with CUDA
        indices; a boolean mask makes the result's size depend on the data (a sync); assigning
        values of another device through indices fails (a slice assignment is a copy)."""
        target, index = args[0], args[1] if len(args) > 1 else None
        indices = _leaves(index)
        index_tensors = [t for t in indices if isinstance(t, torch.Tensor)]
        report = self.report
        if not is_tagged(target) and any(is_tagged(t) for t in index_tensors):
            report.problems[f"{call_site()}: a CPU tensor indexed by a CUDA tensor"] += 1
        if is_tagged(target) and any(t.dtype == torch.bool for t in index_tensors):
            report.sync("boolean-mask indexing (data-dependent shape)")
        if name == "__setitem__" and len(args) > 2 and isinstance(args[2], torch.Tensor):
            value = args[2]
            if is_tagged(value) != is_tagged(target) and (value.dim() > 0 or is_tagged(value)):
                if index_tensors:
                    report.problems[
                        f"{call_site()}: index assignment across devices (CUDA: RuntimeError)"
                    ] += 1
                elif is_tagged(value):
                    report.sync("copy to the host")


@contextlib.contextmanager
def _patched(target: Any, attribute: str, replacement: Any) -> Iterator[None]:
    original = getattr(target, attribute)
    setattr(target, attribute, replacement)
    try:
        yield
    finally:
        setattr(target, attribute, original)


def _module_to(original):
    def to(self, *args, **kwargs):
        device = kwargs.get("device", next((a for a in args if _is_device(a)), None))
        args = tuple("cpu" if _is_device(a) else a for a in args)
        if "device" in kwargs:
            kwargs["device"] = "cpu"
        out = original(self, *args, **kwargs)
        if device is not None:
            for tensor in [*self.parameters(), *self.buffers()]:
                _set_tag(tensor, _is_cuda(device))
        return out

    return to


def _parameter_new(original):
    def new(cls, data=None, requires_grad=True):
        out = original(cls, data, requires_grad)
        if is_tagged(data):
            _set_tag(out, True)
        return out

    return new


def _parameter_deepcopy(original):
    def deepcopy(self, memo):
        out = original(self, memo)
        if is_tagged(self):
            _set_tag(out, True)
        return out

    return deepcopy


def _recording(report: Report, what: str, work, original):
    def call(*args, **kwargs):
        if work(*args, **kwargs) >= HEAVY_LIBRARY_WORK:
            report.cpu_heavy[f"{call_site()}: {what}"] += 1
        return original(*args, **kwargs)

    return call


def _library_patches(report: Report, stack: contextlib.ExitStack) -> None:
    import importlib

    for module_name, attribute, what, work in CPU_LIBRARY_CALLS:
        owner: Any = importlib.import_module(module_name)
        *path, last = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        recording = _recording(report, what, work, getattr(owner, last))
        stack.enter_context(_patched(owner, last, recording))


@contextlib.contextmanager
def virtual_cuda() -> Iterator[Report]:
    """Run the block on the virtual CUDA device (module docstring); yields its ``Report``."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    report = Report()

    def count_step(optimiser, args, kwargs):
        report.step(optimiser)

    with contextlib.ExitStack() as stack:
        stack.enter_context(_patched(torch, "Generator", VirtualGenerator))
        stack.enter_context(_patched(torch.nn.Module, "to", _module_to(torch.nn.Module.to)))
        parameter = torch.nn.Parameter
        stack.enter_context(_patched(parameter, "__new__", _parameter_new(parameter.__new__)))
        stack.enter_context(
            _patched(parameter, "__deepcopy__", _parameter_deepcopy(parameter.__deepcopy__))
        )
        stack.enter_context(_patched(torch.cuda, "synchronize", lambda device=None: None))
        stack.enter_context(_patched(torch.cuda, "max_memory_allocated", lambda device=None: 0))
        stack.enter_context(
            _patched(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
        )
        _library_patches(report, stack)
        stack.callback(register_optimizer_step_post_hook(count_step).remove)
        stack.enter_context(_VirtualCudaMode(report))
        yield report
