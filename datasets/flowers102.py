"""Oxford Flowers-102 read by torchvision's Flowers102 (imagelabels.mat, setid.mat).

Train is torchvision's "train" split (setid.mat's trnid, 1,020 images, 10 per class), as in
VLM4Cluster; "val" (another 1,020) is not used. Test is "test" (tstid, 6,149 images). The class
names are the 102 names published with CLIP's prompt data (openai/CLIP, data/prompts.md), since
the dataset files name no classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from laicbench.api.registry import register_dataset

from .torchvision_lists import TorchvisionListed, paired

# The Flowers102 class names of CLIP's prompt data, index = label (imagelabels.mat's label - 1).
FLOWERS102_NAMES: tuple[str, ...] = (
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea",
    "english marigold", "tiger lily", "moon orchid", "bird of paradise", "monkshood",
    "globe thistle", "snapdragon", "colt's foot", "king protea", "spear thistle", "yellow iris",
    "globe flower", "purple coneflower", "peruvian lily", "balloon flower",
    "giant white arum lily", "fire lily", "pincushion flower", "fritillary", "red ginger",
    "grape hyacinth", "corn poppy", "prince of wales feathers", "stemless gentian", "artichoke",
    "sweet william", "carnation", "garden phlox", "love in the mist", "mexican aster",
    "alpine sea holly", "ruby-lipped cattleya", "cape flower", "great masterwort", "siam tulip",
    "lenten rose", "barbeton daisy", "daffodil", "sword lily", "poinsettia", "bolero deep blue",
    "wallflower", "marigold", "buttercup", "oxeye daisy", "common dandelion", "petunia",
    "wild pansy", "primula", "sunflower", "pelargonium", "bishop of llandaff", "gaura",
    "geranium", "orange dahlia", "pink and yellow dahlia", "cautleya spicata",
    "japanese anemone", "black-eyed susan", "silverbush", "californian poppy", "osteospermum",
    "spring crocus", "bearded iris", "windflower", "tree poppy", "gazania", "azalea",
    "water lily", "rose", "thorn apple", "morning glory", "passion flower", "lotus", "toad lily",
    "anthurium", "frangipani", "clematis", "hibiscus", "columbine", "desert-rose", "tree mallow",
    "magnolia", "cyclamen", "watercress", "canna lily", "hippeastrum", "bee balm", "air plant",
    "foxglove", "bougainvillea", "camellia", "mallow", "mexican petunia", "bromelia",
    "blanket flower", "trumpet creeper", "blackberry lily",
)  # fmt: skip


@register_dataset("flowers102")
class Flowers102(TorchvisionListed):
    """Flowers-102: 102 flower species, 1,020 train / 6,149 test images (torchvision Flowers102).

    Train is torchvision's "train" split (val unused), as in VLM4Cluster; class names from CLIP's
    prompt data.
    """

    n_classes = 102
    suites = {"fine-grained": 2, "vlm4cluster": 10}
    expected_counts = {"train": 1_020, "test": 6_149}
    resize_ratio = 1.0
    layout = (
        "<root>/flowers-102/{jpg/image_NNNNN.jpg,imagelabels.mat,setid.mat} (torchvision "
        "Flowers102 format; torchvision checks the md5 of both .mat files)"
    )
    downloadable = True
    parts = {"train": ("train",), "test": ("test",)}
    folder = "flowers-102"

    def build(self, part: str) -> Any:
        from torchvision.datasets import Flowers102 as TorchvisionFlowers102

        return TorchvisionFlowers102(root=self.root, split=part, download=self.download)

    def samples(self, dataset: Any) -> list[tuple[Path, int]]:
        return paired(dataset._image_files, dataset._labels)

    def classes_of(self, dataset: Any) -> list[str]:
        """One fixed class list (the .mat files name no classes)."""
        return list(FLOWERS102_NAMES)

    def class_names(self) -> list[str]:
        """CLIP's 102 Flowers102 names (the files must be there, as for every dataset)."""
        self.torchvision("test")
        return list(FLOWERS102_NAMES)
