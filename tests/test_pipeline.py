"""From dataset files to cached features: cache keys, the `features` command, runs on the cache."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import squash, table_rows, unique_name
from dataset_fixtures import write_imagenet
from laicbench.datasets.imagenet import ImageNet10, ImageNetDogs
from laicbench.datasets.imagenet_classes import IMAGENET10_WNIDS

import laicbench.data.backbone
import laicbench.data.pipeline
from laicbench.api.backbone_spec import BackboneSpec
from laicbench.api.settings import DataSettings
from laicbench.data.backbone import Backbone, create_model, load_backbone
from laicbench.data.cache import FeatureCache, cache_key
from laicbench.data.pipeline import image_dataset_features, image_key_fields, text_key_fields
from laicbench.data.text_encoder import NOUN_TEMPLATES, TextEncoder

COUNTS = {"train": 20, "test": 10}  # write_imagenet with 2 train and 1 val image per class
VOCAB = [
    "goose", "dog", "leopard", "airliner", "airship", "boat", "football", "train", "truck",
    "orange", "cat", "bird", "car", "tree", "house", "river", "mountain", "bridge", "flower",
    "apple", "chair", "table", "lamp", "horse", "fish", "plane", "ship", "road", "cloud", "ball",
]  # fmt: skip
TINY = "tiny-random"

PLUGIN = '''
from laicbench.datasets.imagenet import ImageNet10
from laicbench.api.registry import register_dataset


@register_dataset({name!r})
class TinyImageNet10(ImageNet10):
    """ImageNet-10 on 2 train / 1 val image per class."""

    expected_counts = {{"train": 20, "test": 10}}
'''


def tiny_imagenet_plugin(write_plugin) -> tuple[str, Path]:
    name = unique_name("tinynet")
    return name, write_plugin(PLUGIN.format(name=name))


def write_vocabulary(folder: Path, words: list[str] = VOCAB) -> Path:
    path = folder / "vocabulary.txt"
    path.write_text("\n".join(words) + "\n")
    return path


def fail(*args, **kwargs):
    raise AssertionError("features were computed although they are cached")


def records_in(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.rglob("*.json"))]


# ---------------------------------------------------------------------------------------------
# cache keys


@pytest.fixture
def tiny():
    return load_backbone(BackboneSpec.parse(TINY), "cpu")


def save_tiny_checkpoint(path: Path, shift: float = 0.0) -> Path:
    state = create_model(BackboneSpec.parse(TINY)).state_dict()
    state = {name: value.clone() for name, value in state.items()}
    state["logit_scale"] += shift
    torch.save(state, path)
    return path


def test_image_cache_key_changes_with_every_keyed_field(tmp_path, monkeypatch, tiny):
    monkeypatch.setenv("LAICBENCH_CACHE", str(tmp_path / "home-cache" / "features"))
    dataset = ImageNet10(root=tmp_path / "data", expected_counts=COUNTS)
    ids = [f"train/{IMAGENET10_WNIDS[i % 10]}/{i}.JPEG" for i in range(20)]

    def key(backbone=tiny, ds=dataset, split="train", sample_ids=ids, precision="fp32") -> str:
        return cache_key(image_key_fields(backbone, ds, split, sample_ids, precision))

    tiny.model  # noqa: B018 - built, so that the tiny architecture is registered with open_clip
    base = key()
    # identical inputs in fresh objects (and another data root: the files' place is not keyed)
    same = key(
        Backbone(BackboneSpec.parse(TINY), "cpu"),
        ImageNet10(root=tmp_path / "elsewhere", expected_counts=COUNTS),
        "train",
        list(ids),
        "fp32",
    )
    assert same == base

    class WideCrop(ImageNet10):  # the same dataset name, resized to the input size
        resize_ratio = 1.0

    assert WideCrop.name == dataset.name
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt")
    from_file = Backbone(BackboneSpec.parse(f"laicbench-tiny:{checkpoint}"), "cpu")
    changed_ids = list(ids)
    changed_ids[7] = "train/n02085936/other.JPEG"
    variants = {
        "arch": key(Backbone(BackboneSpec.parse("ViT-S-32:random"), "cpu")),
        "weights file": key(from_file),
        "resize ratio": key(ds=WideCrop(root=tmp_path / "data", expected_counts=COUNTS)),
        "precision": key(precision="fp16"),
        "split": key(split="test"),
        "one sample id": key(sample_ids=changed_ids),
        "sample order": key(sample_ids=ids[::-1]),
        "dataset": key(ds=ImageNetDogs(root=tmp_path / "data", expected_counts=COUNTS)),
    }
    # the same path with other contents: its checksum, and so the key, changes
    save_tiny_checkpoint(checkpoint, shift=1.0)
    variants["weights file contents"] = key(from_file)
    monkeypatch.setattr(laicbench.data.pipeline, "FEATURE_CODE_VERSION", "test-bump")
    variants["feature code version"] = key()

    assert base not in variants.values(), variants
    assert len(set(variants.values())) == len(variants), variants


def test_text_cache_key_changes_with_every_keyed_field(tmp_path, monkeypatch, tiny):
    monkeypatch.setenv("LAICBENCH_CACHE", str(tmp_path / "home-cache" / "features"))

    def key(backbone=tiny, words=VOCAB, precision="fp32") -> str:
        return cache_key(text_key_fields(backbone, words, precision))

    tiny.model  # noqa: B018 - built, so that the tiny architecture is registered with open_clip
    base = key()
    assert key(Backbone(BackboneSpec.parse(TINY), "cpu"), list(VOCAB), "fp32") == base
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt")
    one_word = list(VOCAB)
    one_word[3] = "airplane"
    variants = {
        "arch": key(Backbone(BackboneSpec.parse("ViT-S-32:random"), "cpu")),
        "weights file": key(Backbone(BackboneSpec.parse(f"laicbench-tiny:{checkpoint}"), "cpu")),
        "precision": key(precision="bf16"),
        "one word": key(words=one_word),
        "word order": key(words=VOCAB[::-1]),
        "duplicate word": key(words=[*VOCAB, VOCAB[0]]),
    }
    monkeypatch.setattr(laicbench.data.pipeline, "NOUN_TEMPLATES", (*NOUN_TEMPLATES[:-1], "a {}."))
    variants["templates"] = key()
    assert base not in variants.values(), variants
    assert len(set(variants.values())) == len(variants), variants


FRESH_PROCESS_KEYS = """
import json
from laicbench.data.backbone import load_backbone
from laicbench.api.backbone_spec import BackboneSpec
from laicbench.data.cache import cache_key
from laicbench.data.pipeline import text_key_fields

backbone = load_backbone(BackboneSpec.parse("tiny-random"), "cpu")
first = cache_key(text_key_fields(backbone, ["cat", "dog"], "fp32"))
backbone.model  # the first extraction builds the model
second = cache_key(text_key_fields(backbone, ["cat", "dog"], "fp32"))
print(json.dumps([first, second]))
"""


@pytest.mark.slow
def test_tiny_random_key_does_not_depend_on_what_the_process_did_before(tmp_path):
    """In a fresh process the first key of tiny-random must equal the later ones (else the first
    split extracted by one process is a cache miss in a process that built the model earlier)."""
    env = {**os.environ, "LAICBENCH_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_KEYS], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    first, second = json.loads(done.stdout.splitlines()[-1])
    assert first == second


def test_weights_file_checksum_is_keyed(tmp_path, monkeypatch):
    monkeypatch.setenv("LAICBENCH_CACHE", str(tmp_path / "home-cache" / "features"))
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt")
    backbone = Backbone(BackboneSpec.parse(f"laicbench-tiny:{checkpoint}"), "cpu")
    fields = text_key_fields(backbone, VOCAB, "fp32")
    assert fields["weights"]["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    save_tiny_checkpoint(checkpoint, shift=0.5)
    fields2 = text_key_fields(backbone, VOCAB, "fp32")
    assert fields2["weights"]["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert fields2["weights"]["sha256"] != fields["weights"]["sha256"]


# ---------------------------------------------------------------------------------------------
# features through the API equal a direct computation


def api_setup(tmp_path: Path) -> tuple[ImageNet10, DataSettings]:
    root = tmp_path / "data"
    write_imagenet(root, IMAGENET10_WNIDS, n_train=2, n_val=1)
    settings = DataSettings(
        cache_dir=str(tmp_path / "cache"),
        vocabulary=str(write_vocabulary(tmp_path)),
        batch_size=7,
        num_workers=0,
    )
    return ImageNet10(root=root, expected_counts=COUNTS), settings


def test_cached_image_features_equal_a_direct_computation(tmp_path, monkeypatch):
    dataset, settings = api_setup(tmp_path)
    spec = BackboneSpec.parse(TINY)
    data = image_dataset_features(dataset, spec, "cpu", settings)

    assert data.image_train.shape == (20, 128) and data.image_test.shape == (10, 128)
    assert data.class_names == dataset.class_names()
    assert list(data.noun_words) == VOCAB
    assert set(data.info["cache_keys"]) == {"train", "test"}  # nouns are built on first use
    assert data.info["precision"] == "fp32"
    assert len(FeatureCache(settings.cache_dir).entries()) == 2

    backbone = load_backbone(spec, "cpu")
    transform = backbone.image_transform(dataset.resize_ratio)
    for split, features, labels in (
        ("train", data.image_train, data.labels_train),
        ("test", data.image_test, data.labels_test),
    ):
        images = dataset.split(split)
        np.testing.assert_array_equal(labels, images.labels)
        picked = [0, len(images.labels) - 1]  # two different classes
        batch = torch.stack([transform(images.images[i][0]) for i in picked])
        with torch.no_grad():
            direct = backbone.model.encode_image(batch).float().numpy()
        np.testing.assert_allclose(np.asarray(features)[picked], direct, rtol=1e-5, atol=1e-5)
        assert not np.allclose(direct[0], direct[1])

    # a second load only reads the cache
    disable_extraction(monkeypatch)
    again = image_dataset_features(dataset, spec, "cpu", settings)
    assert isinstance(again.image_train, np.memmap)
    np.testing.assert_array_equal(again.image_train, data.image_train)
    np.testing.assert_array_equal(again.image_test, data.image_test)
    assert again.info["cache_keys"] == data.info["cache_keys"]


def test_loading_cached_features_builds_no_model(tmp_path, monkeypatch):
    # the cache key comes from the configs: a trial that reads the cache loads no CLIP model
    dataset, settings = api_setup(tmp_path)
    spec = BackboneSpec.parse(TINY)
    data = image_dataset_features(dataset, spec, "cpu", settings)
    built = []
    real = laicbench.data.backbone.create_model
    monkeypatch.setattr(
        laicbench.data.backbone, "create_model", lambda *a, **kw: built.append(a) or real(*a, **kw)
    )
    load_backbone.cache_clear()  # a new process: no backbone loaded yet
    again = image_dataset_features(dataset, spec, "cpu", settings)
    assert again.info["cache_keys"] == data.info["cache_keys"]
    np.testing.assert_array_equal(again.image_test, data.image_test)
    assert built == []


@pytest.mark.parametrize("name", [TINY, "RN50:random"])
def test_preprocess_settings_are_those_of_the_built_model(name):
    from laicbench.data.backbone import preprocess_settings

    spec = BackboneSpec.parse(name)
    visual = create_model(spec).visual
    size = visual.image_size
    assert preprocess_settings(spec) == {
        "image_size": int(size[0] if isinstance(size, (tuple, list)) else size),
        "mean": [float(v) for v in visual.image_mean],
        "std": [float(v) for v in visual.image_std],
    }


def test_preprocess_settings_of_a_tag_come_from_its_config():
    import open_clip

    from laicbench.data.backbone import preprocess_settings

    got = preprocess_settings(BackboneSpec.parse("ViT-B-16-SigLIP:webli"))
    tag = open_clip.get_pretrained_cfg("ViT-B-16-SigLIP", "webli")
    assert got == {"image_size": 224, "mean": list(tag["mean"]), "std": list(tag["std"])}
    assert got["mean"] != preprocess_settings(BackboneSpec.parse("RN50:random"))["mean"]


def test_noun_features_are_the_template_ensemble_and_cached(tmp_path, monkeypatch):
    dataset, settings = api_setup(tmp_path)
    spec = BackboneSpec.parse(TINY)
    data = image_dataset_features(dataset, spec, "cpu", settings)
    nouns = data.noun_features
    assert nouns.shape == (len(VOCAB), 128)
    np.testing.assert_allclose(np.linalg.norm(nouns, axis=1), 1.0, atol=1e-5)
    encoder = load_backbone(spec, "cpu").text_encoder
    np.testing.assert_allclose(nouns, encoder.encode_words(VOCAB), atol=1e-5)
    assert set(data.info["cache_keys"]) == {"train", "test", "nouns"}
    assert len(FeatureCache(settings.cache_dir).entries()) == 3

    disable_extraction(monkeypatch)
    again = image_dataset_features(dataset, spec, "cpu", settings)
    np.testing.assert_array_equal(again.noun_features, nouns)
    assert again.info["cache_keys"] == data.info["cache_keys"]


# ---------------------------------------------------------------------------------------------
# the `features` command, then `run` on the cache


def image_dataset_setup(tmp_path: Path, write_plugin) -> tuple[str, Path, list]:
    """(plugin dataset name, cache dir, the data flags of every command)."""
    name, plugin = tiny_imagenet_plugin(write_plugin)
    root, cache_dir = tmp_path / "data", tmp_path / "cache"
    write_imagenet(root, IMAGENET10_WNIDS, n_train=2, n_val=1)
    flags = [
        "--backbone", TINY,
        "--cache-dir", cache_dir,
        "--data-root", root,
        "--vocabulary", write_vocabulary(tmp_path),
        "--include-path", plugin,
        "--device", "cpu",
        "--workers", "0",
        "--batch-size", "8",
    ]  # fmt: skip
    return name, cache_dir, flags


def entry_keys(cache: FeatureCache, name: str) -> dict[str, str]:
    """{"train"|"test"|"nouns"|"noun_templates": key} of the entries in `cache`, by their
    descriptions."""
    kinds = {
        f"{name}/train {TINY}": "train",
        f"{name}/test {TINY}": "test",
        f"{len(VOCAB)} nouns {TINY}": "nouns",
        f"{len(VOCAB)} nouns x {len(NOUN_TEMPLATES)} templates {TINY}": "noun_templates",
    }
    entries = cache.entries()
    assert all(e.manifest["description"] in kinds for e in entries), entries
    return {kinds[e.manifest["description"]]: e.key for e in entries}


def snapshot(cache: FeatureCache) -> dict[str, tuple[str, int]]:
    """(created_at, folder mtime) of every entry."""
    return {e.key: (e.manifest["created_at"], e.path.stat().st_mtime_ns) for e in cache.entries()}


def disable_extraction(monkeypatch) -> None:
    monkeypatch.setattr(laicbench.data.pipeline, "encode_images", fail)
    monkeypatch.setattr(TextEncoder, "encode_words", fail)


def run_args(methods: str, name: str, results: Path, flags: list) -> list:
    return ["run", "--methods", methods, "--datasets", name, "--seeds", "0",
            "--results-dir", results, *flags]  # fmt: skip


def test_features_command_caches_images_once_and_run_reads_them(
    cli, tmp_path, write_plugin, monkeypatch
):
    name, cache_dir, flags = image_dataset_setup(tmp_path, write_plugin)
    result = cli("features", "--datasets", name, "--no-nouns", *flags)
    assert result.status == 0, result.err
    assert f"{name} (tiny-random): 20 train / 10 test images cached" in result.out
    cache = FeatureCache(cache_dir)
    keys = entry_keys(cache, name)
    assert set(keys) == {"train", "test"}
    for split, n in (("train", 20), ("test", 10)):
        manifest = cache.entry(keys[split]).manifest
        assert manifest["fields"]["dataset"] == name
        assert manifest["fields"]["split"] == split
        assert manifest["fields"]["n"] == n
        assert manifest["arrays"]["features"]["shape"] == [n, 128]
        assert manifest["arrays"]["labels"]["shape"] == [n]
        assert cache.problems(keys[split]) == []
    assert all(f"{split}={key}" in squash(result.out) for split, key in keys.items())

    listed = cli("cache", "ls", "--cache-dir", cache_dir)
    assert listed.status == 0, listed.err
    assert {row[0] for row in table_rows(listed.out) if len(row) == 5} == set(keys.values())

    # a second call builds nothing: no extraction, entries untouched
    before = snapshot(cache)
    disable_extraction(monkeypatch)
    again = cli("features", "--datasets", name, "--no-nouns", *flags)
    assert again.status == 0, again.err
    assert snapshot(cache) == before

    # a run reads the same entries (extraction is still disabled)
    results = tmp_path / "results"
    run = cli(*run_args("clip-kmeans", name, results, flags))
    assert run.status == 0, run.out + run.err
    (record,) = records_in(results)
    assert record["status"] == "ok", record.get("error")
    assert record["backbone"] == TINY
    assert record["dataset"]["name"] == name
    assert record["dataset"]["n_classes"] == 10
    info = record["dataset"]["info"]
    assert info["kind"] == "images"
    assert info["cache_dir"] == str(cache_dir)
    assert (info["n_train"], info["n_test"]) == (20, 10)
    assert info["cache_keys"] == keys
    assert snapshot(cache) == before


def test_features_command_caches_nouns_and_tac_notrain_reads_them(
    cli, tmp_path, write_plugin, monkeypatch
):
    name, cache_dir, flags = image_dataset_setup(tmp_path, write_plugin)
    result = cli("features", "--datasets", name, *flags)
    assert result.status == 0, result.err
    cache = FeatureCache(cache_dir)
    keys = entry_keys(cache, name)
    assert set(keys) == {"train", "test", "nouns"}
    nouns = cache.entry(keys["nouns"]).manifest
    assert nouns["arrays"]["features"]["shape"] == [len(VOCAB), 128]
    assert nouns["fields"]["kind"] == "text" and nouns["fields"]["n"] == len(VOCAB)
    assert f"nouns={keys['nouns']}" in squash(result.out)
    listed = cli("cache", "ls", "--cache-dir", cache_dir)
    assert {row[0] for row in table_rows(listed.out) if len(row) == 5} == set(keys.values())

    before = snapshot(cache)
    disable_extraction(monkeypatch)
    again = cli("features", "--datasets", name, *flags)
    assert again.status == 0, again.err
    assert snapshot(cache) == before

    results = tmp_path / "results"
    run = cli(*run_args("clip-kmeans,tac-notrain", name, results, flags))
    assert run.status == 0, run.out + run.err
    records = {r["method"]["name"]: r for r in records_in(results)}
    assert set(records) == {"clip-kmeans", "tac-notrain"}
    for method, record in records.items():
        assert record["status"] == "ok", record.get("error")
        assert record["backbone"] == TINY
        expected = {"train", "test", "nouns"} if method == "tac-notrain" else {"train", "test"}
        assert record["dataset"]["info"]["cache_keys"] == {k: keys[k] for k in expected}
    cluster_nouns = records["tac-notrain"]["artefacts"]["cluster_nouns"]
    assert cluster_nouns and all(w in VOCAB for ws in cluster_nouns.values() for w, _ in ws)
    assert snapshot(cache) == before


def test_features_with_a_checkpoint_writes_nothing_outside_the_cache_dir(
    cli, tmp_path, write_plugin, monkeypatch
):
    """--cache-dir is where the feature cache lives; the weights checksum memo belongs there too,
    not in ~/.cache (here a fake home)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("LAICBENCH_CACHE", raising=False)
    name, plugin = tiny_imagenet_plugin(write_plugin)
    root, cache_dir = tmp_path / "data", tmp_path / "cache"
    write_imagenet(root, IMAGENET10_WNIDS, n_train=2, n_val=1)
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt")
    result = cli(
        "features",
        "--datasets", name,
        "--backbone", f"laicbench-tiny:{checkpoint}",
        "--cache-dir", cache_dir,
        "--data-root", root,
        "--include-path", plugin,
        "--device", "cpu",
        "--workers", "0",
        "--no-nouns",
    )  # fmt: skip
    assert result.status == 0, result.err
    entries = FeatureCache(cache_dir).entries()
    assert len(entries) == 2
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert all(e.manifest["fields"]["weights"]["sha256"] == digest for e in entries)
    assert not (home / ".cache" / "laicbench").exists(), sorted(home.rglob("*"))


def test_run_on_a_missing_dataset_fails_before_any_run(cli, tmp_path, write_plugin):
    name, plugin = tiny_imagenet_plugin(write_plugin)
    (tmp_path / "empty").mkdir()
    results = tmp_path / "results"
    result = cli(
        "run",
        "--methods", "clip-kmeans",
        "--datasets", name,
        "--backbone", TINY,
        "--seeds", "0",
        "--results-dir", results,
        "--data-root", tmp_path / "empty",
        "--cache-dir", tmp_path / "cache",
        "--include-path", plugin,
        "--device", "cpu",
    )  # fmt: skip
    assert result.status == 2
    assert len(result.err_lines) == 1
    assert "Expected layout" in result.err_lines[0]
    assert name in result.err_lines[0]
    assert not results.exists()
    assert not (tmp_path / "cache").exists() or FeatureCache(tmp_path / "cache").entries() == []


def test_noun_templates_are_cached_by_the_features_command_and_before_a_sweep(
    cli, tmp_path, write_plugin, monkeypatch
):
    from laicbench.run.plan import prepare_features
    from laicbench.run.spec import RunSpec

    name, cache_dir, flags = image_dataset_setup(tmp_path, write_plugin)
    result = cli("features", "--datasets", name, "--noun-templates", *flags)
    assert result.status == 0, result.err
    cache = FeatureCache(cache_dir)
    keys = entry_keys(cache, name)
    assert set(keys) == {"train", "test", "nouns", "noun_templates"}
    shape = cache.entry(keys["noun_templates"]).manifest["arrays"]["features"]["shape"]
    assert shape == [len(NOUN_TEMPLATES), len(VOCAB), 128]

    # the sweep's preparation builds them for a method that reads them, and only for it
    for entry in cache.entries():
        cache.remove(entry.key)
    settings = DataSettings(
        data_root=str(tmp_path / "data"),
        cache_dir=str(cache_dir),
        vocabulary=str(write_vocabulary(tmp_path)),
        batch_size=8,
        num_workers=0,
    )
    prepare_features([RunSpec("tac-notrain", name, TINY, 0, {})], "cpu", settings)
    assert set(entry_keys(cache, name)) == {"train", "test", "nouns"}
    prepare_features([RunSpec("ntk-sc", name, TINY, 0, {})], "cpu", settings)
    assert entry_keys(cache, name)["noun_templates"] == keys["noun_templates"]
