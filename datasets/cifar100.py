"""CIFAR-100 with its 100 fine classes, read by torchvision's CIFAR100 (as ``cifar20`` is).

The same files and images as ``cifar20``; ``cifar20`` maps the labels to the 20 superclasses,
``cifar100`` keeps the 100 fine labels. Papers call either "CIFAR-100", so the name says which.
"""

from __future__ import annotations

from laicbench.api.registry import register_dataset

from .cifar import _TorchvisionCifar


@register_dataset("cifar100")
class Cifar100(_TorchvisionCifar):
    """CIFAR-100: the 100 fine classes (not cifar20's 20 superclasses), 50,000 / 10,000 images.

    torchvision CIFAR100, fine labels; names are meta's fine_label_names, underscores as spaces.
    """

    n_classes = 100
    suites = {"challenging": 1, "vlm4cluster": 6}
    expected_counts = {"train": 50_000, "test": 10_000}
    resize_ratio = 1.0
    layout = "<root>/cifar-100-python/{train,test,meta} (torchvision CIFAR100 python format)"
    downloadable = True
    tv_class = "CIFAR100"

    def class_names(self) -> list[str]:
        """The 100 fine_label_names of meta ("aquarium fish", "maple tree", ...)."""
        names = self._fine_classes()
        if len(names) != self.n_classes:
            raise self.missing(f"meta lists {len(names)} fine classes, not 100")
        return [name.replace("_", " ") for name in names]
