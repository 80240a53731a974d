"""The ImageNet distribution-shift sets ImageNet-A, -R, -V2 and -Sketch (test only).

Each is one folder of class folders below the data root, listed by the ImageNet machinery of
imagenet.py (torchvision's ``make_dataset`` over the dataset's class folders, sorted by folder and
path, read lazily). They were released as test sets only: ``test_only`` is True and the "train"
split is the same images as the test split, so a method that trains learns on the test images
themselves (transductive) unless the run trains it on ImageNet. Class names are open_clip's
ImageNet names of the wnids; ImageNet-A and ImageNet-R have 200 of the 1000 classes, K = 200,
label = position of the wnid in the subset's sorted list.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from laicbench.api.registry import register_dataset
from laicbench.data.image_dataset import ImageSplit

from .imagenet import N_IMAGENET_CLASSES, _ImageNetFolders
from .imagenet_shift_classes import IMAGENET_A_WNIDS, IMAGENET_R_WNIDS, IMAGENET_WNIDS

TEST_ONLY_NOTE = "test only: train is the same images"


def imagenet_names(wnids: tuple[str, ...] | list[str]) -> list[str]:
    """open_clip's ImageNet class names of `wnids` (by the wnid's ImageNet class index)."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    index = {w: i for i, w in enumerate(IMAGENET_WNIDS)}
    return [IMAGENET_CLASSNAMES[index[w]] for w in wnids]


class ImageNetShiftSet(_ImageNetFolders):
    """A test-only ImageNet variant: class folders directly below ``<root>/<folder_name>``.

    Subclasses set ``folder_name``, ``class_wnids`` (the ImageNet wnids of the labels, in label
    order) and, when the class folders are not named by wnid, override ``wnids``.
    """

    test_only = True
    shift_source = "imagenet"
    folder_name: ClassVar[str]
    class_wnids: ClassVar[tuple[str, ...]]

    @property
    def base(self) -> Path:
        """The folder holding the class folders."""
        return self.root / self.folder_name

    def wnids(self) -> list[str]:
        """The class folders, index = label: the wnids of ``class_wnids``."""
        return list(self.class_wnids)

    def split_folder(self, split: str) -> tuple[Path, str]:
        """Both splits: the class folders below ``base``; ids are "<class folder>/<file>"."""
        del split
        return self.base, ""

    def read_split(self, split: str) -> ImageSplit:
        """The images of the class folders; "train" is the same images as "test" (the set has
        no train split), listed once per instance."""
        done = self.__dict__.setdefault("_split_cache", {})
        if "test" not in done:
            done["test"] = super().read_split("test")
        return done["test"]

    def class_names(self) -> list[str]:
        """open_clip's ImageNet names of the classes, index = label."""
        return imagenet_names(self.class_wnids)

    def imagenet_indices(self) -> list[int]:
        """The ImageNet-1K class index (label of ``imagenet``) of each label, index = label:
        what maps a head trained on ImageNet to this set's classes."""
        index = {w: i for i, w in enumerate(IMAGENET_WNIDS)}
        return [index[w] for w in self.class_wnids]

    def source_classes(self, source: str) -> list[int] | None:
        """``imagenet_indices`` for ``--train-on imagenet``; None for any other dataset."""
        return self.imagenet_indices() if source == self.shift_source else None


@register_dataset("imagenet-a")
class ImageNetA(ImageNetShiftSet):
    """ImageNet-A: 200 ImageNet classes, 7,500 natural adversarial images (test only).

    K = 200 (the classes present); the "train" split is the same 7,500 images.
    """

    n_classes = 200
    suites = {"shift": 1, "vlm4cluster": 16}
    expected_counts = {"train": 7_500, "test": 7_500}
    folder_name = "imagenet-a"
    class_wnids = IMAGENET_A_WNIDS
    layout = (
        "<root>/imagenet-a/<wnid>/*.jpg for the 200 ImageNet-A wnids (the extracted "
        f"imagenet-a.tar); {TEST_ONLY_NOTE}"
    )


@register_dataset("imagenet-r")
class ImageNetR(ImageNetShiftSet):
    """ImageNet-R: 200 ImageNet classes, 30,000 renditions (art, cartoons, ...) (test only).

    K = 200 (the classes present); the "train" split is the same 30,000 images.
    """

    n_classes = 200
    suites = {"shift": 3, "vlm4cluster": 18}
    expected_counts = {"train": 30_000, "test": 30_000}
    folder_name = "imagenet-r"
    class_wnids = IMAGENET_R_WNIDS
    layout = (
        "<root>/imagenet-r/<wnid>/*.jpg for the 200 ImageNet-R wnids (the extracted "
        f"imagenet-r.tar); {TEST_ONLY_NOTE}"
    )


@register_dataset("imagenet-v2")
class ImageNetV2(ImageNetShiftSet):
    """ImageNet-V2 matched-frequency: 1,000 classes, 10,000 new test images (test only).

    Class folders 0..999 are ImageNet class indices (position in the sorted wnid list).
    """

    n_classes = N_IMAGENET_CLASSES
    suites = {"shift": 4, "vlm4cluster": 19}
    expected_counts = {"train": 10_000, "test": 10_000}
    folder_name = "imagenet-v2"
    class_wnids = IMAGENET_WNIDS
    layout = (
        "<root>/imagenet-v2/<class index 0..999>/*.jpeg (the folders of "
        f"imagenetv2-matched-frequency-format-val); {TEST_ONLY_NOTE}"
    )

    def wnids(self) -> list[str]:
        """The class folders "0".."999", index = label = ImageNet class index."""
        return [str(i) for i in range(N_IMAGENET_CLASSES)]


@register_dataset("imagenet-sketch")
class ImageNetSketch(ImageNetShiftSet):
    """ImageNet-Sketch: 1,000 classes, 50,889 black-and-white sketches (test only)."""

    n_classes = N_IMAGENET_CLASSES
    suites = {"shift": 5, "vlm4cluster": 20}
    expected_counts = {"train": 50_889, "test": 50_889}
    folder_name = "imagenet-sketch"
    class_wnids = IMAGENET_WNIDS
    layout = (
        "<root>/imagenet-sketch/<wnid>/*.JPEG, 1000 wnid folders (the sketch/ folder of "
        f"ImageNet-Sketch); {TEST_ONLY_NOTE}"
    )
