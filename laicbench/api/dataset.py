"""The dataset plugin API and the resolution of ``--datasets`` entries to plugins."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

from laicbench.api import registry
from laicbench.api.errors import UserError
from laicbench.api.features import DatasetFeatures, Need
from laicbench.api.settings import DataSettings
from laicbench.data.backbone import BackboneSpec

# The eight standard LAIC benchmarks, in the order of the papers' tables; `--datasets all`.
BENCHMARKS: tuple[str, ...] = (
    "cifar10",
    "cifar20",
    "stl10",
    "imagenet10",
    "imagenet-dogs",
    "dtd",
    "ucf101",
    "imagenet",
)


class Dataset:
    """Base class of dataset plugins.

    A dataset turns a backbone into DatasetFeatures (train/test image features and labels, class
    names and, when it has one, a noun vocabulary with its features). A dataset whose features are
    defined in one backbone's space (the simulated demo, a features file) names it in
    ``native_backbone``; running it with another backbone is an error.
    """

    name: ClassVar[str]  # set by the registry
    n_classes: ClassVar[int]
    native_backbone: ClassVar[str | None] = None

    def load(self, backbone: str, device: str, settings: DataSettings) -> DatasetFeatures:
        """Return the features of both splits under `backbone`, computed on `device`."""
        raise NotImplementedError

    def check_available(self) -> None:
        """Raise a UserError naming what is missing when the dataset cannot be read."""

    def fingerprint(
        self, backbone: str, device: str, settings: DataSettings, needs: frozenset[Need]
    ) -> dict[str, Any]:
        """What a run's features depend on beyond the dataset's name and the backbone string,
        for a method with `needs` running on `device` (features files: their content; image
        datasets: sample lists, precision, weights, vocabulary). Stored in every record; a run
        whose stored fingerprint differs from today's is outdated, not done."""
        del backbone, device, settings, needs
        return {}

    def lacks(self, need: Need) -> str | None:
        """Why this dataset cannot provide `need` (checked before any run), or None when it can."""
        del need
        return None

    def backbone_for(self, requested: str | None, default: str) -> str:
        """The backbone a run of this dataset uses, given the user's `requested` one (or None)."""
        if self.native_backbone is None:
            return str(BackboneSpec.parse(requested or default))
        if requested not in (None, self.native_backbone):
            raise UserError(
                f"dataset {self.name!r} lives in the feature space of backbone "
                f"{self.native_backbone!r}; drop --backbone {requested} or set it to "
                f"{self.native_backbone}"
            )
        return self.native_backbone


def resolve_dataset(name: str, settings: DataSettings | None = None) -> Dataset:
    """The dataset plugin for a ``--datasets`` entry: a registered name or alias, or a path to a
    ``.npz`` features file. One instance per (name, settings) and process, so that what an
    instance has read (split listings, decoded batches) is read once. A features file is read
    again when it changed on disk (size or modification time)."""
    if name.endswith(".npz"):
        path = Path(name).expanduser().absolute()
        stat = path.stat() if path.is_file() else None
        return _features_file(path, stat and (stat.st_size, stat.st_mtime_ns))
    return _dataset_instance(name, settings or DataSettings())


@functools.lru_cache(maxsize=32)
def _features_file(path: Path, version: tuple[int, int] | None) -> Dataset:
    del version  # part of the cache key only
    from laicbench.data.features_file import FeaturesFile

    return FeaturesFile(path)


@functools.lru_cache(maxsize=32)
def _dataset_instance(name: str, settings: DataSettings) -> Dataset:
    cls = registry.datasets.get(name)
    from laicbench.data.image_dataset import ImageDataset

    if issubclass(cls, ImageDataset):
        return cls(root=settings.data_root, download=settings.download)
    return cls()
