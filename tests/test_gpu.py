"""On a CUDA GPU: every method with a GPU share repeats itself exactly, and agrees with the CPU.

Skipped without a GPU (``make test`` reports them as skipped); ``scripts/device_check.sh`` runs
them on a machine that has one. Each run goes through ``execute_run``, as a sweep's does, on
the demo benchmark (demo-10) with the method's quick parameters (the conformance test's).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from laicbench.api import registry
from laicbench.run.config import SweepConfig
from laicbench.run.plan import expand
from laicbench.run.records import ResultStore, load_arrays
from laicbench.run.runner import execute_run

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

# The lowest ARI between a method's CPU and CUDA partitions of demo-10 (seed 0) that passes:
# the two differ only by floating-point rounding (other kernels, other summation orders,
# topk's order among exact ties), which may move a few borderline images or, rarely, let a
# restart or an epoch end elsewhere; well-separated simulated clusters keep that small.
CPU_CUDA_MIN_ARI = 0.8


def gpu_methods() -> list[str]:
    """The registered methods that ask for a GPU share."""
    registry.methods.load_builtins()
    return [e.name for e in registry.methods.entries() if e.obj.resources.gpus > 0]


def labels_of(method: str, device: str, folder) -> np.ndarray:
    """The test-split labels of `method` on demo-10, seed 0, on `device` (its quick params)."""
    cls = registry.methods.get(method)
    config = SweepConfig(
        methods=[method], datasets=["demo"], seeds="0", params={method: dict(cls.quick_params)}
    )
    (spec,) = expand(config)
    store = ResultStore(folder)
    record = execute_run(spec, store, device)
    assert record.ok, record.error
    assert record.device.startswith(device)
    return load_arrays(store.record_path(spec))["y_pred"]


@pytest.mark.parametrize("method", gpu_methods())
def test_the_same_seed_twice_on_cuda_gives_the_same_labels(method, tmp_path):
    first = labels_of(method, "cuda", tmp_path / "first")
    second = labels_of(method, "cuda", tmp_path / "second")
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("method", gpu_methods())
def test_cuda_and_cpu_partitions_agree(method, tmp_path):
    on_cuda = labels_of(method, "cuda", tmp_path / "cuda")
    on_cpu = labels_of(method, "cpu", tmp_path / "cpu")
    assert adjusted_rand_score(on_cpu, on_cuda) >= CPU_CUDA_MIN_ARI
