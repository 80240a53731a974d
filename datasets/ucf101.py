"""UCF101 as images: one middle frame per video, official train/test list 1."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from laicbench.api.registry import register_dataset
from laicbench.data.image_dataset import ImageDataset, ImageSplit

from .imagenet import ImageFiles

LIST_FILES = {"train": "trainlist01.txt", "test": "testlist01.txt"}


def split_camel_case(name: str) -> str:
    """Split a CamelCase UCF101 class name into words: ApplyEyeMakeup -> Apply Eye Makeup."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)


@register_dataset("ucf101")
class Ucf101(ImageDataset):
    """UCF101: 101 action classes, 9,537 train / 3,783 test middle frames (split 1)."""

    n_classes = 101
    # "all": the papers' eight benchmarks, in table order; the others: VLM4Cluster's
    # groups and its twenty datasets ("vlm4cluster"), in its README's order
    suites = {"all": 7, "challenging": 3, "vlm4cluster": 8}
    expected_counts = {"train": 9_537, "test": 3_783}
    resize_ratio = 1.0
    layout = (
        "<root>/ucf101/frames/<ClassName>/<video stem>.jpg (one middle frame per video) and "
        "<root>/ucf101/ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt (official lists)"
    )

    @property
    def base(self) -> Path:
        """The folder holding frames/ and ucfTrainTestlist/."""
        return self.root / "ucf101"

    def _lines(self, name: str) -> list[str]:
        path = self.base / "ucfTrainTestlist" / name
        try:
            text = path.read_text()
        except OSError as exc:
            raise self.missing(f"cannot read {path} ({exc.strerror or exc})") from exc
        return [line.strip() for line in text.splitlines() if line.strip()]

    def class_folders(self) -> list[str]:
        """The CamelCase class folder names of classInd.txt, index = label (classInd's - 1)."""
        folders: dict[int, str] = {}
        for line in self._lines("classInd.txt"):
            index, _, folder = line.partition(" ")
            if not index.isdigit() or not folder.strip():
                raise self.missing(f"classInd.txt: bad line {line!r}")
            folders[int(index)] = folder.strip()
        if sorted(folders) != list(range(1, len(folders) + 1)):
            raise self.missing("classInd.txt: class indices are not 1..K")
        return [folders[i] for i in range(1, len(folders) + 1)]

    def class_names(self) -> list[str]:
        """classInd's class names split into words ("Apply Eye Makeup")."""
        return [split_camel_case(folder) for folder in self.class_folders()]

    def read_split(self, split: str) -> ImageSplit:
        """The frames of the videos of trainlist01 / testlist01, in list order."""
        label_of = {folder: i for i, folder in enumerate(self.class_folders())}
        ids: list[str] = []
        labels: list[int] = []
        for line in self._lines(LIST_FILES[split]):
            video, *number = line.split()  # "Class/v_Class_g08_c01.avi" (+ " 1" in train lists)
            folder, _, file_name = video.partition("/")
            if folder not in label_of or not file_name:
                raise self.missing(
                    f"{LIST_FILES[split]}: {video!r} is not <class in classInd.txt>/<video>"
                )
            if number and number[0] != str(label_of[folder] + 1):
                raise self.missing(
                    f"{LIST_FILES[split]}: {video!r} has label {number[0]}, classInd.txt says "
                    f"{label_of[folder] + 1}"
                )
            ids.append(f"frames/{folder}/{Path(file_name).stem}.jpg")
            labels.append(label_of[folder])
        absent = [i for i in ids if not (self.base / i).is_file()]
        if absent:
            raise self.missing(
                f"{len(absent)} of the {len(ids)} frames of {LIST_FILES[split]} are absent, e.g. "
                f"{self.base / absent[0]}"
            )
        samples = [(str(self.base / i), y) for i, y in zip(ids, labels, strict=True)]
        return ImageSplit(
            images=ImageFiles(samples), labels=np.asarray(labels, dtype=np.int64), sample_ids=ids
        )
