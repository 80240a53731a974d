"""STL-10 read by torchvision from its binary files (labelled train and test; no unlabelled)."""

from __future__ import annotations

from typing import Any

import numpy as np

from laicbench.api.registry import register_dataset
from laicbench.data.image_dataset import ImageDataset, ImageSplit


@register_dataset("stl10")
class Stl10(ImageDataset):
    """STL-10: 10 classes, 5,000 labelled train / 8,000 test 96x96 images (torchvision STL10)."""

    n_classes = 10
    # "all": the papers' eight benchmarks, in table order; the others: VLM4Cluster's
    # groups and its twenty datasets ("vlm4cluster"), in its README's order
    suites = {"all": 3, "classical": 3, "vlm4cluster": 3}
    expected_counts = {"train": 5_000, "test": 8_000}
    resize_ratio = 1.0
    layout = (
        "<root>/stl10_binary/{train_X.bin,train_y.bin,test_X.bin,test_y.bin,unlabeled_X.bin,"
        "class_names.txt} (torchvision STL10 binary format; torchvision checks unlabeled_X.bin "
        "too, though it is not used)"
    )
    downloadable = True

    def _torchvision(self, split: str) -> Any:
        """torchvision's STL10 `split` (built once per instance: it md5-checks every file)."""
        cache = self.__dict__.setdefault("_tv_cache", {})
        if split not in cache:
            from torchvision.datasets import STL10

            try:
                cache[split] = STL10(root=self.root, split=split, download=self.download)
            except RuntimeError as exc:  # torchvision: files absent or failing the md5 check
                raise self.missing(
                    f"STL10 {split} files absent or corrupted (torchvision's md5 check)"
                ) from exc
            except (OSError, ValueError) as exc:  # a failed download, an unreadable file
                raise self.missing(f"STL10 {split} files unreadable ({exc})") from exc
        return cache[split]

    def class_names(self) -> list[str]:
        """The lines of stl10_binary/class_names.txt."""
        ds = self._torchvision("test")
        if not hasattr(ds, "classes"):
            raise self.missing("stl10_binary/class_names.txt is absent")
        return list(ds.classes)

    def read_split(self, split: str) -> ImageSplit:
        """torchvision's split in file order; sample ids are "<split>_X.bin:<row>"."""
        ds = self._torchvision(split)
        labels = np.asarray(ds.labels, dtype=np.int64)
        if len(labels) != len(ds):
            raise self.missing(f"{split}_y.bin has {len(labels)} labels for {len(ds)} images")
        ids = [f"{split}_X.bin:{i}" for i in range(len(ds))]
        return ImageSplit(images=ds, labels=labels, sample_ids=ids)
