"""The offline demo benchmark: a seeded simulation of a vision-language feature space.

Generative model (all randomness from ``DemoConfig.seed``):

1. Text side. The text tower of the ``tiny-random`` backbone (a real open_clip text transformer with
   seeded random weights; width 64, projection to 128 dimensions) embeds a vocabulary of M
   pronounceable pseudo-words ("nouns", each a short token sequence) with TAC's 7-template
   ensemble. Its outputs span a 64-dimensional "text subspace" of the 128-dimensional joint space.
2. Classes. K of the nouns, drawn so that no two are too similar, name the classes. With
   m_c = normalise(n_c - mean noun feature), the class name's direction once the common component
   that all random-tower outputs share is removed, classes come in sibling pairs (c, c') like cat
   and dog, and the concept of class c is u_c = normalise(m_c + sibling * m_c'). A noun
   "relates" to class c when it is among the `related_per_class` nouns closest to u_c; about
   K x related_per_class of the M nouns relate to some class, the rest do not.
3. Image side. Image i of class y gets
       x_i = normalise( gap * g + semantic_i + style * s_{m(i)} + noise * e_i / sqrt(D) )
   with semantic_i = normalise(u_y + facet * f_i), f_i the centred direction of one noun drawn from
   the class's related nouns (intra-class variety); g a fixed unit "modality gap" vector and
   s_1..s_S unit "style" vectors (background, viewpoint: shared by all classes). g lies in the
   orthogonal complement of the text subspace; each style has a share `style_leak` inside the text
   subspace and the rest in the complement, so nouns describe styles only in part. e_i is
   standard Gaussian in all D = 128 dimensions. Styles make image-only k-means split partly by
   style rather than by class, the weakness that language guidance addresses: nouns, relations to
   nouns and text-side centers see mostly the text subspace.

Labels are balanced; the train and test splits are drawn independently from the same model.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from laicbench.api.backbone_spec import TINY_RANDOM, BackboneSpec
from laicbench.api.dataset import Dataset
from laicbench.api.features import DatasetFeatures, Need
from laicbench.api.registry import register_dataset
from laicbench.api.settings import DataSettings

if TYPE_CHECKING:  # the text tower needs torch; registering the dataset does not
    from laicbench.data.text_encoder import TextEncoder

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "sh", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")


class Simulation(Protocol):
    """Parameters of a simulated benchmark: a frozen dataclass that draws its features."""

    generator: ClassVar[str]  # the generator's name: part of the feature-cache key
    version: ClassVar[str]  # bump when what it draws changes (cached draws are redone)
    n_classes: int
    n_train_per_class: int
    n_test_per_class: int

    def draw(self) -> DatasetFeatures: ...


@dataclass(frozen=True)
class DemoConfig:
    """Parameters of one simulated benchmark (see the module docstring for the model)."""

    generator: ClassVar[str] = "demo"
    version: ClassVar[str] = "1"

    n_classes: int
    n_train_per_class: int
    n_test_per_class: int
    n_nouns: int
    related_per_class: int = 8
    facet: float = 0.6
    sibling: float = 0.7
    style: float = 0.8
    n_styles: int = 6
    style_leak: float = 0.3
    gap: float = 1.0
    noise: float = 1.2
    seed: int = 0

    def draw(self) -> DatasetFeatures:
        """Draw this benchmark (use ``simulate``, which caches the draw per process)."""
        return _draw_demo(self)


def pseudo_words(n: int, rng: np.random.Generator) -> list[str]:
    """`n` distinct pronounceable words of 2 to 3 syllables, drawn with `rng`."""
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < n:
        syllables = rng.integers(2, 4)
        word = "".join(
            _ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
            for _ in range(syllables)
        )
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def complement_basis(text_features: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Orthonormal rows spanning the orthogonal complement of the text features' span."""
    _, s, vt = np.linalg.svd(text_features, full_matrices=True)
    rank = int((s > s[0] * 1e-5).sum())
    basis = vt[rank:]
    return basis[rng.permutation(len(basis))] if len(basis) else np.zeros((0, dim))


def unit_in(basis: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` random unit vectors inside the span of the orthonormal rows of `basis`."""
    v = rng.standard_normal((n, basis.shape[0])) @ basis
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def normalise_rows(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _pick_class_nouns(centred: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `k` nouns drawn at random but never more similar than 0.5 (centred cosine)."""
    chosen: list[int] = []
    for j in rng.permutation(len(centred)):
        if all(centred[j] @ centred[c] < 0.5 for c in chosen):
            chosen.append(int(j))
            if len(chosen) == k:
                return np.array(chosen)
    raise ValueError(f"cannot find {k} dissimilar class nouns among {len(centred)}")


def tiny_text_encoder_cpu() -> TextEncoder:
    """The text tower of the tiny-random backbone on the CPU, as the simulations use it."""
    import open_clip

    from laicbench.data.backbone import create_model
    from laicbench.data.text_encoder import TextEncoder

    model = create_model(BackboneSpec.parse(TINY_RANDOM), "cpu")
    return TextEncoder(model, open_clip.get_tokenizer("laicbench-tiny"), "cpu")


@functools.lru_cache(maxsize=4)
def simulate(config: Simulation) -> DatasetFeatures:
    """Draw the benchmark described by `config` (cached per process)."""
    return config.draw()


def _draw_demo(config: DemoConfig) -> DatasetFeatures:
    """The demo's generative model (module docstring) for `config`."""
    rng = np.random.default_rng(config.seed)
    encoder = tiny_text_encoder_cpu()
    words = pseudo_words(config.n_nouns, rng)
    nouns = encoder.encode_words(words).astype(np.float64)
    dim = nouns.shape[1]

    centred = normalise_rows(nouns - nouns.mean(axis=0))
    class_idx = _pick_class_nouns(centred, config.n_classes, rng)
    # classes come in sibling pairs (2c, 2c+1) that share part of their direction, like cat/dog
    partner = np.arange(config.n_classes) ^ 1
    partner[partner >= config.n_classes] = config.n_classes - 1
    concepts = normalise_rows(centred[class_idx] + config.sibling * centred[class_idx[partner]])
    related = np.argsort(-(concepts @ centred.T), axis=1)[:, : config.related_per_class]

    complement = complement_basis(nouns, dim, rng)
    gap = unit_in(complement, 1, rng)[0]
    text_basis = np.linalg.svd(nouns - nouns.mean(axis=0), full_matrices=False)[2]
    text_basis = text_basis[: dim - len(complement)]
    styles = normalise_rows(
        np.sqrt(1 - config.style_leak**2) * unit_in(complement, config.n_styles, rng)
        + config.style_leak * unit_in(text_basis, config.n_styles, rng)
    )

    model = ImageModel(
        concepts,
        related,
        centred,
        styles,
        gap,
        config.facet,
        config.style,
        config.gap,
        config.noise,
    )
    return model.features(config, rng, [words[i] for i in class_idx], words, nouns, encoder)


@dataclass(frozen=True)
class ImageModel:
    """The image side of both simulations: image i of class y is
    ``normalise(gap * g + normalise(u_y + facet * f_i) + shift * s_m(i) + noise * e_i / sqrt(D))``
    with f_i one of the class's related nouns (rows of ``related`` index ``centred``), s_m one of
    the ``shifts`` (styles, nuisances) drawn per image and e_i standard Gaussian."""

    concepts: np.ndarray
    related: np.ndarray
    centred: np.ndarray
    shifts: np.ndarray
    gap_vector: np.ndarray
    facet: float
    shift: float
    gap: float
    noise: float

    def draw(self, per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(unit-norm float32 images, int64 labels) of a balanced, shuffled split."""
        n_classes, n_related = self.related.shape
        labels = np.repeat(np.arange(n_classes), per_class)
        rng.shuffle(labels)
        facets = self.related[labels, rng.integers(n_related, size=len(labels))]
        semantic = normalise_rows(self.concepts[labels] + self.facet * self.centred[facets])
        shift = self.shifts[rng.integers(len(self.shifts), size=len(labels))]
        dim = self.centred.shape[1]
        noise = rng.standard_normal((len(labels), dim)) / np.sqrt(dim)
        x = self.gap * self.gap_vector + semantic + self.shift * shift + self.noise * noise
        return normalise_rows(x).astype(np.float32), labels.astype(np.int64)

    def features(
        self,
        config: Simulation,
        rng: np.random.Generator,
        class_names: list[str],
        words: list[str],
        nouns: np.ndarray,
        encoder: TextEncoder,
    ) -> DatasetFeatures:
        """Draw the train then the test split of `config` and wrap them with the noun bank."""
        train = self.draw(config.n_train_per_class, rng)
        test = self.draw(config.n_test_per_class, rng)
        return simulated_features(
            config, train, test, class_names, words, nouns, encoder, self.related
        )


def simulated_features(
    config: Simulation,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    class_names: list[str],
    words: list[str],
    nouns: np.ndarray,
    encoder: TextEncoder,
    related: np.ndarray,
) -> DatasetFeatures:
    """The DatasetFeatures of a drawn simulation: (features, labels) of each split, the class
    names, the noun bank with its features, the text encoder that embedded it and the indices of
    the nouns related to some class (counted in ``info``)."""
    return DatasetFeatures(
        image_train=train[0],
        image_test=test[0],
        labels_train=train[1],
        labels_test=test[1],
        class_names=class_names,
        noun_words=words,
        noun_features_loader=lambda: nouns.astype(np.float32),
        text_encoder_loader=lambda: encoder,
        info={
            "kind": "simulated",
            "generator": f"laicbench.datasets.{config.generator.replace('-', '_')}",
            "generator_version": config.version,
            "config": asdict(config),
            "n_train": int(len(train[1])),
            "n_test": int(len(test[1])),
            "n_nouns": len(words),
            "related_nouns": int(len(np.unique(related))),
        },
    )


@functools.lru_cache(maxsize=4)
def cached_simulation(config: Simulation, cache_dir: str | None, device: str) -> DatasetFeatures:
    """The benchmark of `config`, drawn once and kept in the feature cache (so that parallel
    workers read it in milliseconds instead of drawing it again)."""
    from importlib.metadata import version

    from laicbench.data.cache import FeatureCache

    fields = {
        "kind": config.generator,
        "config": asdict(config),
        "generator": config.version,
        "versions": {p: version(p) for p in ("torch", "open_clip_torch", "numpy")},
    }

    def build() -> dict[str, np.ndarray]:
        data = simulate(config)
        return {
            "image_train": data.image_train,
            "image_test": data.image_test,
            "labels_train": data.labels_train,
            "labels_test": data.labels_test,
            "noun_features": np.asarray(data.noun_features),
            "noun_words": np.array(data.noun_words),
            "class_names": np.array(data.class_names),
            "related_nouns": np.array([data.info["related_nouns"]]),
        }

    key, arrays = FeatureCache(cache_dir).get_or_build(fields, build, config.generator)
    nouns = arrays["noun_features"]
    words = [str(w) for w in arrays["noun_words"]]
    return DatasetFeatures(
        image_train=arrays["image_train"],
        image_test=arrays["image_test"],
        labels_train=np.asarray(arrays["labels_train"]),
        labels_test=np.asarray(arrays["labels_test"]),
        class_names=[str(c) for c in arrays["class_names"]],
        noun_words=words,
        noun_features_loader=lambda: nouns,
        noun_template_features_loader=lambda: _tiny_template_features(words, cache_dir),
        text_encoder_loader=lambda: _tiny_text_encoder(device),
        info={
            "kind": "simulated",
            "generator": f"laicbench.datasets.{config.generator.replace('-', '_')}",
            "generator_version": config.version,
            "config": asdict(config),
            "n_train": len(arrays["labels_train"]),
            "n_test": len(arrays["labels_test"]),
            "n_nouns": len(arrays["noun_words"]),
            "related_nouns": int(arrays["related_nouns"][0]),
            "cache_keys": {"demo": key},
        },
    )


def _tiny_template_features(words: list[str], cache_dir: str | None) -> np.ndarray:
    """The simulation's nouns in each of TAC's templates, as the tiny-random text tower embeds
    them (the noun features are their ensemble): what an image dataset gets from its backbone,
    computed on the CPU and kept in the feature cache."""
    from laicbench.data.backbone import load_backbone
    from laicbench.data.cache import FeatureCache
    from laicbench.data.pipeline import vocabulary_template_features

    backbone = load_backbone(BackboneSpec.parse(TINY_RANDOM), "cpu")
    cache, settings = FeatureCache(cache_dir), DataSettings(cache_dir=cache_dir)
    return vocabulary_template_features(words, backbone, cache, "cpu", settings)[1]


def _tiny_text_encoder(device: str) -> TextEncoder:
    from laicbench.data.backbone import load_backbone

    return load_backbone(BackboneSpec.parse(TINY_RANDOM), device).text_encoder


class SimulatedDataset(Dataset):
    """Base of the simulated benchmarks: features drawn from ``config`` in the tiny-random
    backbone's space."""

    config: Simulation

    def fingerprint(
        self, backbone: str, device: str, settings: DataSettings, needs: frozenset[Need]
    ) -> dict[str, Any]:
        """The generator, its version and every parameter of the draw."""
        del backbone, device, settings, needs
        config = self.config
        return {"generator": config.generator, "version": config.version, **asdict(config)}

    native_backbone = TINY_RANDOM

    def load(self, backbone: str, device: str, settings: DataSettings) -> DatasetFeatures:
        """The simulated benchmark in the feature space of the tiny-random backbone (drawn on the
        CPU, so that it is the same on every device; cached); the text encoder is on `device`."""
        del backbone  # always tiny-random (Dataset.backbone_for)
        return cached_simulation(self.config, settings.cache_dir, device)


@register_dataset("demo-10", aliases=("demo",))
class Demo10(SimulatedDataset):
    """Simulated vision-language features: 10 classes, 2,000 train / 1,000 test, 1,000 nouns."""

    n_classes = 10
    config = DemoConfig(n_classes=10, n_train_per_class=200, n_test_per_class=100, n_nouns=1000)


@register_dataset("demo-50")
class Demo50(SimulatedDataset):
    """Simulated vision-language features: 50 classes, 5,000 train / 2,500 test, 2,000 nouns."""

    n_classes = 50
    config = DemoConfig(n_classes=50, n_train_per_class=100, n_test_per_class=50, n_nouns=2000)
