"""Writers of tiny datasets in the real on-disk formats of the twelve datasets added in issue 16.

Each writer builds its files below a data root, in the layout and file formats that torchvision's
class (or the plugin's folder layout) reads, and returns what a loader must read back, known by
construction. JPEG images are solid colours per class (``class_colour`` of dataset_fixtures).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from dataset_fixtures import class_colour, md5, write_jpeg

# ---------------------------------------------------------------------------------------------
# class lists (real names first, then made-up ones where a fixture needs the full K)

# A few real FGVC-Aircraft variants (data/variants.txt), names with spaces and slashes included.
AIRCRAFT_VARIANTS = ("707-320", "A300B4", "BAE 146-200", "Cessna 172", "F-16A/B", "Tu-154")

# Oxford-IIIT Pet's 37 breeds as spelled in the image names (cats capitalised, dogs lower case),
# in class-id order.
PET_BREEDS = (
    "Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle",
    "Bengal", "Birman", "Bombay", "boxer", "British_Shorthair", "chihuahua", "Egyptian_Mau",
    "english_cocker_spaniel", "english_setter", "german_shorthaired", "great_pyrenees",
    "havanese", "japanese_chin", "keeshond", "leonberger", "Maine_Coon", "miniature_pinscher",
    "newfoundland", "Persian", "pomeranian", "pug", "Ragdoll", "Russian_Blue", "saint_bernard",
    "samoyed", "scottish_terrier", "shiba_inu", "Siamese", "Sphynx",
    "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier",
)  # fmt: skip

# A few real Food-101 classes (meta/classes.txt spelling).
FOOD_CLASSES = ("apple_pie", "baby_back_ribs", "beef_tartare", "hot_and_sour_soup", "waffles")

# A few real Stanford Cars names (devkit/cars_meta.mat), in class-id order.
CAR_NAMES = (
    "AM General Hummer SUV 2000",
    "Acura RL Sedan 2012",
    "Aston Martin V8 Vantage Convertible 2012",
    "smart fortwo Convertible 2012",
)

# Real Places365 categories (categories_places365.txt spelling), two-level ones included.
PLACES_REAL = ("/a/airfield", "/a/apartment_building/outdoor", "/b/bus_interior", "/z/zen_garden")


def aircraft_variants(n: int = 100) -> list[str]:
    """`n` variant names: the real ones above, then made-up ones ("Made-Up 001")."""
    return [*AIRCRAFT_VARIANTS, *(f"Made-Up {i:03d}" for i in range(n))][:n]


def food_classes(n: int = 101) -> list[str]:
    """`n` class names: the real ones above, then made-up ones ("madeup_dish_001")."""
    return [*FOOD_CLASSES, *(f"madeup_dish_{i:03d}" for i in range(n))][:n]


def car_names(n: int = 196) -> list[str]:
    """`n` car names: the real ones above, then made-up ones ("Made Up Sedan 2001")."""
    return [*CAR_NAMES, *(f"Made Up Sedan {2000 + i}" for i in range(n))][:n]


def places_categories(n: int = 365) -> list[str]:
    """`n` sorted categories: the real ones above, then made-up "/m/madeup_scene_NNN" ones."""
    made_up = [f"/m/madeup_scene_{i:03d}" for i in range(n - len(PLACES_REAL))]
    return sorted([*PLACES_REAL, *made_up])[:n]


# ---------------------------------------------------------------------------------------------
# FGVC-Aircraft


def write_aircraft(
    root: Path, per_part: dict[str, int] | None = None, variants: Sequence[str] = AIRCRAFT_VARIANTS
) -> dict[str, list[tuple[str, int]]]:
    """fgvc-aircraft-2013b/data/{variants.txt,images_variant_<part>.txt,images/<id>.jpg}.

    ``per_part[part]`` images of every variant in each of train, val and test; trainval is
    train + val, as released. Returns (image id, label) per part.
    """
    per_part = per_part or {"train": 2, "val": 1, "test": 1}
    data = root / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True)
    (data / "variants.txt").write_text("".join(f"{v}\n" for v in variants))
    out: dict[str, list[tuple[str, int]]] = {}
    counter = 1_000_000
    for part, n in per_part.items():
        out[part] = []
        for _ in range(n):
            for label in range(len(variants)):  # interleaved classes, as in the real lists
                counter += 7
                image_id = f"{counter:07d}"
                write_jpeg(data / "images" / f"{image_id}.jpg", class_colour(label))
                out[part].append((image_id, label))
    out["trainval"] = out.get("train", []) + out.get("val", [])
    for part, rows in out.items():
        lines = "".join(f"{image_id} {variants[y]}\n" for image_id, y in rows)
        (data / f"images_variant_{part}.txt").write_text(lines)
    return out


# ---------------------------------------------------------------------------------------------
# Flowers-102


def write_flowers102(
    root: Path, n_classes: int = 102, per_part: dict[str, int] | None = None
) -> dict[str, list[tuple[int, int]]]:
    """flowers-102/{jpg/image_NNNNN.jpg,imagelabels.mat,setid.mat} (scipy .mat, 1-based ids).

    Per class ``per_part[part]`` images (default: two train, one val, two test), their ids
    interleaved over the classes. Returns (image id, label) per part (trnid/valid/tstid).
    """
    from scipy.io import savemat

    base = root / "flowers-102"
    base.mkdir(parents=True)
    per_part = per_part or {"train": 2, "val": 1, "test": 2}
    out: dict[str, list[tuple[int, int]]] = {part: [] for part in per_part}
    labels: list[int] = []
    order = [(part, c) for part, n in per_part.items() for _ in range(n) for c in range(n_classes)]
    for image_id, (part, label) in enumerate(order, start=1):
        labels.append(label + 1)  # imagelabels.mat holds 1..102
        write_jpeg(base / "jpg" / f"image_{image_id:05d}.jpg", class_colour(label))
        out[part].append((image_id, label))
    savemat(base / "imagelabels.mat", {"labels": np.asarray([labels], dtype=np.uint8)})
    savemat(
        base / "setid.mat",
        {
            key: np.asarray([[i for i, _ in out[part]]], dtype=np.uint16)
            for key, part in (("trnid", "train"), ("valid", "val"), ("tstid", "test"))
        },
    )
    return out


def patch_flowers102_md5s(monkeypatch, folder: Path) -> None:
    """Point torchvision Flowers102's expected md5s of the two .mat files at `folder`'s."""
    import torchvision.datasets as tvd

    files = dict(tvd.Flowers102._file_dict)
    for key in ("label", "setid"):
        name, _ = files[key]
        files[key] = (name, md5(folder / name))
    monkeypatch.setattr(tvd.Flowers102, "_file_dict", files)


# ---------------------------------------------------------------------------------------------
# Food-101


def write_food101(
    root: Path, classes: Sequence[str] = FOOD_CLASSES, n_train: int = 3, n_test: int = 2
) -> dict[str, list[tuple[str, int]]]:
    """food-101/{meta/{train,test}.json,meta/classes.txt,images/<class>/<id>.jpg}.

    The JSON maps each class to "class/id" entries (no extension), in the file's class order
    (written unsorted, as json dumps a dict). Returns ("images/class/id.jpg", label) per split in
    the order torchvision lists them.
    """
    base = root / "food-101"
    (base / "meta").mkdir(parents=True)
    label = {c: i for i, c in enumerate(sorted(classes))}
    counter = 100_000
    out: dict[str, list[tuple[str, int]]] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        meta: dict[str, list[str]] = {}
        for cls in reversed(list(classes)):  # the file's key order is not the label order
            meta[cls] = []
            for _ in range(n):
                counter += 13
                meta[cls].append(f"{cls}/{counter}")
                write_jpeg(base / "images" / cls / f"{counter}.jpg", class_colour(label[cls]))
        (base / "meta" / f"{split}.json").write_text(json.dumps(meta))
        out[split] = [(f"images/{e}.jpg", label[c]) for c, entries in meta.items() for e in entries]
    (base / "meta" / "classes.txt").write_text("".join(f"{c}\n" for c in sorted(classes)))
    return out


# ---------------------------------------------------------------------------------------------
# Stanford Cars


def _cars_annotations(path: Path, rows: Sequence[tuple[str, int]]) -> None:
    """A devkit-style annotations .mat: a 1xN struct array (bbox_x1..y2, class 1-based, fname)."""
    from scipy.io import savemat

    fields = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")
    table = np.zeros((1, len(rows)), dtype=[(f, "O") for f in fields])
    for i, (fname, label) in enumerate(rows):
        table[0, i] = (np.uint16(1), np.uint16(2), np.uint16(11), np.uint16(9), np.uint8(label + 1),
                       fname)  # fmt: skip
    savemat(path, {"annotations": table})


def write_stanford_cars(
    root: Path, names: Sequence[str] = CAR_NAMES, n_train: int = 2, n_test: int = 2
) -> dict[str, list[tuple[str, int]]]:
    """stanford_cars/{devkit/cars_meta.mat,devkit/cars_train_annos.mat,cars_train/,cars_test/,
    cars_test_annos_withlabels.mat}. Returns ("cars_<split>/NNNNN.jpg", label) per split."""
    from scipy.io import savemat

    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    class_names = np.empty((1, len(names)), dtype=object)
    class_names[0, :] = list(names)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": class_names})
    out: dict[str, list[tuple[str, int]]] = {}
    for split, n, annos in (
        ("train", n_train, base / "devkit" / "cars_train_annos.mat"),
        ("test", n_test, base / "cars_test_annos_withlabels.mat"),
    ):
        rows = [
            (f"{i + 1:05d}.jpg", (3 * i + (split == "test")) % len(names))
            for i in range(n * len(names))
        ]
        for fname, label in rows:
            write_jpeg(base / f"cars_{split}" / fname, class_colour(label))
        _cars_annotations(annos, rows)
        out[split] = [(f"cars_{split}/{fname}", label) for fname, label in rows]
    return out


def write_stanford_cars_folders(
    root: Path,
    names: Sequence[str] | None = None,
    n_train: int = 1,
    n_test: int = 1,
    folder: str = "cars",
) -> dict[str, list[tuple[str, int]]]:
    """<folder>/{train,test}/<car name>/NNNNN.jpg: the class folders of the Stanford_Cars archive
    (VLM4Cluster's layout; names: ``car_names()``, written in that order). Returns ("train/<name>/
    <file>", label) per split, label = position of the name in sorted order."""
    names = list(names or car_names())
    label = {name: i for i, name in enumerate(sorted(names))}
    out: dict[str, list[tuple[str, int]]] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        rows = []
        for j, name in enumerate(names):
            for i in range(n):
                rel = f"{split}/{name}/{j * n + i + 1:05d}.jpg"
                write_jpeg(root / folder / rel, class_colour(label[name]))
                rows.append((rel, label[name]))
        out[split] = sorted(rows)
    return out


# ---------------------------------------------------------------------------------------------
# Oxford-IIIT Pet


def write_oxford_pets(
    root: Path, breeds: Sequence[str] = PET_BREEDS, n_trainval: int = 2, n_test: int = 1
) -> dict[str, list[tuple[str, int]]]:
    """oxford-iiit-pet/{annotations/{trainval,test}.txt,images/<Breed>_<n>.jpg}.

    List lines are "<image id> <class id 1..37> <species 1 cat, 2 dog> <breed id>". Returns
    ("images/<id>.jpg", label) per split (trainval, test).
    """
    base = root / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True)
    species_count = {1: 0, 2: 0}
    out: dict[str, list[tuple[str, int]]] = {}
    number = {b: 0 for b in breeds}
    for split, n in (("trainval", n_trainval), ("test", n_test)):
        lines, out[split] = [], []
        for label, breed in enumerate(breeds):
            species = 1 if breed[0].isupper() else 2
            for _ in range(n):
                number[breed] += 1
                species_count[species] += 1
                image_id = f"{breed}_{number[breed]}"
                write_jpeg(base / "images" / f"{image_id}.jpg", class_colour(label))
                lines.append(f"{image_id} {label + 1} {species} {species_count[species]}\n")
                out[split].append((f"images/{image_id}.jpg", label))
        (base / "annotations" / f"{split}.txt").write_text("".join(lines))
    return out


def pet_class_name(breed: str) -> str:
    """The class name torchvision derives from an image-name breed ("american_bulldog" ->
    "American Bulldog")."""
    return " ".join(part.title() for part in breed.split("_"))


# ---------------------------------------------------------------------------------------------
# Places365 (small images)


def write_places365(
    root: Path, categories: Sequence[str], n_train: int = 1, n_val: int = 1
) -> dict[str, list[tuple[str, int]]]:
    """categories_places365.txt, places365_{train_standard,val}.txt, data_256_standard/ and
    val_256/ below `root` (torchvision Places365, small=True). Returns (sample id, label) per
    split; the val images are numbered across classes, as the real val_256 folder is."""
    (root).mkdir(parents=True, exist_ok=True)
    (root / "categories_places365.txt").write_text(
        "".join(f"{c} {i}\n" for i, c in enumerate(categories))
    )
    out: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    train_lines, val_lines = [], []
    for label, category in enumerate(categories):
        for i in range(n_train):
            rel = f"{category}/{i + 1:08d}.jpg"  # "/a/airfield/00000001.jpg"
            train_lines.append(f"{rel} {label}\n")
            write_jpeg(root / "data_256_standard" / rel.lstrip("/"), class_colour(label))
            out["train"].append((f"data_256_standard{rel}", label))
    val_number = 0
    for _ in range(n_val):
        for label in range(len(categories)):
            val_number += 1
            name = f"Places365_val_{val_number:08d}.jpg"
            val_lines.append(f"{name} {label}\n")
            write_jpeg(root / "val_256" / name, class_colour(label))
            out["test"].append((f"val_256/{name}", label))
    (root / "places365_train_standard.txt").write_text("".join(train_lines))
    (root / "places365_val.txt").write_text("".join(val_lines))
    return out


def patch_places365_md5s(monkeypatch, root: Path) -> None:
    """Point torchvision Places365's expected md5s of the category and file lists at `root`'s."""
    import torchvision.datasets as tvd

    name, _ = tvd.Places365._CATEGORIES_META
    monkeypatch.setattr(tvd.Places365, "_CATEGORIES_META", (name, md5(root / name)))
    lists = dict(tvd.Places365._FILE_LIST_META)
    for split in ("train-standard", "val"):
        list_name, _ = lists[split]
        if (root / list_name).is_file():
            lists[split] = (list_name, md5(root / list_name))
    monkeypatch.setattr(tvd.Places365, "_FILE_LIST_META", lists)


# ---------------------------------------------------------------------------------------------
# ImageNet shift sets: class folders below one folder


def write_class_folders(
    folder: Path,
    class_folders: Sequence[str],
    n_per_class: int = 1,
    suffix: str = ".jpg",
    colour_of: Sequence[int] | None = None,
) -> list[str]:
    """`folder`/<class folder>/<class folder>_<i><suffix> for each class folder; the colour of
    class folder j is ``class_colour(colour_of[j])`` (j by default). Returns the relative paths
    ("<class folder>/<file>") in sorted order."""
    written = []
    for j, name in enumerate(class_folders):
        colour = class_colour(colour_of[j] if colour_of is not None else j)
        for i in range(n_per_class):
            rel = f"{name}/{name}_{i}{suffix}"
            write_jpeg(folder / rel, colour)
            written.append(rel)
    return sorted(written)
