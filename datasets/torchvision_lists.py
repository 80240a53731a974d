"""The base class of the plugins whose splits are torchvision datasets listing image files.

FGVC-Aircraft, Flowers102, Food-101, Stanford Cars, Oxford-IIIT Pet and Places365 are read by
their torchvision classes, which parse the official split lists. A laicbench split is one or
several torchvision splits ("parts", concatenated in order); the plugin checks that the parts
agree on the classes and that every listed image exists, and names each sample by its path below
the dataset's folder. Registers no dataset.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from laicbench.data.image_dataset import ImageDataset, ImageSplit

# What torchvision raises on absent or malformed files: RuntimeError (dataset not found, an md5
# check failed), OSError (an absent list file), ValueError/KeyError/IndexError/TypeError (a
# malformed line or .mat file; json.JSONDecodeError is a ValueError).
READ_ERRORS = (RuntimeError, OSError, ValueError, KeyError, IndexError, TypeError)


class TorchvisionListed(ImageDataset):
    """An image dataset whose splits are torchvision datasets over listed image files.

    Subclasses set ``parts`` ({"train": (torchvision split, ...), "test": (...)}) and
    ``folder`` (the dataset's folder below the root: sample ids are paths relative to it), and
    implement ``build`` (the torchvision dataset of one part), ``samples`` (its (file, label)
    pairs) and ``class_names``.
    """

    parts: ClassVar[dict[str, tuple[str, ...]]]
    folder: ClassVar[str]

    @property
    def base(self) -> Path:
        """The dataset's folder below the root (sample ids are relative to it)."""
        return self.root / self.folder

    def build(self, part: str) -> Any:
        """torchvision's dataset of split `part` (raising what torchvision raises)."""
        raise NotImplementedError

    def samples(self, dataset: Any) -> list[tuple[Path, int]]:
        """The (image file, label) pairs of a torchvision dataset built by ``build``."""
        raise NotImplementedError

    def classes_of(self, dataset: Any) -> Sequence[str]:
        """The class list of a part, compared across the parts of a split."""
        return list(dataset.classes)

    def torchvision(self, part: str) -> Any:
        """The torchvision dataset of `part` (built once per instance: torchvision parses the
        lists and checks md5s); DatasetMissingError when it cannot be read."""
        cache = self.__dict__.setdefault("_tv_cache", {})
        if part not in cache:
            try:
                cache[part] = self.build(part)
            except READ_ERRORS as exc:
                raise self.missing(f"{part} split unreadable ({_reason(exc)})") from exc
        return cache[part]

    def read_split(self, split: str) -> ImageSplit:
        """The parts of `split` concatenated in order; listed files must all exist (checked once
        per instance)."""
        done = self.__dict__.setdefault("_split_cache", {})
        if split in done:
            return done[split]
        names = self.parts[split]
        parts = [self.torchvision(name) for name in names]
        reference = list(self.classes_of(self.torchvision(self.parts["test"][0])))
        for name, part in zip(names, parts, strict=True):
            classes = list(self.classes_of(part))
            if classes != reference:
                raise self.missing(
                    f"the {name} split lists {len(classes)} classes, the "
                    f"{self.parts['test'][0]} split {len(reference)}"
                    + (" (different names)" if len(classes) == len(reference) else "")
                )
        try:
            pairs = [pair for part in parts for pair in self.samples(part)]
        except READ_ERRORS as exc:  # e.g. lists of images and labels of different lengths
            raise self.missing(f"{split} split unreadable ({_reason(exc)})") from exc
        files = [Path(f) for f, _ in pairs]
        absent = [f for f in files if not f.is_file()]
        if absent:
            raise self.missing(
                f"{len(absent)} of the {len(files)} listed {split} images are absent, e.g. "
                f"{absent[0]}"
            )
        base = Path(self.base)
        try:
            ids = [f.relative_to(base).as_posix() for f in files]
        except ValueError as exc:  # a listed file outside the dataset folder
            raise self.missing(f"a listed image lies outside {base} ({exc})") from exc
        labels = np.asarray([y for _, y in pairs], dtype=np.int64)
        images: Any = parts[0]
        if len(parts) > 1:
            from torch.utils.data import ConcatDataset

            images = ConcatDataset(parts)
        done[split] = ImageSplit(images=images, labels=labels, sample_ids=ids)
        return done[split]


def paired(files: Sequence[Any], labels: Sequence[Any]) -> list[tuple[Path, int]]:
    """(file, label) pairs of two parallel lists (ValueError when their lengths differ)."""
    return [(Path(f), int(y)) for f, y in zip(files, labels, strict=True)]


def _reason(exc: BaseException) -> str:
    """A one-line reason for a read error (an absent file's name rather than its errno)."""
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"no file {exc.filename}"
    if isinstance(exc, json.JSONDecodeError):
        return f"bad JSON: {exc.msg}"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
