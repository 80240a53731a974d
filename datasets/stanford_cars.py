"""Stanford Cars read by torchvision's StanfordCars (the devkit .mat files).

torchvision cannot download it any more (the original URL is gone), so the files are placed by
hand in torchvision's layout: the devkit (cars_meta.mat, cars_train_annos.mat), the train and test
image folders and cars_test_annos_withlabels.mat (the test labels, published separately).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from laicbench.api.registry import register_dataset

from .torchvision_lists import TorchvisionListed


@register_dataset("stanford-cars")
class StanfordCars(TorchvisionListed):
    """Stanford Cars: 196 car models, 8,144 train / 8,041 test images (torchvision StanfordCars).

    Not downloadable: torchvision's layout, placed by hand.
    """

    n_classes = 196
    suites = {"fine-grained": 4, "vlm4cluster": 12}
    expected_counts = {"train": 8_144, "test": 8_041}
    resize_ratio = 1.0
    layout = (
        "<root>/stanford_cars/{devkit/cars_meta.mat,devkit/cars_train_annos.mat,"
        "cars_train/*.jpg,cars_test/*.jpg,cars_test_annos_withlabels.mat} (torchvision "
        "StanfordCars format; not downloadable)"
    )
    downloadable = False
    parts = {"train": ("train",), "test": ("test",)}
    folder = "stanford_cars"

    def build(self, part: str) -> Any:
        from torchvision.datasets import StanfordCars as TorchvisionStanfordCars

        # never download=True: torchvision raises that the URL is broken
        return TorchvisionStanfordCars(root=self.root, split=part, download=False)

    def samples(self, dataset: Any) -> list[tuple[Path, int]]:
        return [(Path(f), int(y)) for f, y in dataset._samples]

    def class_names(self) -> list[str]:
        """The class_names of devkit/cars_meta.mat ("AM General Hummer SUV 2000", ...)."""
        return [str(name) for name in self.torchvision("test").classes]
