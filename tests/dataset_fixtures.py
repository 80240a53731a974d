"""Writers of tiny datasets in the real on-disk formats of the eight image benchmarks.

Every writer builds its files below a data root and returns what a loader must read back (labels,
file names, image contents), known by construction. Array images (CIFAR, STL-10) carry a pattern
that encodes the sample index and the orientation; JPEG images are solid colours per class.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

# CIFAR-100's fine_label_names (alphabetical; index = fine label).
CIFAR100_FINE_NAMES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar",
    "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile",
    "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster",
    "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster",
    "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
    "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
    "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
    "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman",
    "worm",
)  # fmt: skip

# The 20 CIFAR-100 superclasses (coarse_label_names order) and their five fine classes each, as
# the CIFAR-100 web page lists them; independent of the loader's fine->coarse table.
CIFAR100_SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}

STL10_NAMES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")

DTD_CLASSES = (
    "banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked",
    "crosshatched", "crystalline", "dotted", "fibrous", "flecked", "freckled", "frilly", "gauzy",
    "grid", "grooved", "honeycombed", "interlaced", "knitted", "lacelike", "lined", "marbled",
    "matted", "meshed", "paisley", "perforated", "pitted", "pleated", "polka-dotted", "porous",
    "potholed", "scaly", "smeared", "spiralled", "sprinkled", "stained", "stratified", "striped",
    "studded", "swirly", "veined", "waffled", "woven", "wrinkled", "zigzagged",
)  # fmt: skip


def md5(path: Path) -> str:
    """The md5 hex digest of a file."""
    return hashlib.md5(path.read_bytes()).hexdigest()


def pattern_image(index: int, label: int, height: int, width: int) -> np.ndarray:
    """An HxWx3 uint8 image: R varies with the row, G with the column, B is the sample index."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[..., 0] = ((np.arange(height) * 7 + index) % 256)[:, None]
    image[..., 1] = ((np.arange(width) * 5 + label * 10) % 256)[None, :]
    image[..., 2] = index % 256
    return image


def class_colour(label: int) -> tuple[int, int, int]:
    """The solid colour of the JPEG images of class `label` (distinct for labels < 1000)."""
    return (label * 37 % 256, 255 - label * 11 % 256, 40 + label // 4 % 200)


def write_jpeg(path: Path, colour: Sequence[int], size: tuple[int, int] = (12, 10)) -> Path:
    """A solid-colour image of `size` (width, height), in the format its suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, tuple(colour))
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    image.save(path, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return path


def _pickle(path: Path, obj: dict) -> None:
    # str keys load as str under torchvision's encoding="latin1", as the real (Python 2) pickles do
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _cifar_rows(labels: Sequence[int], start: int = 0) -> np.ndarray:
    """CIFAR rows: 1024 red, 1024 green, 1024 blue values, each plane row-major 32x32."""
    images = [pattern_image(start + i, y, 32, 32) for i, y in enumerate(labels)]
    return np.stack([im.transpose(2, 0, 1).reshape(3072) for im in images]).astype(np.uint8)


def write_cifar10(
    root: Path, batch_sizes: Sequence[int] = (4, 4, 4, 4, 4), n_test: int = 10
) -> dict[str, list[int]]:
    """cifar-10-batches-py with 5 train batches and a test batch; labels i % 10 (i per split)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train = [i % 10 for i in range(sum(batch_sizes))]
    test = [(3 * i) % 10 for i in range(n_test)]
    start = 0
    for b, size in enumerate(batch_sizes):
        labels = train[start : start + size]
        _pickle(
            folder / f"data_batch_{b + 1}",
            {
                "batch_label": f"training batch {b + 1} of 5",
                "labels": labels,
                "data": _cifar_rows(labels, start=start),
                "filenames": [f"img_{b}_{i}.png" for i in range(len(labels))],
            },
        )
        start += size
    _pickle(
        folder / "test_batch",
        {"batch_label": "testing batch 1 of 1", "labels": test, "data": _cifar_rows(test)},
    )
    _pickle(
        folder / "batches.meta",
        {
            "num_cases_per_batch": batch_sizes[0],
            "label_names": list(CIFAR10_NAMES),
            "num_vis": 3072,
        },
    )
    return {"train": train, "test": test}


def cifar100_coarse_of_fine() -> dict[int, int]:
    """Fine label -> superclass index, from the membership lists above."""
    fine_index = {name: i for i, name in enumerate(CIFAR100_FINE_NAMES)}
    return {
        fine_index[fine]: coarse
        for coarse, members in enumerate(CIFAR100_SUPERCLASSES.values())
        for fine in members
    }


def write_cifar100(root: Path, n_train: int = 100, n_test: int = 50) -> dict[str, dict]:
    """cifar-100-python/{train,test,meta}; every fine class once in train (shuffled order)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    coarse_of = cifar100_coarse_of_fine()
    out = {}
    for split, n, step in (("train", n_train, 37), ("test", n_test, 13)):
        fine = [(i * step) % 100 for i in range(n)]
        coarse = [coarse_of[f] for f in fine]
        _pickle(
            folder / split,
            {
                "filenames": [f"{split}_{i}.png" for i in range(n)],
                "batch_label": f"{split}ing batch 1 of 1",
                "fine_labels": fine,
                "coarse_labels": coarse,
                "data": _cifar_rows(fine),
            },
        )
        out[split] = {"fine": fine, "coarse": coarse}
    _pickle(
        folder / "meta",
        {
            "fine_label_names": list(CIFAR100_FINE_NAMES),
            "coarse_label_names": list(CIFAR100_SUPERCLASSES),
        },
    )
    return out


def patch_torchvision_md5s(monkeypatch, cls: type, folder: Path) -> None:
    """Point `cls`'s expected md5s (train_list, test_list, meta) at the files in `folder`."""
    for attr in ("train_list", "test_list"):
        entries = [[name, md5(folder / name)] for name, _ in getattr(cls, attr)]
        monkeypatch.setattr(cls, attr, entries)
    if isinstance(getattr(cls, "meta", None), dict):
        meta = dict(cls.meta)
        meta["md5"] = md5(folder / meta["filename"])
        monkeypatch.setattr(cls, "meta", meta)


def _stl_bytes(labels: Sequence[int]) -> bytes:
    """STL-10 X bytes: per image 3 channels of 96x96 values in column-major order."""
    images = [pattern_image(i, y, 96, 96) for i, y in enumerate(labels)]
    return b"".join(im.transpose(2, 1, 0).tobytes() for im in images)


def write_stl10(
    root: Path, n_train: int = 20, n_test: int = 10, class_names: bool = True
) -> dict[str, list[int]]:
    """stl10_binary with {train,test}_{X,y}.bin, a one-image unlabeled_X.bin, class_names.txt."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    labels = {
        "train": [i % 10 for i in range(n_train)],
        "test": [(7 * i) % 10 for i in range(n_test)],
    }
    for split, ys in labels.items():
        (folder / f"{split}_X.bin").write_bytes(_stl_bytes(ys))
        (folder / f"{split}_y.bin").write_bytes(bytes(y + 1 for y in ys))  # labels 1..10
    (folder / "unlabeled_X.bin").write_bytes(_stl_bytes([0]))
    if class_names:
        (folder / "class_names.txt").write_text("\n".join(STL10_NAMES) + "\n")
    return labels


def write_dtd(root: Path, per_part: dict[str, int] | None = None) -> dict[str, list[str]]:
    """dtd/dtd/images/<class>/<class>_NNNN.jpg and dtd/dtd/labels/{train1,val1,test1}.txt.

    Each part lists `per_part[part]` images of every one of the 47 classes; returns the listed
    "class/file.jpg" lines per part.
    """
    per_part = per_part or {"train": 1, "val": 1, "test": 1}
    data = root / "dtd" / "dtd"
    (data / "labels").mkdir(parents=True)
    lines: dict[str, list[str]] = {}
    counter = 0
    for part, n in per_part.items():
        lines[part] = []
        for label, cls in enumerate(DTD_CLASSES):
            for _ in range(n):
                counter += 1
                name = f"{cls}_{counter:04d}.jpg"
                write_jpeg(data / "images" / cls / name, class_colour(label))
                lines[part].append(f"{cls}/{name}")
        (data / "labels" / f"{part}1.txt").write_text("\n".join(lines[part]) + "\n")
    return lines


def write_imagenet(
    root: Path,
    wnids: Sequence[str],
    n_train: int = 2,
    n_val: int = 1,
    suffixes: Sequence[str] = (".JPEG",),
) -> dict[str, list[str]]:
    """imagenet/{train,val}/<wnid>/ with solid-colour images (colour = position in `wnids`).

    File names cycle through `suffixes`; returns the relative paths ("train/<wnid>/<file>").
    """
    written: dict[str, list[str]] = {"train": [], "val": []}
    for split, n in (("train", n_train), ("val", n_val)):
        for label, wnid in enumerate(wnids):
            for i in range(n):
                rel = f"{split}/{wnid}/{wnid}_{i}{suffixes[i % len(suffixes)]}"
                write_jpeg(root / "imagenet" / rel, class_colour(label))
                written[split].append(rel)
    return written


def ucf_class_folders(n: int = 101) -> list[str]:
    """`n` CamelCase class folders: three real UCF101 ones, then made-up ones."""
    real = ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
    return (real + [f"MadeUpAction{chr(65 + i // 26)}{chr(97 + i % 26)}" for i in range(n)])[:n]


def write_ucf101(
    root: Path, folders: Sequence[str], n_train: int = 2, n_test: int = 1
) -> dict[str, list[tuple[str, int]]]:
    """ucf101/ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt and one frame per video.

    Video names follow UCF101 ("v_<Class>_gGG_cCC.avi"); like the real lists, the video name of
    HandstandPushups is spelled "HandStandPushups". Returns (frame id, label) per split.
    """
    base = root / "ucf101"
    lists = base / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    # the official lists have CRLF line ends
    class_ind = "".join(f"{i + 1} {folder}\r\n" for i, folder in enumerate(folders))
    (lists / "classInd.txt").write_text(class_ind, newline="")
    out: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    train_lines, test_lines = [], []
    for label, folder in enumerate(folders):
        video_class = "HandStandPushups" if folder == "HandstandPushups" else folder
        for g in range(n_train + n_test):
            stem = f"v_{video_class}_g{g + 8:02d}_c01"
            split = "train" if g < n_train else "test"
            if split == "train":
                train_lines.append(f"{folder}/{stem}.avi {label + 1}\r\n")
            else:
                test_lines.append(f"{folder}/{stem}.avi\r\n")
            frame = f"frames/{folder}/{stem}.jpg"
            write_jpeg(base / frame, class_colour(label))
            out[split].append((frame, label))
    (lists / "trainlist01.txt").write_text("".join(train_lines), newline="")
    (lists / "testlist01.txt").write_text("".join(test_lines), newline="")
    return out
