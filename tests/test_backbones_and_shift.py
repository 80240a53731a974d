"""Several backbones in one sweep (and their comparison in the report), VLM4Cluster's backbone
names, and the shift track: methods trained on ImageNet labelling a test-only shift set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torchvision.datasets as tvd
from dataset_fixtures import patch_torchvision_md5s, write_cifar100, write_imagenet
from laicbench.datasets.cifar100 import Cifar100
from laicbench.datasets.flowers102 import Flowers102
from laicbench.datasets.imagenet import ImageNet
from laicbench.datasets.imagenet_shift import ImageNetR
from laicbench.datasets.imagenet_shift_classes import IMAGENET_R_WNIDS, IMAGENET_WNIDS
from matplotlib.image import imread
from more_dataset_fixtures import patch_flowers102_md5s, write_class_folders, write_flowers102

from laicbench.api.backbone_spec import VLM4CLUSTER_BACKBONES, BackboneSpec
from laicbench.api.errors import UserError
from laicbench.cluster.metrics import cluster_accuracy
from laicbench.run.config import SweepConfig
from laicbench.run.plan import expand
from laicbench.run.records import load_arrays
from laicbench.run.spec import path_part


def test_backbone_lists_expand_to_one_run_per_backbone():
    config = SweepConfig(
        methods=["clip-kmeans"], datasets=["cifar10"], seeds="0-1",
        backbone="ViT-B-32:openai, ViT-L-14:openai",
    )  # fmt: skip
    specs = expand(config)
    assert [(s.backbone, s.seed) for s in specs] == [
        ("ViT-B-32:openai", 0), ("ViT-B-32:openai", 1), ("ViT-L-14:openai", 0),
        ("ViT-L-14:openai", 1),
    ]  # fmt: skip
    assert len({s.run_id for s in specs}) == 4
    assert SweepConfig(backbone=["a:b", "c:d"]).backbone == ["a:b", "c:d"]
    with pytest.raises(UserError, match="tiny-random"):  # simulated data: its own backbone only
        expand(SweepConfig(datasets=["demo"], backbone="tiny-random,ViT-B-32:openai"))


@pytest.mark.parametrize("name", VLM4CLUSTER_BACKBONES)
def test_vlm4cluster_backbones_are_accepted_and_fail_offline_in_one_line(name, monkeypatch):
    import open_clip

    from laicbench.data.backbone import create_model

    spec = BackboneSpec.parse(name)
    assert (spec.arch, spec.pretrained) in set(open_clip.list_pretrained())
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub read the variable when it was imported: set what it reads now as well, so
    # that the failure is the fast offline one and not a network timeout
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError) as info:
        create_model(spec)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert f"download tag {spec.pretrained!r}" in message  # the first way out
    assert f"{spec.arch}:/path/to/file.pt" in message  # the second


def _two_datasets(root, monkeypatch):
    """Tiny cifar100 (200 / 100 images) and flowers102 (102 / 102) in their real formats."""
    write_cifar100(root, n_train=200, n_test=100)
    patch_torchvision_md5s(monkeypatch, tvd.CIFAR100, root / "cifar-100-python")
    write_flowers102(root, per_part={"train": 1, "val": 1, "test": 1})
    patch_flowers102_md5s(monkeypatch, root / "flowers-102")
    monkeypatch.setattr(Cifar100, "expected_counts", {"train": 200, "test": 100})
    monkeypatch.setattr(Flowers102, "expected_counts", {"train": 102, "test": 102})


def _run_and_compare(cli, tmp_path, backbones: list[str]) -> None:
    """Run clip-kmeans on both datasets with `backbones`; check the records and the report's
    backbone comparison (a main table per backbone, the comparison figure)."""
    results = tmp_path / "runs"
    result = cli(
        "run", "--executor", "local", "--methods", "clip-kmeans",
        "--datasets", "cifar100,flowers102", "--backbone", ",".join(backbones),
        "--seeds", "0", "--data-root", tmp_path / "data", "--cache-dir", tmp_path / "cache",
        "--results-dir", results, "--device", "cpu", "--workers", "0",
    )  # fmt: skip
    assert result.status == 0, result.out + result.err
    records = [json.loads(p.read_text()) for p in results.rglob("*.json")]
    assert {(r["dataset"]["name"], r["backbone"]) for r in records} == {
        (d, b) for d in ("cifar100", "flowers102") for b in backbones
    }
    assert all(r["status"] == "ok" for r in records)
    keys = {(r["dataset"]["name"], r["dataset"]["info"]["cache_keys"]["test"]) for r in records}
    assert len(keys) == 4  # features extracted once per backbone and dataset

    out = tmp_path / "report"
    assert cli("report", "--results-dir", results, "--out", out).status == 0
    index = (out / "index.md").read_text()
    for backbone in backbones:
        stem = f"main_table-{path_part(backbone)}"
        assert f"({stem}.md)" in index
        table = (out / f"{stem}.md").read_text()
        assert "cifar100" in table and "flowers102" in table
        assert (
            table.rstrip().endswith(f"Backbone: {backbone}.") or f"Backbone: {backbone}." in table
        )
    image = imread(out / "figures" / "backbone_comparison.png")
    assert image.shape[1] > 500 and len(np.unique(image[..., :3].reshape(-1, 3), axis=0)) > 20


def test_two_datasets_two_backbones_end_to_end_with_comparison(cli, tmp_path, monkeypatch):
    import torch

    from laicbench.data.backbone import create_model

    _two_datasets(tmp_path / "data", monkeypatch)
    checkpoint = tmp_path / "tiny-other.pt"  # a second backbone as cheap as the first
    state = create_model(BackboneSpec.parse("tiny-random")).state_dict()
    torch.save({k: v * 1.5 for k, v in state.items()}, checkpoint)
    _run_and_compare(cli, tmp_path, ["tiny-random", f"laicbench-tiny:{checkpoint}"])


@pytest.mark.slow
def test_issue_command_tiny_random_and_vit_b_32_random(cli, tmp_path, monkeypatch):
    _two_datasets(tmp_path / "data", monkeypatch)
    _run_and_compare(cli, tmp_path, ["tiny-random", "ViT-B-32:random"])


def _shift_fixtures(root, monkeypatch):
    """A tiny ImageNet (two train and one val image per class) and a tiny ImageNet-R (one
    image per class), each class one colour, the same in both."""
    write_imagenet(root, list(IMAGENET_WNIDS), n_train=2, n_val=1)
    index = {w: i for i, w in enumerate(IMAGENET_WNIDS)}
    write_class_folders(
        root / "imagenet-r", IMAGENET_R_WNIDS, colour_of=[index[w] for w in IMAGENET_R_WNIDS]
    )
    monkeypatch.setattr(ImageNet, "expected_counts", {"train": 2000, "test": 1000})
    monkeypatch.setattr(ImageNetR, "expected_counts", {"train": 200, "test": 200})


@pytest.mark.slow  # a 1,000-class ImageNet fixture: about 40 s
def test_shift_track_trains_on_imagenet_and_reports_the_drop(cli, tmp_path, monkeypatch):
    root, results = tmp_path / "data", tmp_path / "runs"
    _shift_fixtures(root, monkeypatch)
    config = tmp_path / "cheap.toml"
    config.write_text("[params.scan]\nepochs = 2\nn_heads = 2\n")
    common = (
        "run", "--executor", "local", "--methods", "clip-kmeans,scan", "--seeds", "0",
        "--data-root", root, "--cache-dir", tmp_path / "cache", "--results-dir", results,
        "--device", "cpu", "--workers", "0", "--config", config, "--backbone", "tiny-random",
    )  # fmt: skip
    result = cli(*common, "--datasets", "imagenet,imagenet-r", "--train-on", "imagenet")
    assert result.status == 0, result.out + result.err
    assert cli(*common, "--datasets", "imagenet-r", "--train-on", "imagenet:subset").status == 0
    paths = {}
    for path in results.rglob("*.json"):
        r = json.loads(path.read_text())
        paths[(r["method"]["name"], r["dataset"]["name"], r.get("train_on"))] = path
    records = {key: json.loads(path.read_text()) for key, path in paths.items()}
    assert set(records) == {
        ("clip-kmeans", "imagenet", None), ("clip-kmeans", "imagenet-r", None),
        ("scan", "imagenet", None), ("scan", "imagenet-r", "imagenet:all"),
        ("scan", "imagenet-r", "imagenet:subset"),
    }  # fmt: skip
    # the default, VLM4Cluster's: 1,000-way heads trained on all 2,000 ImageNet train images
    everything = records[("scan", "imagenet-r", "imagenet:all")]
    assert everything["status"] == "ok", everything.get("error")
    assert everything["dataset"]["n_train"] == 2000 and everything["n_clusters"] == 1000
    assert everything["dataset"]["n_test"] == 200
    assert everything["inputs"]["train_on"] == "imagenet:all"
    assert everything["inputs"]["settings_from"] == "imagenet"
    # the named option: the 400 ImageNet train images of ImageNet-R's 200 classes, K = 200
    subset = records[("scan", "imagenet-r", "imagenet:subset")]
    assert subset["dataset"]["n_train"] == 400 and subset["n_clusters"] == 200
    assert records[("clip-kmeans", "imagenet-r", None)]["dataset"]["n_train"] == 200

    again = cli(*common, "--datasets", "imagenet-r", "--train-on", "imagenet:all")
    assert again.status == 0 and "0 new" in again.out, again.out  # resumed, train source and all

    out = tmp_path / "report"
    assert cli("report", "--results-dir", results, "--out", out).status == 0
    shift = (out / "shift.md").read_text()
    row = next(
        line for line in shift.splitlines()
        if line.startswith("| scan (trained on imagenet:all)")
    )  # fmt: skip
    cells = [c.strip() for c in row.split("|")[2:-1]]
    assert cells[0] == f"{records[('scan', 'imagenet', None)]['metrics']['acc']:.2f}"
    # the drop: the same heads (the ImageNet run) on ImageNet's val images of the 200 classes
    arrays = load_arrays(paths[("scan", "imagenet", None)])
    keep = np.isin(arrays["y_true"], ImageNetR(root=root).imagenet_indices())
    same_heads = 100 * cluster_accuracy(arrays["y_true"][keep], arrays["y_pred"][keep])
    acc = everything["metrics"]["acc"]
    assert cells[1] == f"{acc:.2f} ({acc - same_heads:+.2f})"
    assert "| clip-kmeans (own images) |" in shift  # training-free: clustered the shift set


def test_train_on_a_dataset_that_cannot_pair_is_one_line(cli, tmp_path):
    result = cli("run", "--executor", "local", "--methods", "scan", "--datasets", "imagenet-r",
                 "--train-on", "cifar10", "--results-dir", tmp_path)  # fmt: skip
    assert result.status != 0 and len(result.err_lines) == 1
    assert "cannot be paired" in result.err
