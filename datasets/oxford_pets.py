"""Oxford-IIIT Pet (37 breeds) read by torchvision's OxfordIIITPet; train = its "trainval"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from laicbench.api.registry import register_dataset

from .torchvision_lists import TorchvisionListed, paired


@register_dataset("oxford-pets")
class OxfordPets(TorchvisionListed):
    """Oxford-IIIT Pet: 37 cat and dog breeds, 3,680 train (trainval) / 3,669 test images.

    torchvision's two splits, "trainval" as train (as in VLM4Cluster) and "test".
    """

    n_classes = 37
    suites = {"fine-grained": 5, "vlm4cluster": 13}
    expected_counts = {"train": 3_680, "test": 3_669}
    resize_ratio = 1.0
    layout = (
        "<root>/oxford-iiit-pet/{images/<Breed>_<n>.jpg,annotations/trainval.txt,"
        "annotations/test.txt} (torchvision OxfordIIITPet format)"
    )
    downloadable = True
    parts = {"train": ("trainval",), "test": ("test",)}
    folder = "oxford-iiit-pet"

    def build(self, part: str) -> Any:
        from torchvision.datasets import OxfordIIITPet

        return OxfordIIITPet(
            root=self.root, split=part, target_types="category", download=self.download
        )

    def samples(self, dataset: Any) -> list[tuple[Path, int]]:
        return paired(dataset._images, dataset._labels)

    def class_names(self) -> list[str]:
        """The breeds as torchvision names them from the test list ("American Bulldog")."""
        return list(self.torchvision("test").classes)
