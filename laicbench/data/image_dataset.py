"""Image datasets on disk: the base class of the eight benchmark plugins.

A plugin says where its files are and how to read one split as (PIL image, label) pairs with stable
sample ids; the base class checks the counts, and ``load`` turns the splits into features through
the backbone and the feature cache.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from laicbench.api.backbone_spec import BackboneSpec
from laicbench.api.dataset import Dataset
from laicbench.api.errors import UserError
from laicbench.api.features import DatasetFeatures, Need
from laicbench.api.settings import DataSettings

SPLITS = ("train", "test")


def default_data_root() -> Path:
    """``$LAICBENCH_DATA`` if set, else ``~/.cache/laicbench/data``."""
    env = os.environ.get("LAICBENCH_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "laicbench" / "data"


class DatasetMissingError(UserError):
    """A dataset's files are absent or incomplete (the message gives the expected layout)."""


@dataclass(frozen=True)
class ImageSplit:
    """One split: ``images[i]`` is (PIL RGB image, label); ``sample_ids`` identify the samples."""

    images: Sequence[Any]
    labels: np.ndarray
    sample_ids: list[str]


class ImageDataset(Dataset):
    """Base class of datasets read from image files below a data root.

    Subclasses set ``n_classes``, ``expected_counts`` ({"train": N, "test": M}: the fitted and the
    scored split), ``resize_ratio`` (Resize to ratio x the backbone's input size, then CenterCrop:
    1.0 for CIFAR/STL/DTD/UCF101, 256/224 for ImageNet sets), ``layout`` (the expected files, for
    error messages) and implement ``class_names`` and ``read_split``.
    """

    expected_counts: ClassVar[dict[str, int]]
    resize_ratio: ClassVar[float] = 1.0
    layout: ClassVar[str] = ""
    downloadable: ClassVar[bool] = False  # torchvision can fetch it (--download)

    def __init__(
        self,
        root: str | Path | None = None,
        download: bool = False,
        expected_counts: dict[str, int] | None = None,
    ):
        self.root = Path(root).expanduser() if root is not None else default_data_root()
        self.download = download
        self.counts = dict(expected_counts or self.expected_counts)

    def class_names(self) -> list[str]:
        """The K class names, index = label."""
        raise NotImplementedError

    def read_split(self, split: str) -> ImageSplit:
        """Read `split` ("train" or "test") from disk; raise DatasetMissingError if absent."""
        raise NotImplementedError

    def missing(self, what: str) -> DatasetMissingError:
        """The error for absent or unreadable files: names the dataset, root and layout."""
        return DatasetMissingError(
            f"dataset {self.name!r} not found under {self.root}: {what}. Expected layout: "
            f"{self.layout}"
            + (" (or pass --download)" if self.downloadable and not self.download else "")
        )

    def split(self, split: str) -> ImageSplit:
        """Read `split` and check its size and labels; DatasetMissingError if incomplete."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        data = self.read_split(split)
        found, expected = len(data.sample_ids), self.counts[split]
        if found != expected:
            raise DatasetMissingError(
                f"dataset {self.name!r} under {self.root} is incomplete: {split} split has "
                f"{found} images, expected {expected}. Expected layout: {self.layout}"
            )
        labels = np.asarray(data.labels)
        if len(labels) != found or labels.min() < 0 or labels.max() >= self.n_classes:
            raise DatasetMissingError(
                f"dataset {self.name!r}: {split} labels must be {found} values in [0, "
                f"{self.n_classes})"
            )
        return data

    def check_available(self) -> None:
        """Both splits are on disk with the expected counts (DatasetMissingError otherwise)."""
        for split in SPLITS:
            self.split(split)

    def validate(self) -> dict[str, Any]:
        """Check both splits and the class list; return counts per split and per class."""
        names = self.class_names()
        if len(names) != self.n_classes:
            raise DatasetMissingError(
                f"dataset {self.name!r}: {len(names)} class names, expected {self.n_classes}"
            )
        report: dict[str, Any] = {"dataset": self.name, "root": str(self.root)}
        for split in SPLITS:
            data = self.split(split)
            per_class = np.bincount(np.asarray(data.labels), minlength=self.n_classes)
            report[split] = {"count": len(data.sample_ids), "per_class": per_class.tolist()}
        return report

    def lacks(self, need: Need) -> str | None:
        """An image dataset gives every input a method can declare."""
        del need
        return None

    def settings_read(self, needs: frozenset[Need]) -> frozenset[str]:
        """The extraction precision and the vocabulary (whose noun features only methods that
        need nouns read, and only theirs fingerprint)."""
        del needs
        return frozenset({"precision", "vocabulary"})

    def fingerprint(
        self, backbone: str, device: str, settings: DataSettings, needs: frozenset[Need]
    ) -> dict[str, Any]:
        """Sample lists of both splits, extraction precision, weights and, for methods that
        need nouns, the vocabulary, and the attack on the test images when there is one: what
        the cached features were computed from."""
        from laicbench.data.backbone import weights_identity
        from laicbench.data.vocab import load_vocabulary, vocabulary_hash

        out: dict[str, Any] = {
            "samples_sha256": {s: vocabulary_hash(self.split(s).sample_ids) for s in SPLITS},
            "precision": settings.resolved_precision(device),
            "weights": weights_identity(BackboneSpec.parse(backbone), settings.cache_dir),
        }
        if needs & {Need.NOUNS, Need.NOUN_TEMPLATES}:
            out["vocabulary_sha256"] = vocabulary_hash(load_vocabulary(settings.vocabulary))
        if settings.attack is not None:
            from laicbench.data.attacks.apply import attack_key_fields

            out["attack"] = attack_key_fields(settings.attack)
        return out

    def load(self, backbone: str, device: str, settings: DataSettings) -> DatasetFeatures:
        """Image features of both splits under `backbone`, through the feature cache."""
        from laicbench.data.pipeline import image_dataset_features

        return image_dataset_features(self, BackboneSpec.parse(backbone), device, settings)
