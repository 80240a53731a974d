"""Places365-Standard, small (256x256) images, read by torchvision's Places365.

Train is torchvision's "train-standard" split (1,803,460 images), test its "val" split (36,500
images, 100 per class; the official test split has no labels). laicbench reads the small
256x256 images (``small=True``); VLM4Cluster reads the high-resolution ones (``small=False``),
which are the same photographs at a larger size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from laicbench.api.registry import register_dataset

from .torchvision_lists import TorchvisionListed


def scene_name(category: str) -> str:
    """A Places365 category as words: "/a/apartment_building/outdoor" -> "apartment building
    outdoor" (the initial-letter folder dropped, underscores and slashes shown as spaces)."""
    parts = [p for p in category.strip("/").split("/") if p]
    if len(parts) > 1 and len(parts[0]) == 1:
        parts = parts[1:]
    return " ".join(" ".join(parts).replace("_", " ").split())


@register_dataset("places365")
class Places365(TorchvisionListed):
    """Places365-Standard: 365 scenes, 1,803,460 train / 36,500 val (test) 256x256 images.

    torchvision Places365 with small=True; "train-standard" is train, "val" is test.
    """

    n_classes = 365
    suites = {"large": 1, "vlm4cluster": 14}
    expected_counts = {"train": 1_803_460, "test": 36_500}
    resize_ratio = 1.0
    layout = (
        "<root>/{categories_places365.txt,places365_train_standard.txt,places365_val.txt,"
        "data_256_standard/<l>/<scene>/*.jpg,val_256/*.jpg} (torchvision Places365 format, "
        "small=True; torchvision checks the md5 of the three lists)"
    )
    downloadable = True
    parts = {"train": ("train-standard",), "test": ("val",)}
    folder = ""  # torchvision's files lie directly below the root

    def build(self, part: str) -> Any:
        from torchvision.datasets import Places365 as TorchvisionPlaces365

        return TorchvisionPlaces365(root=self.root, split=part, small=True, download=self.download)

    def samples(self, dataset: Any) -> list[tuple[Path, int]]:
        return [(Path(f), int(y)) for f, y in dataset.imgs]

    def classes_of(self, dataset: Any) -> list[str]:
        """The categories in the order of their indices in categories_places365.txt."""
        index = dataset.class_to_idx
        by_index = sorted(index, key=index.__getitem__)
        if [index[c] for c in by_index] != list(range(len(by_index))):
            raise self.missing("categories_places365.txt: the indices are not 0..K-1")
        return by_index

    def class_names(self) -> list[str]:
        """The categories of categories_places365.txt as words, index = label."""
        return [scene_name(c) for c in self.classes_of(self.torchvision("val"))]
