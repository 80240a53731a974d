"""What a dataset yields (features with labels) and what a method sees (features without labels)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from laicbench.api.backbone_spec import BackboneSpec

if TYPE_CHECKING:  # the text tower needs torch; the plugin API does not
    from laicbench.data.text_encoder import TextEncoder


class Need(str, Enum):
    """Inputs a method can declare beyond the image features every method gets."""

    NOUNS = "nouns"  # noun-bank features and words
    NOUN_TEMPLATES = "noun_templates"  # one embedding of each noun per prompt template
    TEXT_ENCODER = "text_encoder"  # handle on the backbone's frozen text tower
    CLASS_NAMES = "class_names"  # ground-truth class names: only oracle methods may declare it
    # the train split's labels, read only to simulate a user's answers to an interactive
    # method's queries: only oracle methods (an interactive one is one) may declare it
    FEEDBACK = "feedback"
    # image features of the same dataset under other backbones; granted to a run whose method
    # names them (Method.extra_backbones) as well as to one that declares it
    IMAGE_SPACES = "image_spaces"
    # the train and test images (without labels) and a trainable copy of the backbone's image
    # tower: only image datasets give it (demo benchmarks and features files have no images)
    IMAGE_TOWER = "image_tower"


@dataclass(frozen=True)
class ImageTower:
    """A dataset's images and the backbone's image tower, for methods that fine-tune it.

    ``new_tower()`` returns a fresh copy of the open_clip visual tower (the cached, frozen model
    is never touched); ``transform`` maps a PIL image to its normalised input tensor;
    ``train_images``/``test_images`` are the PIL images of both splits in the order of
    ``image_train``/``image_test`` (no labels). ``precision`` and ``batch_size`` are the run's
    extraction settings.
    """

    new_tower: Callable[[], Any]
    transform: Callable[[Any], Any]
    train_images: Sequence[Any]
    test_images: Sequence[Any]
    precision: str = "fp32"
    batch_size: int = 256


@dataclass(frozen=True)
class DatasetFeatures:
    """Everything a dataset provides for one backbone: features, labels, vocabulary, provenance.

    Image features are float32 (n, d), not necessarily normalised. Noun features and the text
    encoder are built on first access (through their loaders), so runs of methods that need
    neither never pay for them. ``info`` describes how the features were made (counts, generator
    parameters, source paths, cache keys) for the run record.
    """

    image_train: np.ndarray
    image_test: np.ndarray
    labels_train: np.ndarray
    labels_test: np.ndarray
    class_names: Sequence[str]
    noun_words: Sequence[str] | None = None
    noun_features_loader: Callable[[], np.ndarray] | None = None
    noun_template_features_loader: Callable[[], np.ndarray] | None = None
    text_encoder_loader: Callable[[], TextEncoder] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    # backbone name -> (image_train, image_test) of the same images under that backbone, in the
    # same order; set by the runner for the backbones a method asks for (Method.extra_backbones)
    image_space_loader: Callable[[str], tuple[np.ndarray, np.ndarray]] | None = None
    # the images and a copy of the image tower (image datasets only)
    image_tower_loader: Callable[[], ImageTower] | None = None

    @functools.cached_property
    def image_tower(self) -> ImageTower | None:
        """The dataset's images and image tower, or None when it has no images."""
        return None if self.image_tower_loader is None else self.image_tower_loader()

    @functools.cached_property
    def noun_features(self) -> np.ndarray | None:
        """L2-normalised noun features (M, d), or None without a vocabulary."""
        return None if self.noun_features_loader is None else self.noun_features_loader()

    @functools.cached_property
    def noun_template_features(self) -> np.ndarray | None:
        """L2-normalised per-template noun features (T, M, d): noun j in prompt template t, in
        the order of ``noun_words``; None when the dataset has none."""
        if self.noun_template_features_loader is None:
            return None
        return self.noun_template_features_loader()

    @functools.cached_property
    def text_encoder(self) -> TextEncoder | None:
        """The backbone's frozen text tower, or None when the features have no backbone."""
        return None if self.text_encoder_loader is None else self.text_encoder_loader()

    @property
    def n_classes(self) -> int:
        """The number of ground-truth classes (the K that methods are asked for)."""
        return len(self.class_names)


class UndeclaredNeedError(AttributeError):
    """A method read an input it did not declare in its ``needs``."""


class FeatureBundle:
    """The inputs a method receives: cached features, never labels.

    ``image_train`` and ``image_test`` are always present; ``noun_features``/``noun_words``,
    ``noun_template_features``, ``text_encoder``, ``class_names``, ``feedback_labels`` and
    ``image_spaces`` only when the method declares the matching Need. ``backbone`` names the
    run's backbone (None outside a run). ``dataset`` names the dataset whose per-dataset settings
    apply (``Method.resolved``): the run's, or in the shift track with ``--train-on
    imagenet:all`` the source's ("imagenet": the method trains as on ImageNet itself, as
    VLM4Cluster's source-side profiles do).
    """

    def __init__(
        self,
        data: DatasetFeatures,
        needs: frozenset[Need],
        dataset: str,
        device: str,
        backbone: str | None = None,
    ):
        self.dataset = dataset
        self.device = device
        self.backbone = backbone
        self.image_train: np.ndarray = data.image_train
        self.image_test: np.ndarray = data.image_test
        self._data = data
        self._needs = needs

    def _granted(self, need: Need, attribute: str):
        if need not in self._needs:
            raise UndeclaredNeedError(
                f"this method did not declare Need.{need.name} in its `needs`, so the feature "
                f"bundle does not give it {need.value}"
            )
        value = getattr(self._data, attribute)
        if value is None:
            raise UndeclaredNeedError(f"dataset {self.dataset!r} provides no {need.value}")
        return value

    @property
    def noun_features(self) -> np.ndarray:
        """L2-normalised noun-bank features (M, d); requires Need.NOUNS."""
        return self._granted(Need.NOUNS, "noun_features")

    @property
    def noun_words(self) -> Sequence[str]:
        """The M noun strings; requires Need.NOUNS."""
        return self._granted(Need.NOUNS, "noun_words")

    @property
    def noun_template_features(self) -> np.ndarray:
        """L2-normalised noun features per prompt template (T, M, d), in the order of
        ``noun_words`` (read those with Need.NOUNS); requires Need.NOUN_TEMPLATES."""
        return self._granted(Need.NOUN_TEMPLATES, "noun_template_features")

    @property
    def text_encoder(self) -> TextEncoder:
        """The backbone's frozen text tower; requires Need.TEXT_ENCODER."""
        return self._granted(Need.TEXT_ENCODER, "text_encoder")

    @property
    def class_names(self) -> Sequence[str]:
        """Ground-truth class names; requires Need.CLASS_NAMES (oracle methods only)."""
        return self._granted(Need.CLASS_NAMES, "class_names")

    @property
    def feedback_labels(self) -> np.ndarray:
        """The train split's labels (n_train,), from which an interactive method simulates the
        answers of a user to its queries; requires Need.FEEDBACK (oracle methods only: an
        interactive method is one, shown apart and never ranked). The method records how many
        it read (its feedback budget)."""
        return np.asarray(self._granted(Need.FEEDBACK, "labels_train"))

    @property
    def image_tower(self) -> ImageTower:
        """The images of both splits (no labels) and a trainable copy of the image tower;
        requires Need.IMAGE_TOWER (image datasets only)."""
        return self._granted(Need.IMAGE_TOWER, "image_tower")

    def image_spaces(self, backbones: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(image_train, image_test) of the same images under each of `backbones` (rows in the
        order of ``image_train``/``image_test``); requires Need.IMAGE_SPACES, which a run has
        when its method declares it or names other backbones (``Method.extra_backbones``): it
        gives those and its own."""
        if not backbones:
            return []
        loader = self._granted(Need.IMAGE_SPACES, "image_space_loader")
        return [loader(backbone) for backbone in backbones]

    def image_space(self, backbone: str) -> tuple[np.ndarray, np.ndarray]:
        """(image_train, image_test) of the same images under `backbone`; requires
        Need.IMAGE_SPACES."""
        return self.image_spaces([backbone])[0]


def other_backbones(names: Sequence[str], own: str | None) -> list[str]:
    """`names` as canonical backbone names (``ARCH:PRETRAINED``, ``tiny-random``), in order,
    without repeats and without `own` (the run's backbone): the extra representation spaces a
    method asks for. UserError (one line) on a name that is not a backbone."""
    out: list[str] = []
    for name in names:
        canonical = str(BackboneSpec.parse(name)) if name != own else name
        if canonical != own and canonical not in out:
            out.append(canonical)
    return out
