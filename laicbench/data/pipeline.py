"""From dataset files to DatasetFeatures: backbone, feature extraction and the feature cache.

Cache keys cover everything that changes the arrays: architecture, weights identity (tag and
its config, file checksum, or random seed), preprocessing (input size, resize ratio,
interpolation, mean, std), precision, dataset, split and the hash of its sample list, and for
text the vocabulary hash and templates (and whether the entry holds their ensemble or each
template's features); plus the versions of torch, torchvision and open_clip and
laicbench's feature-code version. A test split under attack (``--attack``) adds the attack's
fields (``laicbench.data.attacks``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib.metadata import version
from typing import Any, Protocol

import numpy as np

from laicbench.api.backbone_spec import BackboneSpec
from laicbench.api.features import DatasetFeatures, ImageTower
from laicbench.api.settings import DataSettings
from laicbench.data.backbone import Backbone, load_backbone, weights_identity
from laicbench.data.cache import FeatureCache
from laicbench.data.extract import autocast_context, encode_images, progress_bar
from laicbench.data.text_encoder import NOUN_TEMPLATES
from laicbench.data.vocab import load_vocabulary, vocabulary_hash


class ImageSource(Protocol):
    """What the pipeline reads of an image dataset (``ImageSource`` is one): its name, the
    resize ratio of its transform, whether it is a test split only, its class names and its
    splits."""

    name: str
    resize_ratio: float
    test_only: bool

    def split(self, split: str) -> Any:
        """The split's sample ids, labels and image loader."""

    def class_names(self) -> list[str]:
        """The class names, in label order."""


# Bump when extraction code changes what it computes, so that old cache entries are not used.
FEATURE_CODE_VERSION = "1"


def _versions() -> dict[str, str]:
    return {
        "torch": version("torch"),
        "torchvision": version("torchvision"),
        "open_clip_torch": version("open_clip_torch"),
        "laicbench_features": FEATURE_CODE_VERSION,
    }


def backbone_fields(backbone: Backbone, cache_dir: str | None = None) -> dict[str, Any]:
    """Cache-key fields of the backbone's weights."""
    return {"arch": backbone.spec.arch, "weights": weights_identity(backbone.spec, cache_dir)}


def image_key_fields(
    backbone: Backbone,
    dataset: ImageSource,
    split: str,
    sample_ids: list[str],
    precision: str,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """Cache-key fields of one split's image features (`cache_dir` only locates the memo of
    checkpoint checksums; it is not part of the key)."""
    return {
        "kind": "image",
        **backbone_fields(backbone, cache_dir),
        "preprocess": {
            **backbone.preprocess_cfg,
            "resize_ratio": dataset.resize_ratio,
            "interpolation": "bicubic",
            "crop": "center",
        },
        "precision": precision,
        "dataset": dataset.name,
        "split": split,
        "n": len(sample_ids),
        "samples_sha256": vocabulary_hash(sample_ids),
        "versions": _versions(),
    }


def text_key_fields(
    backbone: Backbone, words: list[str], precision: str, cache_dir: str | None = None
) -> dict[str, Any]:
    """Cache-key fields of a vocabulary's text features."""
    return {
        "kind": "text",
        **backbone_fields(backbone, cache_dir),
        "precision": precision,
        "vocabulary_sha256": vocabulary_hash(words),
        "n": len(words),
        "templates": list(NOUN_TEMPLATES),
        "ensemble": "mean of unnormalised template embeddings, then L2-normalised",
        "versions": _versions(),
    }


def template_key_fields(
    backbone: Backbone, words: list[str], precision: str, cache_dir: str | None = None
) -> dict[str, Any]:
    """Cache-key fields of a vocabulary's per-template text features (another kind of entry
    than the template ensemble, with the same fields)."""
    return {
        **text_key_fields(backbone, words, precision, cache_dir),
        "kind": "text-templates",
        "ensemble": "none: each template's embedding, L2-normalised",
    }


def split_features(
    dataset: ImageSource,
    split: str,
    backbone: Backbone,
    cache: FeatureCache,
    device: str,
    settings: DataSettings,
) -> tuple[str, np.ndarray, np.ndarray]:
    """(cache key, features, labels) of one split, extracted once and then read from the cache.
    With ``settings.attack``, the test split's images are perturbed first (``attacked_split``)."""
    if split == "test" and settings.attack is not None:
        return attacked_split(dataset, backbone, cache, device, settings)
    data = dataset.split(split)
    precision = settings.resolved_precision(device)
    fields = image_key_fields(
        backbone, dataset, split, data.sample_ids, precision, settings.cache_dir
    )

    def build() -> dict[str, np.ndarray]:
        features = encode_images(
            backbone.model,
            data.images,
            backbone.image_transform(dataset.resize_ratio),
            device,
            precision=precision,
            batch_size=settings.batch_size,
            num_workers=settings.num_workers,
            description=f"{dataset.name} {split} images",
        )
        return {"features": features, "labels": np.asarray(data.labels, dtype=np.int64)}

    key, arrays = cache.get_or_build(fields, build, f"{dataset.name}/{split} {backbone.spec}")
    return key, arrays["features"], arrays["labels"]


def attacked_split(
    dataset: ImageSource,
    backbone: Backbone,
    cache: FeatureCache,
    device: str,
    settings: DataSettings,
) -> tuple[str, np.ndarray, np.ndarray]:
    """(cache key, features, labels) of the test split under ``settings.attack``: the clean
    split's key fields plus the attack's (``attack_key_fields``); the entry also holds each
    image's largest pixel change (``linf``). Clean test features under any backbone (a
    surrogate's) come from the cache like any other."""
    from laicbench.data.attacks.apply import attack_key_fields, encode_attacked

    attack = settings.attack
    assert attack is not None
    clean_settings = replace(settings, attack=None)
    data = dataset.split("test")
    precision = settings.resolved_precision(device)
    fields = {
        **image_key_fields(
            backbone, dataset, "test", data.sample_ids, precision, settings.cache_dir
        ),
        "attack": attack_key_fields(attack),
    }

    def clean_test_features(name: str) -> np.ndarray:
        other = load_backbone(BackboneSpec.parse(name), device)
        return split_features(dataset, "test", other, cache, device, clean_settings)[1]

    def build() -> dict[str, np.ndarray]:
        arrays = encode_attacked(
            attack,
            backbone.model,
            data.images,
            backbone.image_transform(dataset.resize_ratio, normalize=False),
            backbone.preprocess_cfg,
            clean_test_features,
            device,
            precision,
            settings.batch_size,
            settings.num_workers,
            f"{dataset.name} test images under {attack.name}",
        )
        return {**arrays, "labels": np.asarray(data.labels, dtype=np.int64)}

    key, arrays = cache.get_or_build(
        fields, build, f"{dataset.name}/test {backbone.spec} attacked by {attack.label}"
    )
    return key, arrays["features"], arrays["labels"]


def _cached_text_features(
    fields: dict[str, Any],
    encode: Callable[[Callable[[int], None]], np.ndarray],
    total: int,
    label: str,
    description: str,
    cache: FeatureCache,
    device: str,
    precision: str,
) -> tuple[str, np.ndarray]:
    """(cache key, float32 features) under `fields`: read from the cache, or `encode(advance)`
    under autocast with a progress bar of `total` prompts, written once and then read."""

    def build() -> dict[str, np.ndarray]:
        with progress_bar() as progress:
            task = progress.add_task(label, total=total, rate="")
            with autocast_context(device, precision):
                features = encode(lambda k: progress.advance(task, k))
        return {"features": features.astype(np.float32)}

    key, arrays = cache.get_or_build(fields, build, description)
    return key, arrays["features"]


def vocabulary_features(
    words: list[str], backbone: Backbone, cache: FeatureCache, device: str, settings: DataSettings
) -> tuple[str, np.ndarray]:
    """(cache key, L2-normalised TAC-ensemble features) of `words`, cached."""
    precision = settings.resolved_precision(device)
    return _cached_text_features(
        text_key_fields(backbone, words, precision, settings.cache_dir),
        lambda advance: backbone.text_encoder.encode_words(words, on_batch=advance),
        len(set(words)) * len(NOUN_TEMPLATES),
        f"noun prompts ({backbone.spec})",
        f"{len(words)} nouns {backbone.spec}",
        cache,
        device,
        precision,
    )


def vocabulary_template_features(
    words: list[str], backbone: Backbone, cache: FeatureCache, device: str, settings: DataSettings
) -> tuple[str, np.ndarray]:
    """(cache key, L2-normalised features (T, M, d) of `words` in each of the T templates),
    cached like the ensemble (methods that weigh templates separately read these)."""
    precision = settings.resolved_precision(device)
    templates = NOUN_TEMPLATES
    return _cached_text_features(
        template_key_fields(backbone, words, precision, settings.cache_dir),
        lambda advance: backbone.text_encoder.encode_templates(words, templates, on_batch=advance),
        len(set(words)) * len(templates),
        f"noun prompts ({backbone.spec})",
        f"{len(words)} nouns x {len(templates)} templates {backbone.spec}",
        cache,
        device,
        precision,
    )


class UnlabelledImages(Sequence):
    """The images of a sequence of (image, label) items, read lazily, without their labels."""

    def __init__(self, items: Sequence[Any]):
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self._items[index][0]


def image_tower(
    dataset: ImageSource, backbone: Backbone, device: str, settings: DataSettings
) -> ImageTower:
    """The clean images of both splits (labels dropped) and fresh copies of the backbone's
    image tower, for a method that fine-tunes it (its features cache stays untouched)."""
    import copy

    def images(split: str) -> Sequence[Any]:
        return UnlabelledImages(dataset.split(split).images)

    test = images("test")
    return ImageTower(
        new_tower=lambda: copy.deepcopy(backbone.model.visual).float(),
        transform=backbone.image_transform(dataset.resize_ratio),
        train_images=test if dataset.test_only else images("train"),
        test_images=test,
        precision=settings.resolved_precision(device),
        batch_size=settings.batch_size,
    )


def image_dataset_features(
    dataset: ImageSource, spec: BackboneSpec, device: str, settings: DataSettings
) -> DatasetFeatures:
    """DatasetFeatures of an image dataset: cached image features of both splits, lazy nouns
    (their template ensemble and, for methods that need them, their per-template features)."""
    backbone = load_backbone(spec, device)
    cache = FeatureCache(settings.cache_dir)
    keys = {}
    arrays = {}
    for split in ("test", "train"):
        if split == "train" and dataset.test_only:  # its train split is its test images
            keys[split], arrays[split] = keys["test"], arrays["test"]
            continue
        keys[split], features, labels = split_features(
            dataset, split, backbone, cache, device, settings
        )
        arrays[split] = (features, labels)
    words = load_vocabulary(settings.vocabulary)
    attack_info = {}
    if settings.attack is not None:
        from laicbench.data.attacks.apply import attack_summary

        clean = split_features(
            dataset, "test", backbone, cache, device, replace(settings, attack=None)
        )
        attack_info = {
            "attack": attack_summary(settings.attack, clean[1], cache.load(keys["test"]))
        }

    def nouns() -> np.ndarray:
        key, features = vocabulary_features(words, backbone, cache, device, settings)
        keys["nouns"] = key
        return features

    def noun_templates() -> np.ndarray:
        key, features = vocabulary_template_features(words, backbone, cache, device, settings)
        keys["noun_templates"] = key
        return features

    return DatasetFeatures(
        image_train=arrays["train"][0],
        image_test=arrays["test"][0],
        labels_train=np.asarray(arrays["train"][1]),
        labels_test=np.asarray(arrays["test"][1]),
        class_names=dataset.class_names(),
        noun_words=words,
        noun_features_loader=nouns,
        noun_template_features_loader=noun_templates,
        text_encoder_loader=lambda: backbone.text_encoder,
        image_tower_loader=lambda: image_tower(dataset, backbone, device, settings),
        info={
            "kind": "images",
            "root": str(dataset.root),
            "n_train": int(len(arrays["train"][1])),
            "n_test": int(len(arrays["test"][1])),
            "cache_keys": keys,
            "cache_dir": str(cache.root),
            "precision": settings.resolved_precision(device),
            "weights": weights_identity(spec, settings.cache_dir),
            **attack_info,
        },
    )
