"""FGVC-Aircraft at the variant level (100 classes), read by torchvision's FGVCAircraft.

Train is torchvision's "train" split (3,334 images), not "trainval" (6,667): VLM4Cluster
(hyw1008/VLM4Cluster) trains on "train" and tests on "test", and laicbench follows it so that the
numbers compare. Test is the official test split (3,333 images).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from laicbench.api.registry import register_dataset

from .torchvision_lists import TorchvisionListed, paired


@register_dataset("aircraft")
class Aircraft(TorchvisionListed):
    """FGVC-Aircraft: 100 aircraft variants, 3,334 train / 3,333 test images (torchvision).

    Train is torchvision's "train" split, not "trainval", as in VLM4Cluster; the class names are
    the lines of data/variants.txt (e.g. "737-700", "A320", "Cessna 172").
    """

    n_classes = 100
    suites = {"fine-grained": 1, "vlm4cluster": 9}
    expected_counts = {"train": 3_334, "test": 3_333}
    resize_ratio = 1.0
    layout = (
        "<root>/fgvc-aircraft-2013b/data/{images/<id>.jpg,variants.txt,"
        "images_variant_train.txt,images_variant_test.txt} (torchvision FGVCAircraft format, "
        "the extracted fgvc-aircraft-2013b.tar.gz)"
    )
    downloadable = True
    parts = {"train": ("train",), "test": ("test",)}
    folder = "fgvc-aircraft-2013b"

    def build(self, part: str) -> Any:
        from torchvision.datasets import FGVCAircraft

        return FGVCAircraft(
            root=self.root, split=part, annotation_level="variant", download=self.download
        )

    def samples(self, dataset: Any) -> list[tuple[Path, int]]:
        return paired(dataset._image_files, dataset._labels)

    def class_names(self) -> list[str]:
        """The variant names of data/variants.txt, index = label."""
        return list(self.torchvision("test").classes)
