"""DTD (Describable Textures), partition 1, read by torchvision; train = its train + val."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from laicbench.api.registry import register_dataset
from laicbench.data.image_dataset import ImageDataset, ImageSplit

PARTITION = 1


@register_dataset("dtd")
class Dtd(ImageDataset):
    """DTD: 47 texture classes, 3,760 train (train+val of partition 1) / 1,880 test images."""

    n_classes = 47
    # "all": the papers' eight benchmarks, in table order; the others: VLM4Cluster's
    # groups and its twenty datasets ("vlm4cluster"), in its README's order
    suites = {"all": 6, "challenging": 2, "vlm4cluster": 7}
    expected_counts = {"train": 3_760, "test": 1_880}
    resize_ratio = 1.0
    layout = (
        "<root>/dtd/dtd/images/<class>/*.jpg and <root>/dtd/dtd/labels/{train1,val1,test1}.txt "
        "(torchvision DTD format)"
    )
    downloadable = True

    def _torchvision(self, part: str) -> Any:
        """torchvision's DTD `part` ("train", "val" or "test") of partition 1 (built once)."""
        cache = self.__dict__.setdefault("_tv_cache", {})
        if part not in cache:
            from torchvision.datasets import DTD

            try:
                cache[part] = DTD(
                    root=self.root, split=part, partition=PARTITION, download=self.download
                )
            except (RuntimeError, OSError) as exc:  # no dtd/dtd folder, no split list
                raise self.missing(f"DTD {part}{PARTITION} unreadable ({exc})") from exc
        return cache[part]

    def class_names(self) -> list[str]:
        """The class folder names (sorted, as torchvision gives them)."""
        return list(self._torchvision("test").classes)

    def read_split(self, split: str) -> ImageSplit:
        """train: torchvision's train then val list; test: its test list (list order)."""
        names = ("train", "val") if split == "train" else ("test",)
        parts = [self._torchvision(name) for name in names]
        classes = self.class_names()
        for name, part in zip(names, parts, strict=True):
            if list(part.classes) != classes:
                raise self.missing(
                    f"labels/{name}{PARTITION}.txt lists {len(part.classes)} classes, "
                    f"labels/test{PARTITION}.txt {len(classes)}"
                )
        data_dir = Path(parts[0].root) / "dtd" / "dtd"
        files = [Path(f) for part in parts for f in part._image_files]
        absent = [f for f in files if not f.is_file()]
        if absent:
            raise self.missing(f"{len(absent)} listed {split} images are absent, e.g. {absent[0]}")
        labels = np.asarray([y for part in parts for y in part._labels], dtype=np.int64)
        ids = [f.relative_to(data_dir).as_posix() for f in files]
        from torch.utils.data import ConcatDataset

        images = parts[0] if len(parts) == 1 else ConcatDataset(parts)
        return ImageSplit(images=images, labels=labels, sample_ids=ids)
