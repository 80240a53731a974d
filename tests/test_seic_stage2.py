"""SEIC's stage 2: the LoRA adapter, the self-training of a tiny random image tower on an image
dataset, and the refusal where a run has no images."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from conftest import unique_name
from dataset_fixtures import write_imagenet
from laicbench.datasets.imagenet_classes import IMAGENET10_WNIDS
from laicbench.methods.seic_stage2 import confident_rows
from PIL import Image
from test_features_file import write_features

from laicbench.api import DatasetFeatures, FeatureBundle
from laicbench.api.backbone_spec import BackboneSpec
from laicbench.api.features import ImageTower, Need
from laicbench.api.registry import methods
from laicbench.cluster.lora import LoRALinear, add_lora
from laicbench.data.backbone import load_backbone

PLUGIN = '''
from laicbench.datasets.imagenet import ImageNet10
from laicbench.api.registry import register_dataset


@register_dataset({name!r})
class TinyImageNet10(ImageNet10):
    """ImageNet-10 on 2 train / 1 val image per class."""

    expected_counts = {{"train": 20, "test": 10}}
'''


def test_lora_equals_its_base_at_creation_and_only_a_and_b_learn():
    torch.manual_seed(0)
    base = torch.nn.Linear(6, 4)
    before = base.weight.detach().clone()
    layer = LoRALinear(base, rank=2, alpha=4.0)
    x = torch.randn(5, 6)
    assert torch.equal(layer(x), base(x))  # B = 0
    layer(x).square().sum().backward()
    trainable = {name for name, p in layer.named_parameters() if p.requires_grad}
    assert trainable == {"lora_a", "lora_b"}
    assert base.weight.grad is None and base.bias.grad is None
    assert layer.lora_b.grad is not None and layer.lora_b.grad.abs().sum() > 0
    assert torch.equal(base.weight, before)


def test_lora_computes_w_x_plus_scaled_b_a_x():
    torch.manual_seed(1)
    base = torch.nn.Linear(6, 4)
    layer = LoRALinear(base, rank=3, alpha=6.0)
    with torch.no_grad():
        layer.lora_b.copy_(torch.randn(4, 3))
    x = torch.randn(5, 6)
    a, b = layer.lora_a.detach(), layer.lora_b.detach()
    expected = x @ base.weight.T + base.bias + (6.0 / 3) * (b @ a @ x.T).T
    torch.testing.assert_close(layer(x), expected)


def test_add_lora_wraps_the_linear_layers_and_freezes_the_rest():
    visual = load_backbone(BackboneSpec.parse("tiny-random"), "cpu").model.visual
    tower = copy.deepcopy(visual)
    adapters = add_lora(tower, rank=2, alpha=4.0)
    wrapped = [m for m in tower.modules() if isinstance(m, LoRALinear)]
    assert wrapped and len(adapters) == 2 * len(wrapped)
    assert {id(p) for p in tower.parameters() if p.requires_grad} == {id(p) for p in adapters}
    assert not any(isinstance(m, LoRALinear) for m in visual.modules())  # the original is intact
    pixels = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(tower(pixels), visual(pixels))


def test_confident_rows_keep_the_most_confident_share_of_each_cluster():
    confidence = np.array([0.9, 0.1, 0.5, 0.8, 0.7, 0.2])
    pseudo = np.array([0, 0, 0, 1, 1, 1])
    assert confident_rows(confidence, pseudo, 0.5).tolist() == [0, 2, 3, 4]
    assert confident_rows(confidence, pseudo, 1.0).tolist() == list(range(6))


def _tiny_image_features(n_train: int = 12, n_test: int = 6, n_classes: int = 3):
    backbone = load_backbone(BackboneSpec.parse("tiny-random"), "cpu")
    rng = np.random.default_rng(0)

    def image(label: int) -> Image.Image:
        colour = np.zeros((32, 32, 3), dtype=np.uint8)
        colour[..., label % 3] = 200
        noise = rng.integers(0, 40, size=colour.shape, dtype=np.uint8)
        return Image.fromarray(colour + noise)

    train_labels, test_labels = np.arange(n_train) % n_classes, np.arange(n_test) % n_classes
    train, test = [image(y) for y in train_labels], [image(y) for y in test_labels]
    transform = backbone.image_transform(1.0)
    with torch.no_grad():
        encode = lambda images: backbone.model.encode_image(  # noqa: E731
            torch.stack([transform(i) for i in images])
        ).numpy()
        image_train, image_test = encode(train), encode(test)
    tower = backbone.model.visual
    kept = copy.deepcopy(tower).float()  # one copy, returned each time: the test inspects it
    nouns = rng.normal(size=(40, image_train.shape[1])).astype(np.float32)
    data = DatasetFeatures(
        image_train=image_train,
        image_test=image_test,
        labels_train=train_labels,
        labels_test=test_labels,
        class_names=["a", "b", "c"],
        noun_words=[f"noun{i}" for i in range(40)],
        noun_features_loader=lambda: nouns / np.linalg.norm(nouns, axis=1, keepdims=True),
        image_tower_loader=lambda: ImageTower(lambda: kept, transform, train, test, batch_size=4),
    )
    return data, kept


def test_stage2_trains_the_adapters_and_labels_the_test_images():
    data, tower = _tiny_image_features()
    cls = methods.get("seic")
    params = {"epochs": 2, "kmeans_n_init": 1, "k1": 5, "k2": 5, "stage2_epochs": 2,
              "stage2_rank": 2, "stage2_lr": 1e-2, "stage2_batch_size": 4}  # fmt: skip
    assert Need.IMAGE_TOWER in cls.run_needs(params)
    assert Need.IMAGE_TOWER not in cls.run_needs({"epochs": 2})
    method = cls.from_params(params)
    bundle = FeatureBundle(data, cls.run_needs(params), "tiny", "cpu")
    labels = method.fit_predict(bundle, 3, seed=0)
    assert labels.shape == (6,) and labels.dtype.kind == "i"
    assert labels.min() >= 0 and labels.max() < 3
    adapters = [m for m in tower.modules() if isinstance(m, LoRALinear)]
    assert adapters and all(m.lora_b.abs().sum() > 0 for m in adapters)  # B left its zero init
    stage2 = method.artefacts_["stage2"]
    assert stage2["epochs"] == 2 and stage2["lora_rank"] == 2
    assert 3 <= stage2["n_pseudo_labels"] <= 12 and len(stage2["loss_history"]) == 2
    assert (
        "stage 2" in method.artefacts_["selection"]
        and "no labels" in method.artefacts_["selection"]
    )
    # without the need declared, the bundle refuses the images
    with pytest.raises(AttributeError, match="IMAGE_TOWER"):
        cls.from_params(params).fit_predict(FeatureBundle(data, cls.needs, "tiny", "cpu"), 3, 0)


def test_stage2_runs_end_to_end_on_an_image_dataset(cli, tmp_path, write_plugin):
    name = unique_name("seicnet")
    plugin = write_plugin(PLUGIN.format(name=name))
    root, results = tmp_path / "data", tmp_path / "runs"
    write_imagenet(root, IMAGENET10_WNIDS, n_train=2, n_val=1)
    vocabulary = tmp_path / "nouns.txt"
    vocabulary.write_text("\n".join(f"thing{i}" for i in range(30)) + "\n")
    argv = [
        "run", "--methods", "seic", "--datasets", name, "--seeds", "0",
        "--grid", "seic.stage2_epochs=1", "--grid", "seic.epochs=1", "--grid", "seic.k1=3",
        "--grid", "seic.k2=3", "--grid", "seic.kmeans_n_init=1",
        "--grid", "seic.stage2_batch_size=4",
        "--backbone", "tiny-random", "--cache-dir", tmp_path / "cache", "--data-root", root,
        "--include-path", plugin, "--device", "cpu", "--workers", "0", "--batch-size", "4",
        "--vocabulary", vocabulary, "--results-dir", results,
    ]  # fmt: skip
    result = cli(*argv)
    assert result.status == 0, result.err
    [path] = list(results.rglob("*.json"))
    record = json.loads(path.read_text())
    assert record["status"] == "ok", record.get("error")
    stage2 = record["artefacts"]["stage2"]
    assert stage2["epochs"] == 1 and 10 <= stage2["n_pseudo_labels"] <= 20
    assert record["spec"]["params"]["stage2_epochs"] == 1
    # an attack perturbs the cached test features only: stage 2 would bypass it, so it is refused
    attacked = cli(*argv, "--attack", "pgd")
    assert attacked.status == 2 and len(attacked.err_lines) == 1, attacked.err
    assert "without --attack" in attacked.err


def test_stage2_on_inputs_without_images_is_refused_in_one_line(cli, tmp_path):
    features = write_features(tmp_path / "features.npz", nouns=True)
    for dataset, reason in (("demo", "it has no images"), (features, "no images nor image tower")):
        result = cli("run", "--methods", "seic", "--datasets", dataset, "--seeds", "0", "--grid",
                     "seic.stage2_epochs=1", "--results-dir", tmp_path / "runs")  # fmt: skip
        assert result.status == 2, result.err
        assert len(result.err_lines) == 1, result.err
        assert "image_tower" in result.err and reason in result.err
        assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.json"))
