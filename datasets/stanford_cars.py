"""Stanford Cars, in either of its two common layouts.

torchvision cannot download it any more (the original URL is gone), so the files are placed by
hand, in torchvision's layout (the devkit's cars_meta.mat and cars_train_annos.mat, the train and
test image folders and cars_test_annos_withlabels.mat, the test labels published separately,
read by torchvision's StanfordCars) or in the class-folder layout of the Stanford_Cars archive
that VLM4Cluster reads (``{train,test}/<class name>/*.jpg``, the folder names being the class
names; labels follow the sorted folder names, as torchvision's ImageFolder gives them). The
class-folder layout is used when its train/ and test/ folders exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from laicbench.api.registry import register_dataset
from laicbench.data.image_dataset import ImageSplit

from .imagenet import class_folder_split
from .torchvision_lists import TorchvisionListed

# the folders below the root that may hold the class-folder layout: laicbench's, VLM4Cluster's
CLASS_FOLDER_BASES = ("stanford_cars", "cars")


@register_dataset("stanford-cars")
class StanfordCars(TorchvisionListed):
    """Stanford Cars: 196 car models, 8,144 train / 8,041 test images.

    Not downloadable: torchvision's layout or the class-folder layout, placed by hand.
    """

    n_classes = 196
    suites = {"fine-grained": 4, "vlm4cluster": 12}
    expected_counts = {"train": 8_144, "test": 8_041}
    resize_ratio = 1.0
    layout = (
        "<root>/stanford_cars/{devkit/cars_meta.mat,devkit/cars_train_annos.mat,"
        "cars_train/*.jpg,cars_test/*.jpg,cars_test_annos_withlabels.mat} (torchvision "
        "StanfordCars format), or <root>/stanford_cars/{train,test}/<class name>/*.jpg (or "
        "<root>/cars/...: the class folders of the Stanford_Cars archive, VLM4Cluster's "
        "layout), 196 class folders; not downloadable"
    )
    downloadable = False
    parts = {"train": ("train",), "test": ("test",)}
    folder = "stanford_cars"

    def class_folders(self) -> tuple[Path, list[str]] | None:
        """(the folder holding train/ and test/, the sorted class folders) when the files are
        in the class-folder layout, else None (torchvision's layout). DatasetMissingError when
        train/ and test/ do not hold the same 196 class folders."""
        base = next(
            (
                self.root / name
                for name in CLASS_FOLDER_BASES
                if (self.root / name / "train").is_dir() and (self.root / name / "test").is_dir()
            ),
            None,
        )
        if base is None:
            return None
        found = {
            split: sorted(p.name for p in (base / split).iterdir() if p.is_dir())
            for split in ("train", "test")
        }
        if found["train"] != found["test"]:
            only = sorted(set(found["train"]) ^ set(found["test"]))
            raise self.missing(
                f"{base}: train/ and test/ differ in class folders, e.g. {only[0]!r}"
            )
        if len(found["train"]) != self.n_classes:
            raise self.missing(
                f"{base}/train has {len(found['train'])} class folders, expected {self.n_classes}"
            )
        return base, found["train"]

    def read_split(self, split: str) -> ImageSplit:
        """The class folders of `split` when present (ids "train/<class>/<file>", listed once
        per instance), else torchvision's lists."""
        layout = self.class_folders()
        if layout is None:
            return super().read_split(split)
        done = self.__dict__.setdefault("_folder_cache", {})
        if split not in done:
            base, classes = layout
            try:
                done[split] = class_folder_split(base / split, classes, f"{split}/")
            except OSError as exc:  # a class folder without images
                raise self.missing(f"{base / split}: {exc}") from exc
        return done[split]

    def build(self, part: str) -> Any:
        from torchvision.datasets import StanfordCars as TorchvisionStanfordCars

        # never download=True: torchvision raises that the URL is broken
        return TorchvisionStanfordCars(root=self.root, split=part, download=False)

    def samples(self, dataset: Any) -> list[tuple[Path, int]]:
        return [(Path(f), int(y)) for f, y in dataset._samples]

    def class_names(self) -> list[str]:
        """The class folder names in the class-folder layout, else the class_names of
        devkit/cars_meta.mat ("AM General Hummer SUV 2000", ...)."""
        layout = self.class_folders()
        if layout is not None:
            return layout[1]
        return [str(name) for name in self.torchvision("test").classes]
