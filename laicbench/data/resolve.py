"""The dataset plugin of a ``--datasets`` entry: a registered name or alias, or a features file."""

from __future__ import annotations

import functools
from pathlib import Path

from laicbench.api import registry
from laicbench.api.dataset import Dataset
from laicbench.api.settings import DataSettings
from laicbench.data.features_file import FeaturesFile
from laicbench.data.image_dataset import ImageDataset


def resolve_dataset(name: str, settings: DataSettings | None = None) -> Dataset:
    """The dataset plugin for a ``--datasets`` entry: a registered name or alias, or a path to a
    ``.npz`` features file. One instance per (name, settings) and process, so that what an
    instance has read (split listings, decoded batches) is read once. A features file is read
    again when it changed on disk (size or modification time); its path is resolved (symlinks,
    '..') first, so one file spelled several ways is one dataset with one name."""
    if name.endswith(".npz"):
        path = Path(name).expanduser().resolve()
        stat = path.stat() if path.is_file() else None
        return _features_file(path, stat and (stat.st_size, stat.st_mtime_ns))
    return _dataset_instance(name, settings or DataSettings())


@functools.lru_cache(maxsize=32)
def _features_file(path: Path, version: tuple[int, int] | None) -> Dataset:
    del version  # part of the cache key only
    return FeaturesFile(path)


@functools.lru_cache(maxsize=32)
def _dataset_instance(name: str, settings: DataSettings) -> Dataset:
    cls = registry.datasets.get(name)
    if issubclass(cls, ImageDataset):
        return cls(root=settings.data_root, download=settings.download)
    return cls()
