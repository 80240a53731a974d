"""What a dataset yields (features with labels) and what a method sees (features without labels)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the text tower needs torch; the plugin API does not
    from laicbench.data.text_encoder import TextEncoder


class Need(str, Enum):
    """Inputs a method can declare beyond the image features every method gets."""

    NOUNS = "nouns"  # noun-bank features and words
    TEXT_ENCODER = "text_encoder"  # handle on the backbone's frozen text tower
    CLASS_NAMES = "class_names"  # ground-truth class names: only oracle methods may declare it


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
    text_encoder_loader: Callable[[], TextEncoder] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def noun_features(self) -> np.ndarray | None:
        """L2-normalised noun features (M, d), or None without a vocabulary."""
        return None if self.noun_features_loader is None else self.noun_features_loader()

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
    ``text_encoder`` and ``class_names`` only when the method declares the matching Need.
    """

    def __init__(self, data: DatasetFeatures, needs: frozenset[Need], dataset: str, device: str):
        self.dataset = dataset
        self.device = device
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
    def text_encoder(self) -> TextEncoder:
        """The backbone's frozen text tower; requires Need.TEXT_ENCODER."""
        return self._granted(Need.TEXT_ENCODER, "text_encoder")

    @property
    def class_names(self) -> Sequence[str]:
        """Ground-truth class names; requires Need.CLASS_NAMES (oracle methods only)."""
        return self._granted(Need.CLASS_NAMES, "class_names")
