"""The twelve dataset plugins added for VLM4Cluster's twenty, on tiny files in real formats."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets as tvd
from dataset_fixtures import (
    CIFAR100_FINE_NAMES,
    class_colour,
    patch_torchvision_md5s,
    pattern_image,
    write_cifar100,
)
from laicbench.datasets.aircraft import Aircraft
from laicbench.datasets.cifar import Cifar20
from laicbench.datasets.cifar100 import Cifar100
from laicbench.datasets.flowers102 import FLOWERS102_NAMES, Flowers102
from laicbench.datasets.food101 import Food101
from laicbench.datasets.imagenet_c import CORRUPTIONS, ImageNetC, imagenet_c_variant
from laicbench.datasets.imagenet_shift import (
    ImageNetA,
    ImageNetR,
    ImageNetSketch,
    ImageNetV2,
    imagenet_names,
)
from laicbench.datasets.imagenet_shift_classes import (
    IMAGENET_A_WNIDS,
    IMAGENET_R_WNIDS,
    IMAGENET_WNIDS,
)
from laicbench.datasets.oxford_pets import OxfordPets
from laicbench.datasets.places365 import Places365, scene_name
from laicbench.datasets.stanford_cars import StanfordCars
from more_dataset_fixtures import (
    AIRCRAFT_VARIANTS,
    PET_BREEDS,
    aircraft_variants,
    car_names,
    food_classes,
    patch_flowers102_md5s,
    patch_places365_md5s,
    pet_class_name,
    places_categories,
    write_aircraft,
    write_class_folders,
    write_flowers102,
    write_food101,
    write_oxford_pets,
    write_places365,
    write_stanford_cars,
    write_stanford_cars_folders,
)
from test_dataset_loaders import ALL as PAPER_EIGHT
from test_dataset_loaders import assert_solid, assert_split, fresh_ids

from laicbench.api import registry
from laicbench.api.dataset import PAPER_SUITE, Dataset, suite_members
from laicbench.api.errors import UserError
from laicbench.data.image_dataset import DatasetMissingError

NEW = {
    "cifar100": Cifar100,
    "aircraft": Aircraft,
    "flowers102": Flowers102,
    "food101": Food101,
    "stanford-cars": StanfordCars,
    "oxford-pets": OxfordPets,
    "places365": Places365,
    "imagenet-a": ImageNetA,
    "imagenet-r": ImageNetR,
    "imagenet-v2": ImageNetV2,
    "imagenet-sketch": ImageNetSketch,
    "imagenet-c": ImageNetC,
}
SHIFT = ("imagenet-a", "imagenet-c", "imagenet-r", "imagenet-v2", "imagenet-sketch")

# The ImageNet class indices of the 200 classes as listed by the official evaluation code:
# hendrycks/natural-adv-examples eval.py (indices_in_1k) and hendrycks/imagenet-r eval.py.
IMAGENET_A_INDICES = (
    6, 11, 13, 15, 17, 22, 23, 27, 30, 37, 39, 42, 47, 50, 57, 70, 71, 76, 79, 89, 90, 94, 96,
    97, 99, 105, 107, 108, 110, 113, 124, 125, 130, 132, 143, 144, 150, 151, 207, 234, 235, 254,
    277, 283, 287, 291, 295, 298, 301, 306, 307, 308, 309, 310, 311, 313, 314, 315, 317, 319,
    323, 324, 326, 327, 330, 334, 335, 336, 347, 361, 363, 372, 378, 386, 397, 400, 401, 402,
    404, 407, 411, 416, 417, 420, 425, 428, 430, 437, 438, 445, 456, 457, 461, 462, 470, 472,
    483, 486, 488, 492, 496, 514, 516, 528, 530, 539, 542, 543, 549, 552, 557, 561, 562, 569,
    572, 573, 575, 579, 589, 606, 607, 609, 614, 626, 627, 640, 641, 642, 643, 658, 668, 677,
    682, 684, 687, 701, 704, 719, 736, 746, 749, 752, 758, 763, 765, 768, 773, 774, 776, 779,
    780, 786, 792, 797, 802, 803, 804, 813, 815, 820, 823, 831, 833, 835, 839, 845, 847, 850,
    859, 862, 870, 879, 880, 888, 890, 897, 900, 907, 913, 924, 932, 933, 934, 937, 943, 945,
    947, 951, 954, 956, 957, 959, 971, 972, 980, 981, 984, 986, 987, 988,
)  # fmt: skip
IMAGENET_R_INDICES = (
    1, 2, 4, 6, 8, 9, 11, 13, 22, 23, 26, 29, 31, 39, 47, 63, 71, 76, 79, 84, 90, 94, 96, 97,
    99, 100, 105, 107, 113, 122, 125, 130, 132, 144, 145, 147, 148, 150, 151, 155, 160, 161,
    162, 163, 171, 172, 178, 187, 195, 199, 203, 207, 208, 219, 231, 232, 234, 235, 242, 245,
    247, 250, 251, 254, 259, 260, 263, 265, 267, 269, 276, 277, 281, 288, 289, 291, 292, 293,
    296, 299, 301, 308, 309, 310, 311, 314, 315, 319, 323, 327, 330, 334, 335, 337, 338, 340,
    341, 344, 347, 353, 355, 361, 362, 365, 366, 367, 368, 372, 388, 390, 393, 397, 401, 407,
    413, 414, 425, 428, 430, 435, 437, 441, 447, 448, 457, 462, 463, 469, 470, 471, 472, 476,
    483, 487, 515, 546, 555, 558, 570, 579, 583, 587, 593, 594, 596, 609, 613, 617, 621, 629,
    637, 657, 658, 701, 717, 724, 763, 768, 774, 776, 779, 780, 787, 805, 812, 815, 820, 824,
    833, 847, 852, 866, 875, 883, 889, 895, 907, 928, 931, 932, 933, 934, 936, 937, 943, 945,
    947, 948, 949, 951, 953, 954, 957, 963, 965, 967, 980, 981, 983, 988,
)  # fmt: skip


def one_line_missing(call) -> str:
    """The message of the DatasetMissingError that `call()` raises, checked to be one line."""
    with pytest.raises(DatasetMissingError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------
# registration, tables and suites


def test_new_plugins_are_registered_with_their_tables():
    for name, cls in NEW.items():
        assert registry.datasets.get(name) is cls and cls.name == name
    assert {n: c.n_classes for n, c in NEW.items()} == {
        "cifar100": 100, "aircraft": 100, "flowers102": 102, "food101": 101,
        "stanford-cars": 196, "oxford-pets": 37, "places365": 365, "imagenet-a": 200,
        "imagenet-r": 200, "imagenet-v2": 1000, "imagenet-sketch": 1000, "imagenet-c": 1000,
    }  # fmt: skip
    assert {n: (c.expected_counts["train"], c.expected_counts["test"]) for n, c in NEW.items()} == {
        "cifar100": (50_000, 10_000),
        "aircraft": (3_334, 3_333),
        "flowers102": (1_020, 6_149),
        "food101": (75_750, 25_250),
        "stanford-cars": (8_144, 8_041),
        "oxford-pets": (3_680, 3_669),
        "places365": (1_803_460, 36_500),
        "imagenet-a": (7_500, 7_500),
        "imagenet-r": (30_000, 30_000),
        "imagenet-v2": (10_000, 10_000),
        "imagenet-sketch": (50_889, 50_889),
        "imagenet-c": (50_000, 50_000),
    }
    downloadable = {n for n, c in NEW.items() if c.downloadable}
    assert downloadable == {"cifar100", "aircraft", "flowers102", "food101", "oxford-pets",
                            "places365"}  # fmt: skip
    ratios = {n: c.resize_ratio for n, c in NEW.items()}
    assert {n for n, r in ratios.items() if r != 1.0} == set(SHIFT) - {"imagenet-c"}
    assert all(ratios[n] == 256 / 224 for n in SHIFT if n != "imagenet-c")
    for cls in NEW.values():  # every layout is stated, and each plugin has a description
        assert cls.layout and cls.__doc__


def test_test_only_flag():
    assert Dataset.test_only is False
    assert {n for n, c in {**PAPER_EIGHT, **NEW}.items() if c.test_only} == set(SHIFT)


def test_suites_resolve():
    assert suite_members(PAPER_SUITE) == [
        "cifar10", "cifar20", "stl10", "imagenet10", "imagenet-dogs", "dtd", "ucf101", "imagenet"
    ]  # fmt: skip
    assert suite_members("fine-grained") == [
        "aircraft", "flowers102", "food101", "stanford-cars", "oxford-pets"
    ]  # fmt: skip
    assert suite_members("shift") == list(SHIFT)
    assert suite_members("classical") == ["cifar10", "cifar20", "stl10", "imagenet10",
                                          "imagenet-dogs"]  # fmt: skip
    assert suite_members("challenging") == ["cifar100", "dtd", "ucf101"]
    assert suite_members("large") == ["places365", "imagenet"]
    # VLM4Cluster's twenty, in its README's group order
    twenty = suite_members("vlm4cluster")
    assert twenty == [
        "cifar10", "cifar20", "stl10", "imagenet10", "imagenet-dogs",
        "cifar100", "dtd", "ucf101",
        "aircraft", "flowers102", "food101", "stanford-cars", "oxford-pets",
        "places365", "imagenet",
        "imagenet-a", "imagenet-c", "imagenet-r", "imagenet-v2", "imagenet-sketch",
    ]  # fmt: skip
    groups = ("classical", "challenging", "fine-grained", "large", "shift")
    assert sorted(twenty) == sorted(m for g in groups for m in suite_members(g))
    for name in twenty:
        assert registry.datasets.get(name).name == name


def test_list_datasets_shows_them(cli):
    result = cli("list", "datasets")
    assert result.status == 0, result.err
    rows = {line.split("│")[1].strip(): line for line in result.out.splitlines() if "│" in line}
    for name in NEW:
        assert name in rows
    # the description tells CIFAR-100's fine classes from cifar20's superclasses
    assert "100 fine classes" in rows["cifar100"] and "cifar20" in rows["cifar100"]
    assert "20 superclasses" in rows["cifar20"]
    for name in SHIFT:
        assert "test only" in rows[name]


def test_list_datasets_subprocess_shows_them():
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "laicbench", "list", "datasets"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for name in NEW:
        assert re.search(rf"│ {re.escape(name)}\s+│", proc.stdout), name


# ---------------------------------------------------------------------------------------------
# every new dataset: missing files give one line with the layout, the root and the name


@pytest.mark.parametrize("name", list(NEW))
def test_missing_dataset_is_one_line_with_layout(name, tmp_path):
    plugin = NEW[name](root=tmp_path / "nothing-here")
    for split in ("train", "test"):
        message = one_line_missing(lambda s=split: plugin.split(s))
        assert plugin.layout in message
        assert str(tmp_path / "nothing-here") in message
        assert repr(name) in message


def test_validate_cli_reports_each_missing_shift_set_in_one_line(cli, tmp_path):
    result = cli("validate", "--datasets", "shift", "--data-root", tmp_path)
    assert result.status != 0
    lines = result.err_lines
    assert [line.split(":")[0] for line in lines] == list(SHIFT)
    for line, name in zip(lines, SHIFT, strict=True):
        assert NEW[name].layout in line


# ---------------------------------------------------------------------------------------------
# CIFAR-100 (fine classes)


def test_cifar100_keeps_the_fine_labels(tmp_path, monkeypatch):
    written = write_cifar100(tmp_path, n_train=100, n_test=50)
    patch_torchvision_md5s(monkeypatch, tvd.CIFAR100, tmp_path / "cifar-100-python")
    plugin = Cifar100(root=tmp_path, expected_counts={"train": 100, "test": 50})
    names = plugin.class_names()
    assert names == [n.replace("_", " ") for n in CIFAR100_FINE_NAMES]
    assert names[1] == "aquarium fish" and names[47] == "maple tree"
    assert_split(plugin, "train", written["train"]["fine"], [f"train:{i}" for i in range(100)])
    assert_split(plugin, "test", written["test"]["fine"], [f"test:{i}" for i in range(50)])
    train = plugin.split("train")
    for i in (0, 37, 99):  # whole images in file order
        image, label = train.images[i]
        np.testing.assert_array_equal(np.asarray(image), pattern_image(i, label, 32, 32))
    assert plugin.validate()["train"]["per_class"] == [1] * 100
    # the same files as cifar20, which maps them to the superclasses
    coarse = Cifar20(root=tmp_path, expected_counts={"train": 100, "test": 50}).split("train")
    assert coarse.labels.tolist() == written["train"]["coarse"]
    assert coarse.sample_ids == train.sample_ids
    message = one_line_missing(lambda: Cifar100(root=tmp_path).split("train"))
    assert "train split has 100 images, expected 50000" in message


# ---------------------------------------------------------------------------------------------
# FGVC-Aircraft


def test_aircraft_train_is_torchvisions_train_not_trainval(tmp_path):
    written = write_aircraft(tmp_path, variants=aircraft_variants())
    plugin = Aircraft(root=tmp_path, expected_counts={"train": 200, "test": 100})
    names = plugin.class_names()
    assert names[: len(AIRCRAFT_VARIANTS)] == list(AIRCRAFT_VARIANTS) and len(names) == 100
    for split in ("train", "test"):
        ids = [f"data/images/{i}.jpg" for i, _ in written[split]]
        assert_split(plugin, split, [y for _, y in written[split]], ids)
    train = plugin.split("train")
    assert len(written["trainval"]) == 300 and len(train.sample_ids) == 200  # val not used
    for i in (0, 5, 199):
        image, y = train.images[i]
        assert_solid(image, class_colour(y))
    report = plugin.validate()
    assert report["train"]["per_class"] == [2] * 100 and report["test"]["per_class"] == [1] * 100
    assert fresh_ids(plugin, "test") == plugin.split("test").sample_ids
    message = one_line_missing(lambda: Aircraft(root=tmp_path).split("test"))
    assert "test split has 100 images, expected 3333" in message


def test_aircraft_absent_image_and_list(tmp_path):
    written = write_aircraft(tmp_path, per_part={"train": 1, "val": 0, "test": 1})
    data = tmp_path / "fgvc-aircraft-2013b" / "data"
    (data / "images" / f"{written['test'][3][0]}.jpg").unlink()
    message = one_line_missing(lambda: Aircraft(root=tmp_path).split("test"))
    assert "1 of the 6 listed test images are absent" in message
    assert str(data / "images" / f"{written['test'][3][0]}.jpg") in message
    (data / "images_variant_train.txt").unlink()
    message = one_line_missing(lambda: Aircraft(root=tmp_path).split("train"))
    assert "train split unreadable" in message and "images_variant_train.txt" in message
    assert Aircraft.layout in message


def test_aircraft_unknown_variant_in_list(tmp_path):
    write_aircraft(tmp_path, per_part={"train": 1, "val": 0, "test": 1})
    test_list = tmp_path / "fgvc-aircraft-2013b" / "data" / "images_variant_test.txt"
    test_list.write_text(test_list.read_text().replace("Tu-154", "Tu-999"))
    message = one_line_missing(lambda: Aircraft(root=tmp_path).class_names())
    assert "test split unreadable" in message and "Tu-999" in message


# ---------------------------------------------------------------------------------------------
# Flowers-102


def test_flowers102_reads_the_mat_files(tmp_path, monkeypatch):
    written = write_flowers102(tmp_path)
    patch_flowers102_md5s(monkeypatch, tmp_path / "flowers-102")
    plugin = Flowers102(root=tmp_path, expected_counts={"train": 204, "test": 204})
    assert plugin.class_names() == list(FLOWERS102_NAMES) and len(FLOWERS102_NAMES) == 102
    assert FLOWERS102_NAMES[0] == "pink primrose" and FLOWERS102_NAMES[101] == "blackberry lily"
    for split in ("train", "test"):  # train = trnid only (valid is not used), test = tstid
        ids = [f"jpg/image_{i:05d}.jpg" for i, _ in written[split]]
        assert_split(plugin, split, [y for _, y in written[split]], ids)
    image, y = plugin.split("test").images[150]
    assert y == 150 % 102
    assert_solid(image, class_colour(y))
    assert plugin.validate()["test"]["per_class"] == [2] * 102


def test_flowers102_real_md5s_reject_other_files(tmp_path):
    write_flowers102(tmp_path, n_classes=3)
    message = one_line_missing(lambda: Flowers102(root=tmp_path).split("train"))
    assert "corrupted" in message and Flowers102.layout in message


def test_flowers102_names_match_torchvision_where_it_has_them():
    tv_names = getattr(tvd.Flowers102, "classes", None)
    if tv_names is None:
        pytest.skip("this torchvision has no Flowers102 class names")
    # CLIP's names differ from torchvision's in three spellings only
    differ = [i for i, (a, b) in enumerate(zip(FLOWERS102_NAMES, tv_names, strict=True)) if a != b]
    assert [FLOWERS102_NAMES[i] for i in differ] == [
        "globe flower", "pink and yellow dahlia", "air plant"
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Food-101


def test_food101_reads_the_json_lists(tmp_path):
    classes = food_classes()
    written = write_food101(tmp_path, classes=classes, n_train=2, n_test=1)
    plugin = Food101(root=tmp_path, expected_counts={"train": 202, "test": 101})
    names = plugin.class_names()
    assert names[:5] == ["apple pie", "baby back ribs", "beef tartare", "hot and sour soup",
                         "madeup dish 000"]  # fmt: skip
    assert len(names) == 101 and names == sorted(names)
    for split in ("train", "test"):
        ids, labels = zip(*written[split], strict=True)
        assert_split(plugin, split, list(labels), list(ids))
    train = plugin.split("train")
    assert train.sample_ids[0].startswith(f"images/{classes[-1]}/")  # the json's order
    image, y = train.images[3]
    assert_solid(image, class_colour(y))
    assert plugin.validate()["train"]["per_class"] == [2] * 101


def test_food101_bad_json_and_class_mismatch(tmp_path):
    write_food101(tmp_path)
    meta = tmp_path / "food-101" / "meta"
    train = meta / "train.json"
    train.write_text(train.read_text()[:-5])
    message = one_line_missing(lambda: Food101(root=tmp_path).split("train"))
    assert "train split unreadable (bad JSON" in message
    write_food101(tmp_path / "other", classes=("apple_pie", "waffles"), n_train=1, n_test=1)
    test = tmp_path / "other" / "food-101" / "meta" / "test.json"
    test.write_text('{"apple_pie": ["apple_pie/100016"]}')
    message = one_line_missing(lambda: Food101(root=tmp_path / "other").split("train"))
    assert "the train split lists 2 classes, the test split 1" in message


# ---------------------------------------------------------------------------------------------
# Stanford Cars


def test_stanford_cars_reads_the_devkit(tmp_path):
    names = car_names()
    written = write_stanford_cars(tmp_path, names=names, n_train=1, n_test=1)
    # --download is ignored: torchvision cannot download Stanford Cars any more
    plugin = StanfordCars(root=tmp_path, download=True, expected_counts={"train": 196,
                                                                          "test": 196})  # fmt: skip
    assert plugin.class_names() == names
    _assert_cars(plugin, written)
    message = one_line_missing(lambda: StanfordCars(root=tmp_path).split("train"))
    assert "expected 8144" in message
    assert "--download" not in message  # not downloadable: no such hint


def test_stanford_cars_without_test_labels(tmp_path):
    write_stanford_cars(tmp_path)
    (tmp_path / "stanford_cars" / "cars_test_annos_withlabels.mat").unlink()
    message = one_line_missing(lambda: StanfordCars(root=tmp_path).split("test"))
    assert "test split unreadable" in message and StanfordCars.layout in message


def _assert_cars(plugin, written):
    """Both splits as written, one image per class, each its class's colour."""
    assert plugin.class_names()[0] == "AM General Hummer SUV 2000"
    for split in ("train", "test"):
        ids, labels = zip(*written[split], strict=True)
        assert_split(plugin, split, list(labels), list(ids))
    image, y = plugin.split("test").images[7]
    assert_solid(image, class_colour(y))
    assert plugin.validate()["test"]["per_class"] == [1] * 196


@pytest.mark.parametrize("folder", ["cars", "stanford_cars"])
def test_stanford_cars_reads_the_class_folders_vlm4cluster_uses(tmp_path, folder):
    names = car_names()
    written = write_stanford_cars_folders(tmp_path, names, n_train=1, n_test=1, folder=folder)
    plugin = StanfordCars(root=tmp_path, expected_counts={"train": 196, "test": 196})
    assert plugin.class_names() == sorted(names)  # the folder names, in ImageFolder's order
    _assert_cars(plugin, written)
    # the same images in torchvision's layout too: the class folders are read
    write_stanford_cars(tmp_path, names=names, n_train=1, n_test=1)
    assert StanfordCars(root=tmp_path).class_names() == sorted(names)


def test_stanford_cars_class_folders_must_match_across_splits(tmp_path):
    write_stanford_cars_folders(tmp_path, car_names(195), n_train=1, n_test=1)
    message = one_line_missing(lambda: StanfordCars(root=tmp_path).split("train"))
    assert "195 class folders, expected 196" in message and StanfordCars.layout in message
    (tmp_path / "cars" / "test" / "Made Up Sedan 2192").mkdir()
    message = one_line_missing(lambda: StanfordCars(root=tmp_path).class_names())
    assert "train/ and test/ differ in class folders, e.g. 'Made Up Sedan 2192'" in message


# ---------------------------------------------------------------------------------------------
# Oxford-IIIT Pet


def test_oxford_pets_trainval_is_train(tmp_path):
    written = write_oxford_pets(tmp_path, n_trainval=2, n_test=1)
    plugin = OxfordPets(root=tmp_path, expected_counts={"train": 74, "test": 37})
    names = plugin.class_names()
    assert names == [pet_class_name(b) for b in PET_BREEDS]
    assert names[:3] == ["Abyssinian", "American Bulldog", "American Pit Bull Terrier"]
    assert_split(plugin, "train", [y for _, y in written["trainval"]],
                 [i for i, _ in written["trainval"]])  # fmt: skip
    assert_split(plugin, "test", [y for _, y in written["test"]], [i for i, _ in written["test"]])
    image, y = plugin.split("train").images[40]
    assert y == 20 and names[y] == "Maine Coon"
    assert_solid(image, class_colour(y))
    assert plugin.validate()["train"]["per_class"] == [2] * 37


def test_oxford_pets_test_list_missing_a_breed(tmp_path):
    write_oxford_pets(tmp_path)
    test_list = tmp_path / "oxford-iiit-pet" / "annotations" / "test.txt"
    lines = test_list.read_text().splitlines(keepends=True)
    test_list.write_text("".join(lines[:-1]))  # no yorkshire_terrier in the test list
    message = one_line_missing(lambda: OxfordPets(root=tmp_path).split("train"))
    assert "the trainval split lists 37 classes, the test split 36" in message


# ---------------------------------------------------------------------------------------------
# Places365


def test_places365_small_images_val_as_test(tmp_path, monkeypatch):
    categories = places_categories()
    written = write_places365(tmp_path, categories, n_train=1, n_val=1)
    patch_places365_md5s(monkeypatch, tmp_path)
    plugin = Places365(root=tmp_path, expected_counts={"train": 365, "test": 365})
    names = plugin.class_names()
    assert len(names) == 365 and names[0] == "airfield" and names[-1] == "zen garden"
    assert names[1] == "apartment building outdoor" and names[2] == "bus interior"
    for split in ("train", "test"):
        ids, labels = zip(*written[split], strict=True)
        assert_split(plugin, split, list(labels), list(ids))
    assert plugin.split("train").sample_ids[1] == (
        "data_256_standard/a/apartment_building/outdoor/00000001.jpg"
    )
    image, y = plugin.split("test").images[300]
    assert_solid(image, class_colour(y))
    report = plugin.validate()
    assert report["test"]["per_class"] == [1] * 365


def test_places365_needs_the_checked_lists(tmp_path, monkeypatch):
    write_places365(tmp_path, places_categories(5))
    message = one_line_missing(lambda: Places365(root=tmp_path).split("test"))
    assert "corrupted" in message and "categories_places365.txt" in message
    patch_places365_md5s(monkeypatch, tmp_path)
    (tmp_path / "val_256" / "Places365_val_00000003.jpg").unlink()
    message = one_line_missing(lambda: Places365(root=tmp_path).split("test"))
    assert "1 of the 5 listed test images are absent" in message


def test_scene_names():
    assert scene_name("/a/airfield") == "airfield"
    assert scene_name("/a/apartment_building/outdoor") == "apartment building outdoor"
    assert scene_name("/s/swimming_pool/indoor") == "swimming pool indoor"


# ---------------------------------------------------------------------------------------------
# ImageNet shift sets: wnid tables


def test_imagenet_wnid_tables():
    assert len(IMAGENET_WNIDS) == 1000 and list(IMAGENET_WNIDS) == sorted(set(IMAGENET_WNIDS))
    assert all(re.fullmatch(r"n\d{8}", w) for w in IMAGENET_WNIDS)
    position = {w: i for i, w in enumerate(IMAGENET_WNIDS)}
    for wnids, indices in ((IMAGENET_A_WNIDS, IMAGENET_A_INDICES),
                           (IMAGENET_R_WNIDS, IMAGENET_R_INDICES)):  # fmt: skip
        assert len(wnids) == 200 and list(wnids) == sorted(set(wnids))
        assert tuple(position[w] for w in wnids) == indices
    assert len(set(IMAGENET_A_WNIDS) & set(IMAGENET_R_WNIDS)) == 86
    # the subsets used by imagenet10/imagenet-dogs are ImageNet classes too
    from laicbench.datasets.imagenet_classes import IMAGENET10_WNIDS, IMAGENET_DOGS_WNIDS

    assert set(IMAGENET10_WNIDS) | set(IMAGENET_DOGS_WNIDS) <= set(IMAGENET_WNIDS)


def test_imagenet_wnids_agree_with_timm_where_installed():
    timm = pytest.importorskip("timm")
    info = Path(timm.__file__).parent / "data" / "_info"
    for name, wnids in (("imagenet_synsets.txt", IMAGENET_WNIDS),
                        ("imagenet_a_synsets.txt", IMAGENET_A_WNIDS),
                        ("imagenet_r_synsets.txt", IMAGENET_R_WNIDS)):  # fmt: skip
        if not (info / name).is_file():
            pytest.skip(f"timm has no {name}")
        assert tuple((info / name).read_text().split()) == wnids


def test_shift_class_names_are_open_clips_imagenet_names():
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    assert ImageNetSketch().class_names() == list(IMAGENET_CLASSNAMES)
    assert ImageNetV2().class_names() == list(IMAGENET_CLASSNAMES)
    assert ImageNetC().class_names() == list(IMAGENET_CLASSNAMES)
    a, r = ImageNetA().class_names(), ImageNetR().class_names()
    assert a == [IMAGENET_CLASSNAMES[i] for i in IMAGENET_A_INDICES]
    assert r == [IMAGENET_CLASSNAMES[i] for i in IMAGENET_R_INDICES]
    assert a[0] == "stingray" and r[0] == "goldfish"
    assert imagenet_names(["n01440764"]) == [IMAGENET_CLASSNAMES[0]]
    # the ImageNet-1K label of each shift-set label (for heads trained on imagenet)
    assert ImageNetA().imagenet_indices() == list(IMAGENET_A_INDICES)
    assert ImageNetR().imagenet_indices() == list(IMAGENET_R_INDICES)
    for cls in (ImageNetV2, ImageNetSketch, ImageNetC):
        assert cls().imagenet_indices() == list(range(1000))


# ---------------------------------------------------------------------------------------------
# ImageNet shift sets: reading


@pytest.mark.parametrize(
    ("cls", "wnids", "indices"),
    [(ImageNetA, IMAGENET_A_WNIDS, IMAGENET_A_INDICES),
     (ImageNetR, IMAGENET_R_WNIDS, IMAGENET_R_INDICES)],
)  # fmt: skip
def test_imagenet_a_r_200_classes_train_is_test(cls, wnids, indices, tmp_path):
    folder = tmp_path / cls.folder_name
    # the 200 folders in reverse order on disk, colours by ImageNet index; an extra folder and
    # a stray file at the top are ignored
    written = write_class_folders(folder, list(reversed(wnids)), n_per_class=2,
                                  colour_of=list(reversed(indices)))  # fmt: skip
    write_class_folders(folder, ["n15075141"], n_per_class=1)
    (folder / "README.txt").write_text("not a class")
    plugin = cls(root=tmp_path, expected_counts={"train": 400, "test": 400})
    labels = [y for y in range(200) for _ in range(2)]  # position in the sorted wnid list
    assert_split(plugin, "test", labels, written)
    assert_split(plugin, "train", labels, written)  # the same images (test only)
    assert plugin.split("train") is plugin.split("test")
    image, y = plugin.split("test").images[251]
    assert y == 125 and plugin.split("test").sample_ids[251].startswith(f"{wnids[125]}/")
    assert_solid(image, class_colour(indices[125]))
    assert plugin.validate()["train"]["per_class"] == [2] * 200
    assert fresh_ids(plugin, "train") == written
    message = one_line_missing(lambda: cls(root=tmp_path).split("test"))
    assert f"expected {cls.expected_counts['test']}" in message
    assert "test only" in message  # the layout says so


def test_imagenet_r_missing_wnid_folder(tmp_path):
    write_class_folders(tmp_path / "imagenet-r", IMAGENET_R_WNIDS[:-1])
    message = one_line_missing(lambda: ImageNetR(root=tmp_path).split("train"))
    assert f"1 class folder(s) absent from {tmp_path / 'imagenet-r'}" in message
    assert IMAGENET_R_WNIDS[-1] in message and ImageNetR.layout in message


def test_imagenet_v2_index_folders(tmp_path):
    folders = [str(i) for i in range(1000)]
    write_class_folders(tmp_path / "imagenet-v2", folders, suffix=".jpeg",
                        colour_of=list(range(1000)))  # fmt: skip
    plugin = ImageNetV2(root=tmp_path, expected_counts={"train": 1000, "test": 1000})
    data = plugin.split("test")
    # folders sorted as strings ("0", "1", "10", ...), label = the folder's number
    assert data.sample_ids[:3] == ["0/0_0.jpeg", "1/1_0.jpeg", "10/10_0.jpeg"]
    assert data.labels.tolist() == [int(i.split("/")[0]) for i in data.sample_ids]
    image, y = data.images[2]
    assert y == 10
    assert_solid(image, class_colour(10))
    assert plugin.split("train").sample_ids == data.sample_ids
    assert plugin.validate()["test"]["per_class"] == [1] * 1000
    (tmp_path / "imagenet-v2" / "999" / "999_0.jpeg").unlink()
    message = one_line_missing(lambda: ImageNetV2(root=tmp_path).split("test"))
    assert "999" in message


def test_imagenet_sketch_wnid_folders(tmp_path):
    written = write_class_folders(tmp_path / "imagenet-sketch", IMAGENET_WNIDS, suffix=".JPEG")
    plugin = ImageNetSketch(root=tmp_path, expected_counts={"train": 1000, "test": 1000})
    assert_split(plugin, "test", list(range(1000)), written)
    assert plugin.split("train").sample_ids == written
    image, y = plugin.split("test").images[999]
    assert_solid(image, class_colour(999))


def test_imagenet_c_corruption_and_severity(tmp_path):
    write_class_folders(tmp_path / "imagenet-c" / "gaussian_noise" / "1", IMAGENET_WNIDS,
                        suffix=".JPEG")  # fmt: skip
    fog = write_class_folders(tmp_path / "imagenet-c" / "fog" / "3", IMAGENET_WNIDS,
                              n_per_class=1, suffix=".JPEG",
                              colour_of=[999 - j for j in range(1000)])  # fmt: skip
    counts = {"train": 1000, "test": 1000}
    default = ImageNetC(root=tmp_path, expected_counts=counts)
    assert (default.corruption, default.severity) == ("gaussian_noise", 1)
    assert default.base == tmp_path / "imagenet-c" / "gaussian_noise" / "1"
    assert_split(default, "test", list(range(1000)))
    plugin = ImageNetC(root=tmp_path, corruption="fog", severity=3, expected_counts=counts)
    assert_split(plugin, "train", list(range(1000)), fog)
    assert_solid(plugin.split("test").images[0][0], class_colour(999))
    assert "imagenet-c/fog/3/" in plugin.layout
    message = one_line_missing(
        lambda: ImageNetC(root=tmp_path, corruption="snow", severity=5).split("test")
    )
    assert "no folder" in message and "imagenet-c/snow/5/<wnid>" in message
    with pytest.raises(UserError, match="unknown corruption 'rain'"):
        ImageNetC(corruption="rain")
    with pytest.raises(UserError, match="severity must be one of 1..5"):
        ImageNetC(severity=6)
    assert len(CORRUPTIONS) == 19 and CORRUPTIONS[0] == "gaussian_noise"


def test_imagenet_c_registered_variant(tmp_path):
    variant = imagenet_c_variant("jpeg_compression", 5)
    assert imagenet_c_variant("jpeg_compression", 5) is variant  # registered once
    name = "imagenet-c-jpeg-compression-5"
    assert registry.datasets.get(name) is variant and variant.name == name
    assert variant.suites == {} and variant.test_only
    assert "jpeg_compression at severity 5" in registry.datasets.entry(name).description
    plugin = variant(root=tmp_path)
    assert plugin.base == tmp_path / "imagenet-c" / "jpeg_compression" / "5"
    message = one_line_missing(lambda: plugin.split("test"))
    assert repr(name) in message and "jpeg_compression/5" in message
    with pytest.raises(UserError, match="unknown corruption"):
        imagenet_c_variant("rain", 1)


def test_imagenet_c_variant_from_a_plugin_file(cli, write_plugin, tmp_path):
    folder = write_plugin(
        """
        from laicbench.datasets.imagenet_c import imagenet_c_variant

        imagenet_c_variant("fog", 2)
        """
    )
    result = cli("list", "datasets", "--include-path", folder)
    assert result.status == 0, result.err
    assert "imagenet-c-fog-2" in result.out
    result = cli("validate", "--datasets", "imagenet-c-fog-2", "--data-root", tmp_path,
                 "--include-path", folder)  # fmt: skip
    assert result.status != 0
    assert "imagenet-c/fog/2/<wnid>" in result.err


# ---------------------------------------------------------------------------------------------
# end to end: features and a run on a fine-grained set and a shift set


def test_run_on_flowers102_and_imagenet_r_fixtures(cli, tmp_path, monkeypatch):
    import json

    root, results = tmp_path / "data", tmp_path / "results"
    write_flowers102(root, per_part={"train": 1, "val": 1, "test": 1})
    patch_flowers102_md5s(monkeypatch, root / "flowers-102")
    write_class_folders(root / "imagenet-r", IMAGENET_R_WNIDS)
    monkeypatch.setattr(Flowers102, "expected_counts", {"train": 102, "test": 102})
    monkeypatch.setattr(ImageNetR, "expected_counts", {"train": 200, "test": 200})
    result = cli(
        "run", "--methods", "clip-kmeans", "--datasets", "flowers102,imagenet-r", "--seeds", "0",
        "--backbone", "tiny-random", "--data-root", root, "--cache-dir", tmp_path / "cache",
        "--results-dir", results, "--device", "cpu", "--workers", "0", "--batch-size", "64",
    )  # fmt: skip
    assert result.status == 0, result.out + result.err
    records = [json.loads(p.read_text()) for p in results.rglob("*.json")]
    by_dataset = {r["dataset"]["name"]: r for r in records if "dataset" in r}
    assert set(by_dataset) == {"flowers102", "imagenet-r"}
    for name, n_classes, n in (("flowers102", 102, (102, 102)), ("imagenet-r", 200, (200, 200))):
        record = by_dataset[name]
        assert record["status"] == "ok", record.get("error")
        assert record["dataset"]["n_classes"] == n_classes
        assert (record["dataset"]["info"]["n_train"], record["dataset"]["info"]["n_test"]) == n
    # a test-only set's images are extracted once: its train split reads the test entry
    keys = {name: r["dataset"]["info"]["cache_keys"] for name, r in by_dataset.items()}
    assert keys["imagenet-r"]["train"] == keys["imagenet-r"]["test"]
    assert keys["flowers102"]["train"] != keys["flowers102"]["test"]
