"""Food-101 read by torchvision's Food101 (meta/train.json and meta/test.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from laicbench.api.registry import register_dataset

from .torchvision_lists import TorchvisionListed, paired


@register_dataset("food101")
class Food101(TorchvisionListed):
    """Food-101: 101 dishes, 75,750 train / 25,250 test images (torchvision Food101).

    The official split: 750 train and 250 test images per class.
    """

    n_classes = 101
    suites = {"fine-grained": 3, "vlm4cluster": 11}
    expected_counts = {"train": 75_750, "test": 25_250}
    resize_ratio = 1.0
    layout = (
        "<root>/food-101/{images/<class>/<id>.jpg,meta/train.json,meta/test.json} (torchvision "
        "Food101 format, the extracted food-101.tar.gz)"
    )
    downloadable = True
    parts = {"train": ("train",), "test": ("test",)}
    folder = "food-101"

    def build(self, part: str) -> Any:
        from torchvision.datasets import Food101 as TorchvisionFood101

        return TorchvisionFood101(root=self.root, split=part, download=self.download)

    def samples(self, dataset: Any) -> list[tuple[Path, int]]:
        return paired(dataset._image_files, dataset._labels)

    def class_names(self) -> list[str]:
        """The sorted class keys of meta/test.json, underscores shown as spaces."""
        return [name.replace("_", " ") for name in self.torchvision("test").classes]
