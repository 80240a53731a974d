"""The GPU path without a GPU: one set of features per CUDA sweep, fingerprints a driver plans
with equal to those a trial records, cache keys that build no model, the run's GPU read.

CUDA is pretended where the harness asks for it (``torch.cuda.is_available`` and the memory
counters are patched) and the backbone is built on the CPU whatever device it is asked for, so
the real planning, caching and recording code runs; a method with a GPU share then fails on its
first CUDA tensor, which leaves an error record that still carries its inputs.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
from conftest import unique_name
from dataset_fixtures import write_imagenet
from laicbench.datasets.imagenet_classes import IMAGENET10_WNIDS

import laicbench.data.backbone
import laicbench.data.pipeline
from laicbench.api.settings import DataSettings
from laicbench.data.backbone import load_backbone
from laicbench.run.config import SweepConfig
from laicbench.run.records import ResultStore
from laicbench.run.runner import execute_run
from laicbench.run.sweep import Sweep

TINY = "tiny-random"
PLUGIN = '''
from laicbench.datasets.imagenet import ImageNet10
from laicbench.api.registry import register_dataset


@register_dataset({name!r})
class TinyImageNet10(ImageNet10):
    """ImageNet-10 on 2 train / 1 val image per class."""

    expected_counts = {{"train": 20, "test": 10}}
'''
VOCAB = ["goose", "dog", "leopard", "airliner", "airship", "boat", "orange", "cat", "bird", "car"]


class Calls:
    """What the patched extraction and CUDA functions were asked."""

    def __init__(self) -> None:
        self.extractions: list[tuple[str, str]] = []  # (device, precision)
        self.models: list[str] = []  # devices create_model was asked for
        self.peak_devices: list[object] = []


@pytest.fixture
def calls(monkeypatch) -> Calls:
    """Extraction and model building on the CPU whatever device they are asked for, recorded."""
    record = Calls()
    encode = laicbench.data.pipeline.encode_images
    create = laicbench.data.backbone.create_model

    def encode_images(model, images, transform, device, precision="fp32", **kw):
        record.extractions.append((device, precision))
        return encode(model, images, transform, "cpu", precision="fp32", **kw)

    def create_model(spec, device="cpu"):
        record.models.append(device)
        return create(spec, "cpu")

    monkeypatch.setattr(laicbench.data.pipeline, "encode_images", encode_images)
    monkeypatch.setattr(laicbench.data.backbone, "create_model", create_model)
    text_encoder = laicbench.data.backbone.TextEncoder
    monkeypatch.setattr(
        laicbench.data.backbone, "TextEncoder", lambda m, t, device: text_encoder(m, t, "cpu")
    )
    monkeypatch.setattr(laicbench.data.pipeline, "autocast_context", lambda *a: nullcontext())
    load_backbone.cache_clear()
    yield record
    load_backbone.cache_clear()


def pretend_cuda(monkeypatch, calls: Calls) -> None:
    """torch believes a GPU is visible; the peak-memory counters record the device asked."""

    def peak(device=None):
        calls.peak_devices.append(device)
        return 3 * 2**20

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Pretend GPU")
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", peak)


def sweep_config(tmp_path: Path, write_plugin, **overrides) -> SweepConfig:
    name = unique_name("tinynet")
    plugin = write_plugin(PLUGIN.format(name=name))
    root = tmp_path / "data"
    write_imagenet(root, IMAGENET10_WNIDS, n_train=2, n_val=1)
    (tmp_path / "vocabulary.txt").write_text("\n".join(VOCAB) + "\n")
    config = dict(
        methods=["clip-kmeans", "tac"],
        datasets=[name],
        seeds="0",
        backbone=[TINY],
        params={"tac": {"epochs": 1}},
        results_dir=str(tmp_path / "results"),
        data_root=str(root),
        cache_dir=str(tmp_path / "cache"),
        vocabulary=str(tmp_path / "vocabulary.txt"),
        batch_size=8,
        workers=0,
        include_path=[str(plugin)],
        executor="local",
        device="cuda",
    )
    return SweepConfig(**{**config, **overrides})


def common_inputs(inputs: dict) -> dict:
    """The fingerprint fields every method's inputs share (noun methods add the vocabulary's)."""
    return {k: v for k, v in inputs.items() if k != "vocabulary_sha256"}


def test_a_cuda_sweep_gives_cpu_only_and_gpu_methods_the_same_features(
    tmp_path, write_plugin, monkeypatch, calls
):
    pretend_cuda(monkeypatch, calls)
    sweep = Sweep(sweep_config(tmp_path, write_plugin))
    assert sweep.device == "cuda" and sweep.settings.precision == "fp16"
    sweep.check()  # the driver extracts, on the sweep's device, in its precision
    assert set(calls.extractions) == {("cuda", "fp16")}
    extracted, built = len(calls.extractions), len(calls.models)

    result = sweep.execute()
    records = {spec.method: record for spec, record in result.finished}
    assert len(calls.extractions) == extracted  # no run extracted anything
    assert len(calls.models) == built  # nor built a model to read the cache
    kmeans, tac = records["clip-kmeans"], records["tac"]
    assert kmeans.ok, kmeans.error
    assert kmeans.device.startswith("cpu")  # it runs where sweeps run it, on the GPU's features
    assert tac.device.startswith("cuda")
    assert kmeans.inputs["precision"] == tac.inputs["precision"] == "fp16"
    assert common_inputs(kmeans.inputs) == common_inputs(tac.inputs)
    assert kmeans.dataset.info["cache_keys"]["test"] == tac.dataset.info["cache_keys"]["test"]
    assert kmeans.peak_gpu_mb is None and tac.peak_gpu_mb == 3.0

    # a resume plans with the fingerprints the runs recorded: clip-kmeans is done, not outdated
    again = Sweep(sweep_config(tmp_path, write_plugin, datasets=sweep.config.datasets))
    states = {spec.method: state for spec, state, _ in again.states()}
    assert states["clip-kmeans"] == "done"


def test_a_driver_without_a_gpu_plans_the_fingerprints_its_gpu_trials_record(
    tmp_path, write_plugin, monkeypatch, calls
):
    # a remote cluster whose head has no GPU: the driver extracts on its CPU, trials run on CUDA
    config = sweep_config(tmp_path, write_plugin, executor="ray", address="ray://head:10001")
    sweep = Sweep(config)
    assert sweep.device == "cpu"
    todo = sweep.plan.todo
    sweep.check_inputs(todo, sweep.executor_of("local"))  # the driver's extraction, no Ray
    planned = {spec.method: sweep.fingerprints(spec) for spec in todo}

    pretend_cuda(monkeypatch, calls)  # a trial's node has a GPU
    extracted = len(calls.extractions)
    trial_settings = DataSettings(**sweep.settings.to_dict())  # as the trial gets them
    for spec in todo:
        record = execute_run(spec, sweep.store, "cuda", trial_settings)
        assert record.inputs == planned[spec.method], spec.method
        assert record.inputs["precision"] == "fp32"  # the precision of the extracting driver
    assert len(calls.extractions) == extracted
    # the driver's next plan (on its GPU-less head) finds clip-kmeans's record up to date
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    store = ResultStore(config.results_dir)
    state = {spec.method: s for spec, s, _ in Sweep(config).states() if store.read(spec)}
    assert state["clip-kmeans"] == "done"


def test_peak_gpu_memory_is_read_from_the_run_device(tmp_path, monkeypatch, calls):
    from laicbench.run.plan import expand

    (spec,) = expand(SweepConfig(methods=["tac"], datasets=["demo"], seeds="0"))
    pretend_cuda(monkeypatch, calls)
    record = execute_run(spec, ResultStore(tmp_path), "cuda:1", DataSettings())
    assert record.device.startswith("cuda:1")
    assert calls.peak_devices == ["cuda:1"]
    assert record.peak_gpu_mb == 3.0
