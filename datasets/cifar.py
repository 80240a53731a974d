"""CIFAR-10 and CIFAR-20 (CIFAR-100 with its 20 superclasses), read by torchvision.

CIFAR-100 with its 100 fine classes is ``cifar100`` (datasets/cifar100.py, same machinery).

Both use torchvision's loaders on the python pickle batches, which check the md5 of every batch
file; the images stay the original 32x32 uint8 arrays (never re-encoded).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from laicbench.api.registry import register_dataset
from laicbench.data.image_dataset import ImageDataset, ImageSplit

# CIFAR-100 fine label (index, alphabetical fine_label_names) -> superclass (coarse label), the
# mapping stored in the 'coarse_labels' of CIFAR-100's own pickles.
FINE_TO_COARSE: tuple[int, ...] = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3,
    3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15,
    0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10,
    16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19,
    2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19,
    18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)  # fmt: skip

# CIFAR-100's coarse_label_names, index = superclass.
SUPERCLASS_NAMES: tuple[str, ...] = (
    "aquatic_mammals",
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "insects",
    "large_carnivores",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores",
    "medium_mammals",
    "non-insect_invertebrates",
    "people",
    "reptiles",
    "small_mammals",
    "trees",
    "vehicles_1",
    "vehicles_2",
)


class _TorchvisionCifar(ImageDataset):
    """A CIFAR flavour read by a torchvision CIFAR class (``tv_class``: "CIFAR10"/"CIFAR100")."""

    tv_class: str

    def _torchvision(self, split: str) -> Any:
        """torchvision's dataset of `split` (built once per instance: it md5-checks every file)."""
        cache = self.__dict__.setdefault("_tv_cache", {})
        if split not in cache:
            import torchvision.datasets

            cls = getattr(torchvision.datasets, self.tv_class)
            try:
                cache[split] = cls(root=self.root, train=split == "train", download=self.download)
            except RuntimeError as exc:  # torchvision: files absent or failing the md5 check
                raise self.missing(
                    f"{self.tv_class} {split} files absent or corrupted (torchvision's md5 check)"
                ) from exc
            except (OSError, ValueError) as exc:  # a failed download, an unreadable file
                raise self.missing(f"{self.tv_class} {split} files unreadable ({exc})") from exc
        return cache[split]

    def _fine_classes(self) -> list[str]:
        return list(self._torchvision("test").classes)

    def _map_labels(self, targets: np.ndarray) -> np.ndarray:
        return targets

    def read_split(self, split: str) -> ImageSplit:
        """torchvision's split; sample ids are "<batch file>:<row in that batch>".

        The real batches are equally sized; a set of unequal batches gets "<split>:<row>" ids.
        """
        ds = self._torchvision(split)
        targets = np.asarray(ds.targets, dtype=np.int64)
        labels = self._map_labels(targets)
        batches = type(ds).train_list if split == "train" else type(ds).test_list
        if len(ds) % len(batches) == 0:
            per_batch = len(ds) // len(batches)
            ids = [f"{batches[i // per_batch][0]}:{i % per_batch}" for i in range(len(ds))]
        else:  # batches of unequal sizes (not CIFAR's own): the row in the split
            ids = [f"{split}:{i}" for i in range(len(ds))]
        images = ds if labels is targets else _Relabelled(ds, labels)
        return ImageSplit(images=images, labels=labels, sample_ids=ids)


class _Relabelled:
    """`base[i]` with its label replaced by `labels[i]` (lazy; the images are untouched)."""

    def __init__(self, base: Any, labels: np.ndarray):
        self.base = base
        self.labels = labels

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, _ = self.base[index]
        return image, int(self.labels[index])


@register_dataset("cifar10")
class Cifar10(_TorchvisionCifar):
    """CIFAR-10: 10 classes, 50,000 train / 10,000 test 32x32 images (torchvision CIFAR10)."""

    n_classes = 10
    # "all": the papers' eight benchmarks, in table order; the others: VLM4Cluster's
    # groups and its twenty datasets ("vlm4cluster"), in its README's order
    suites = {"all": 1, "classical": 1, "vlm4cluster": 1}
    expected_counts = {"train": 50_000, "test": 10_000}
    resize_ratio = 1.0
    layout = (
        "<root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} "
        "(torchvision CIFAR10 python format)"
    )
    downloadable = True
    tv_class = "CIFAR10"

    def class_names(self) -> list[str]:
        """The names of batches.meta's label_names."""
        return self._fine_classes()


@register_dataset("cifar20")
class Cifar20(_TorchvisionCifar):
    """CIFAR-20: CIFAR-100 (50,000 / 10,000) with labels mapped to its 20 superclasses.

    Not ``cifar100``, which keeps the 100 fine classes of the same images.
    """

    n_classes = 20
    # "all": the papers' eight benchmarks, in table order; the others: VLM4Cluster's
    # groups and its twenty datasets ("vlm4cluster"), in its README's order
    suites = {"all": 2, "classical": 2, "vlm4cluster": 2}
    expected_counts = {"train": 50_000, "test": 10_000}
    resize_ratio = 1.0
    layout = "<root>/cifar-100-python/{train,test,meta} (torchvision CIFAR100 python format)"
    downloadable = True
    tv_class = "CIFAR100"

    def class_names(self) -> list[str]:
        """The 20 superclass names, underscores shown as spaces."""
        self._torchvision("test")  # the files must be there, like for every other dataset
        return [name.replace("_", " ") for name in SUPERCLASS_NAMES]

    def _map_labels(self, targets: np.ndarray) -> np.ndarray:
        if len(self._fine_classes()) != len(FINE_TO_COARSE):
            raise self.missing(f"meta lists {len(self._fine_classes())} fine classes, not 100")
        return np.asarray(FINE_TO_COARSE, dtype=np.int64)[targets]
