"""ImageNet-10, ImageNet-Dogs and ImageNet-1K from ImageNet's train/val class folders.

``<root>/imagenet/train/<wnid>/*.JPEG`` and ``<root>/imagenet/val/<wnid>/*.JPEG`` (the validation
images sorted into class folders). The files are listed by torchvision's ImageFolder
``make_dataset`` over the dataset's wnid folders only, in sorted order of (wnid, file path), and
read lazily.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from laicbench.api.registry import register_dataset
from laicbench.data.image_dataset import ImageDataset, ImageSplit

from .imagenet_classes import IMAGENET10_WNIDS, IMAGENET_DOGS_WNIDS, WNID_NAMES
from .imagenet_shift_classes import IMAGENET_WNIDS

EXTENSIONS = (".jpeg", ".jpg", ".png")  # compared case-insensitively by torchvision
SPLIT_FOLDERS = {"train": "train", "test": "val"}
N_IMAGENET_CLASSES = 1000


class ImageFiles:
    """Lazily read images: item i is (the RGB PIL image of samples[i][0], samples[i][1]); a
    map-style dataset that torch's DataLoader reads by index."""

    def __init__(self, samples: list[tuple[str, int]]):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        path, label = self.samples[index]
        with Image.open(path) as image:
            return image.convert("RGB"), label


def class_folder_split(folder: Path, classes: list[str], id_prefix: str = "") -> ImageSplit:
    """The images of ``folder/<class>/`` for each of `classes` (label = position in `classes`),
    listed by torchvision's ImageFolder ``make_dataset`` (sorted by class, then path) and read
    lazily; sample ids are `id_prefix` + "<class>/<file>". OSError when a class folder holds no
    image."""
    from torchvision.datasets.folder import make_dataset

    samples = make_dataset(
        str(folder), {c: i for i, c in enumerate(classes)}, extensions=EXTENSIONS
    )
    prefix = len(str(folder)) + 1
    ids = [f"{id_prefix}{p[prefix:].replace(os.sep, '/')}" for p, _ in samples]
    labels = np.asarray([y for _, y in samples], dtype=np.int64)
    return ImageSplit(images=ImageFiles(samples), labels=labels, sample_ids=ids)


class _ImageNetFolders(ImageDataset):
    """A set of ImageNet classes read from ``<root>/imagenet/{train,val}/<wnid>/``."""

    resize_ratio = 256 / 224

    @property
    def base(self) -> Path:
        """The folder holding train/ and val/."""
        return self.root / "imagenet"

    def wnids(self) -> list[str]:
        """The class folders of this dataset, index = label."""
        raise NotImplementedError

    def split_folder(self, split: str) -> tuple[Path, str]:
        """The folder holding `split`'s wnid folders, and the prefix of its sample ids."""
        return self.base / SPLIT_FOLDERS[split], f"{SPLIT_FOLDERS[split]}/"

    def read_split(self, split: str) -> ImageSplit:
        """The images of the dataset's wnid folders of train/ (train) or val/ (test)."""
        folder, id_prefix = self.split_folder(split)
        if not folder.is_dir():
            raise self.missing(f"no folder {folder}")
        wnids = self.wnids()
        absent = [w for w in wnids if not (folder / w).is_dir()]
        if absent:
            raise self.missing(
                f"{len(absent)} class folder(s) absent from {folder}: {', '.join(absent[:5])}"
            )
        try:  # sorted by wnid, then by path; label = position of the wnid in `wnids`
            return class_folder_split(folder, wnids, id_prefix)
        except OSError as exc:  # a class folder without images
            raise self.missing(f"{folder}: {exc}") from exc


class _ImageNetSubset(_ImageNetFolders):
    """A fixed list of wnids (label = position in the list) with WordNet names."""

    subset_wnids: ClassVar[tuple[str, ...]]

    def wnids(self) -> list[str]:
        """The subset's wnids in their listed order."""
        return list(self.subset_wnids)

    def class_names(self) -> list[str]:
        """The first WordNet lemma of each wnid."""
        return [WNID_NAMES[w] for w in self.subset_wnids]


@register_dataset("imagenet10")
class ImageNet10(_ImageNetSubset):
    """ImageNet-10: 10 ImageNet classes, 13,000 train / 500 val images."""

    n_classes = 10
    # "all": the papers' eight benchmarks, in table order; the others: VLM4Cluster's
    # groups and its twenty datasets ("vlm4cluster"), in its README's order
    suites = {"all": 4, "classical": 4, "vlm4cluster": 4}
    expected_counts = {"train": 13_000, "test": 500}
    subset_wnids = IMAGENET10_WNIDS
    layout = (
        "<root>/imagenet/{train,val}/<wnid>/*.JPEG for the 10 ImageNet-10 wnids "
        f"({' '.join(IMAGENET10_WNIDS)}); val images sorted into class folders"
    )


@register_dataset("imagenet-dogs")
class ImageNetDogs(_ImageNetSubset):
    """ImageNet-Dogs: 15 ImageNet dog breeds, 19,500 train / 750 val images."""

    n_classes = 15
    # "all": the papers' eight benchmarks, in table order; the others: VLM4Cluster's
    # groups and its twenty datasets ("vlm4cluster"), in its README's order
    suites = {"all": 5, "classical": 5, "vlm4cluster": 5}
    expected_counts = {"train": 19_500, "test": 750}
    subset_wnids = IMAGENET_DOGS_WNIDS
    layout = (
        "<root>/imagenet/{train,val}/<wnid>/*.JPEG for the 15 ImageNet-Dogs wnids "
        f"({' '.join(IMAGENET_DOGS_WNIDS)}); val images sorted into class folders"
    )


@register_dataset("imagenet")
class ImageNet(_ImageNetFolders):
    """ImageNet-1K: 1,000 classes, 1,281,167 train / 50,000 val images."""

    n_classes = N_IMAGENET_CLASSES
    # "all": the papers' eight benchmarks, in table order; the others: VLM4Cluster's
    # groups and its twenty datasets ("vlm4cluster"), in its README's order
    suites = {"all": 8, "large": 2, "vlm4cluster": 15}
    expected_counts = {"train": 1_281_167, "test": 50_000}
    layout = (
        "<root>/imagenet/{train,val}/<wnid>/*.JPEG, 1000 wnid folders in each; val images sorted "
        "into class folders"
    )

    def wnids(self) -> list[str]:
        """The 1,000 ImageNet-1K wnids in sorted order (label = position, the order of
        open_clip's class names), once train/ and val/ are checked to hold exactly their class
        folders: a folder of another name is an error, not a silently different class.

        Hidden folders (".name") are not classes.
        """
        standard = set(IMAGENET_WNIDS)
        for split_folder in ("train", "val"):
            folder = self.base / split_folder
            if not folder.is_dir():
                raise self.missing(f"no folder {folder}")
            found = {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}
            unknown, absent = sorted(found - standard), sorted(standard - found)
            if unknown or absent:
                problems = []
                if unknown:
                    problems.append(
                        f"{len(unknown)} folder(s) that are not ImageNet-1K wnids "
                        f"({', '.join(unknown[:3])}{', ...' if len(unknown) > 3 else ''})"
                    )
                if absent:
                    problems.append(
                        f"{len(absent)} of the {N_IMAGENET_CLASSES} wnids absent "
                        f"({', '.join(absent[:3])}{', ...' if len(absent) > 3 else ''})"
                    )
                raise self.missing(f"{folder}: {' and '.join(problems)}")
        return list(IMAGENET_WNIDS)

    def class_names(self) -> list[str]:
        """open_clip's ImageNet class names (in sorted-wnid order)."""
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

        self.wnids()  # the folders must be the 1000 classes the names describe
        return list(IMAGENET_CLASSNAMES)
