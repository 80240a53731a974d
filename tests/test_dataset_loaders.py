"""The eight benchmark dataset plugins, each on tiny files in its real on-disk format."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets as tvd
from dataset_fixtures import (
    CIFAR10_NAMES,
    CIFAR100_SUPERCLASSES,
    DTD_CLASSES,
    STL10_NAMES,
    cifar100_coarse_of_fine,
    class_colour,
    patch_torchvision_md5s,
    pattern_image,
    ucf_class_folders,
    write_cifar10,
    write_cifar100,
    write_dtd,
    write_imagenet,
    write_jpeg,
    write_stl10,
    write_ucf101,
)
from laicbench.datasets.cifar import FINE_TO_COARSE, Cifar10, Cifar20
from laicbench.datasets.dtd import Dtd
from laicbench.datasets.imagenet import ImageNet, ImageNet10, ImageNetDogs
from laicbench.datasets.imagenet_classes import IMAGENET10_WNIDS, IMAGENET_DOGS_WNIDS, WNID_NAMES
from laicbench.datasets.imagenet_shift_classes import IMAGENET_WNIDS
from laicbench.datasets.stl10 import Stl10
from laicbench.datasets.ucf101 import Ucf101, split_camel_case
from PIL import Image

from laicbench.api import registry
from laicbench.api.dataset import PAPER_SUITE, suite_members
from laicbench.data.image_dataset import DatasetMissingError, ImageDataset

ALL = {
    "cifar10": Cifar10,
    "cifar20": Cifar20,
    "stl10": Stl10,
    "imagenet10": ImageNet10,
    "imagenet-dogs": ImageNetDogs,
    "dtd": Dtd,
    "ucf101": Ucf101,
    "imagenet": ImageNet,
}
DATA_NOUN = Path("/usr/share/wordnet/data.noun")


def assert_split(
    plugin: ImageDataset, split: str, labels: list[int], ids: list[str] | None = None
) -> None:
    """`split` has exactly `labels` (and `ids`), unique ids, and items agree with the labels."""
    data = plugin.split(split)
    assert data.labels.dtype == np.int64
    assert data.labels.tolist() == labels
    assert len(data.images) == len(labels) == len(data.sample_ids)
    assert len(set(data.sample_ids)) == len(data.sample_ids)
    assert all(isinstance(i, str) for i in data.sample_ids)
    if ids is not None:
        assert data.sample_ids == ids
    for i in {0, len(labels) - 1}:
        image, label = data.images[i]
        assert isinstance(image, Image.Image) and image.mode == "RGB"
        assert label == labels[i]
    # DataLoader workers started by spawn receive the images object pickled
    copy = pickle.loads(pickle.dumps(data.images))
    assert len(copy) == len(labels) and copy[0][1] == labels[0]


def assert_solid(image: Image.Image, colour, size=(12, 10)) -> None:
    """A JPEG of one `colour` (within JPEG error) and `size` (width, height)."""
    assert image.mode == "RGB" and image.size == size
    mean = np.asarray(image, dtype=float).reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(mean, colour, atol=4)


def fresh_ids(plugin: ImageDataset, split: str) -> list[str]:
    """The sample ids of a new instance of `plugin`'s class on the same root."""
    return (
        type(plugin)(root=plugin.root, expected_counts=plugin.counts).read_split(split).sample_ids
    )


# ---------------------------------------------------------------------------------------------
# registration and static tables


def test_modules_register_the_eight_benchmarks():
    for name, cls in ALL.items():
        assert registry.datasets.get(name) is cls
        assert cls.name == name
    assert suite_members(PAPER_SUITE) == [
        "cifar10", "cifar20", "stl10", "imagenet10", "imagenet-dogs", "dtd", "ucf101", "imagenet"
    ]  # fmt: skip
    assert {n: c.n_classes for n, c in ALL.items()} == {
        "cifar10": 10,
        "cifar20": 20,
        "stl10": 10,
        "imagenet10": 10,
        "imagenet-dogs": 15,
        "dtd": 47,
        "ucf101": 101,
        "imagenet": 1000,
    }
    assert {n: c.expected_counts["train"] for n, c in ALL.items()} == {
        "cifar10": 50_000,
        "cifar20": 50_000,
        "stl10": 5_000,
        "imagenet10": 13_000,
        "imagenet-dogs": 19_500,
        "dtd": 3_760,
        "ucf101": 9_537,
        "imagenet": 1_281_167,
    }
    assert {n: c.expected_counts["test"] for n, c in ALL.items()} == {
        "cifar10": 10_000,
        "cifar20": 10_000,
        "stl10": 8_000,
        "imagenet10": 500,
        "imagenet-dogs": 750,
        "dtd": 1_880,
        "ucf101": 3_783,
        "imagenet": 50_000,
    }
    for name, cls in ALL.items():
        assert cls.resize_ratio == (256 / 224 if name.startswith("imagenet") else 1.0)


def test_cifar20_table_agrees_with_the_superclass_lists():
    assert len(FINE_TO_COARSE) == 100
    assert np.bincount(FINE_TO_COARSE).tolist() == [5] * 20
    coarse_of = cifar100_coarse_of_fine()
    assert [coarse_of[f] for f in range(100)] == list(FINE_TO_COARSE)


def test_wnid_lists_and_names():
    assert len(IMAGENET10_WNIDS) == 10 and len(IMAGENET_DOGS_WNIDS) == 15
    assert IMAGENET10_WNIDS[0] == "n02056570" and IMAGENET_DOGS_WNIDS[-1] == "n02112137"
    assert set(WNID_NAMES) == set(IMAGENET10_WNIDS) | set(IMAGENET_DOGS_WNIDS)
    assert ImageNet10().class_names()[:3] == ["king penguin", "Maltese dog", "snow leopard"]
    assert ImageNetDogs().class_names()[5] == "golden retriever"


@pytest.mark.skipif(not DATA_NOUN.is_file(), reason="WordNet 3.0 data.noun not installed")
def test_wnid_names_are_first_wordnet_lemmas():
    wanted = {w[1:]: w for w in WNID_NAMES}
    first_lemma = {}
    with open(DATA_NOUN, encoding="latin-1") as f:
        for line in f:
            offset = line[:8]
            if offset in wanted:
                first_lemma[wanted[offset]] = line.split()[4].replace("_", " ")
    assert first_lemma == WNID_NAMES


def test_split_camel_case():
    assert split_camel_case("ApplyEyeMakeup") == "Apply Eye Makeup"
    assert split_camel_case("YoYo") == "Yo Yo"
    assert split_camel_case("HandstandPushups") == "Handstand Pushups"


# ---------------------------------------------------------------------------------------------
# every dataset: missing files and wrong counts


@pytest.mark.parametrize("name", list(ALL))
def test_missing_dataset_names_layout_and_root(name, tmp_path):
    plugin = ALL[name](root=tmp_path / "nothing-here")
    with pytest.raises(DatasetMissingError) as err:
        plugin.split("train")
    message = str(err.value)
    assert plugin.layout and plugin.layout in message
    assert str(tmp_path / "nothing-here") in message
    assert repr(name) in message


# ---------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-20


@pytest.fixture
def cifar10_root(tmp_path, monkeypatch):
    labels = write_cifar10(tmp_path, batch_sizes=(4, 4, 4, 4, 4), n_test=10)
    patch_torchvision_md5s(monkeypatch, tvd.CIFAR10, tmp_path / "cifar-10-batches-py")
    return tmp_path, labels


def test_cifar10_reads_torchvision_batches(cifar10_root):
    root, labels = cifar10_root
    plugin = Cifar10(root=root, expected_counts={"train": 20, "test": 10})
    assert plugin.class_names() == list(CIFAR10_NAMES)
    ids = [f"data_batch_{b}:{r}" for b in range(1, 6) for r in range(4)]
    assert_split(plugin, "train", labels["train"], ids)
    assert_split(plugin, "test", labels["test"], [f"test_batch:{r}" for r in range(10)])
    train = plugin.split("train")
    for i in (0, 5, 19):  # whole images, orientation included, in batch order
        image, label = train.images[i]
        assert image.size == (32, 32)
        np.testing.assert_array_equal(np.asarray(image), pattern_image(i, label, 32, 32))
    assert fresh_ids(plugin, "train") == train.sample_ids
    report = plugin.validate()
    assert report["train"] == {"count": 20, "per_class": [2] * 10}
    assert report["test"]["count"] == 10 and sum(report["test"]["per_class"]) == 10


def test_cifar10_unequal_batches_get_split_row_ids(tmp_path, monkeypatch):
    labels = write_cifar10(tmp_path, batch_sizes=(3, 4, 4, 4, 6))
    patch_torchvision_md5s(monkeypatch, tvd.CIFAR10, tmp_path / "cifar-10-batches-py")
    plugin = Cifar10(root=tmp_path, expected_counts={"train": 21, "test": 10})
    assert_split(plugin, "train", labels["train"], [f"train:{i}" for i in range(21)])
    image, label = plugin.split("train").images[20]
    np.testing.assert_array_equal(np.asarray(image), pattern_image(20, label, 32, 32))


def test_cifar10_default_counts_mismatch(cifar10_root):
    root, _ = cifar10_root
    with pytest.raises(DatasetMissingError, match=r"train split has 20 images, expected 50000"):
        Cifar10(root=root).split("train")


def test_cifar10_real_md5s_reject_other_files(tmp_path):
    write_cifar10(tmp_path)  # torchvision's real md5s are not patched: "corrupted"
    with pytest.raises(DatasetMissingError, match="cifar-10-batches-py") as err:
        Cifar10(root=tmp_path, expected_counts={"train": 20, "test": 10}).split("test")
    assert "corrupted" in str(err.value)


def test_cifar10_absent_batch_is_missing(cifar10_root):
    root, _ = cifar10_root
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetMissingError, match="CIFAR10 train files absent or corrupted"):
        Cifar10(root=root, expected_counts={"train": 20, "test": 10}).split("train")


def test_cifar20_maps_fine_labels_to_superclasses(tmp_path, monkeypatch):
    written = write_cifar100(tmp_path, n_train=100, n_test=50)
    patch_torchvision_md5s(monkeypatch, tvd.CIFAR100, tmp_path / "cifar-100-python")
    plugin = Cifar20(root=tmp_path, expected_counts={"train": 100, "test": 50})
    names = plugin.class_names()
    assert names == [n.replace("_", " ") for n in CIFAR100_SUPERCLASSES]
    assert names[0] == "aquatic mammals" and names[9] == "large man-made outdoor things"
    # the loader's labels equal the pickles' own coarse_labels (from the membership lists)
    assert_split(plugin, "train", written["train"]["coarse"], [f"train:{i}" for i in range(100)])
    assert_split(plugin, "test", written["test"]["coarse"])
    train = plugin.split("train")
    for i in (0, 1, 99):
        image, label = train.images[i]
        assert label == written["train"]["coarse"][i]
        fine = written["train"]["fine"][i]
        np.testing.assert_array_equal(np.asarray(image), pattern_image(i, fine, 32, 32))
    assert plugin.validate()["train"]["per_class"] == [5] * 20


# ---------------------------------------------------------------------------------------------
# STL-10


def test_stl10_reads_binary_files(tmp_path, monkeypatch):
    labels = write_stl10(tmp_path, n_train=20, n_test=10)
    patch_torchvision_md5s(monkeypatch, tvd.STL10, tmp_path / "stl10_binary")
    plugin = Stl10(root=tmp_path, expected_counts={"train": 20, "test": 10})
    assert plugin.class_names() == list(STL10_NAMES)
    assert_split(plugin, "train", labels["train"], [f"train_X.bin:{i}" for i in range(20)])
    assert_split(plugin, "test", labels["test"], [f"test_X.bin:{i}" for i in range(10)])
    test = plugin.split("test")
    for i in (0, 3, 9):  # column-major storage read back in the right orientation
        image, label = test.images[i]
        assert image.size == (96, 96) and label == labels["test"][i]
        np.testing.assert_array_equal(np.asarray(image), pattern_image(i, label, 96, 96))
    assert fresh_ids(plugin, "test") == test.sample_ids
    report = plugin.validate()
    assert report["train"]["per_class"] == [2] * 10 and report["test"]["per_class"] == [1] * 10
    with pytest.raises(DatasetMissingError, match="expected 5000"):
        Stl10(root=tmp_path).split("train")


def test_stl10_without_class_names_is_missing(tmp_path, monkeypatch):
    write_stl10(tmp_path, class_names=False)
    patch_torchvision_md5s(monkeypatch, tvd.STL10, tmp_path / "stl10_binary")
    with pytest.raises(DatasetMissingError, match="class_names.txt"):
        Stl10(root=tmp_path).class_names()


# ---------------------------------------------------------------------------------------------
# DTD


def test_dtd_train_is_train_plus_val_of_partition_1(tmp_path):
    lines = write_dtd(tmp_path, per_part={"train": 2, "val": 1, "test": 1})
    plugin = Dtd(root=tmp_path, expected_counts={"train": 47 * 3, "test": 47})
    assert plugin.class_names() == list(DTD_CLASSES)
    label = {c: i for i, c in enumerate(DTD_CLASSES)}
    train_lines = lines["train"] + lines["val"]
    assert_split(
        plugin,
        "train",
        [label[line.split("/")[0]] for line in train_lines],
        [f"images/{line}" for line in train_lines],
    )
    assert_split(plugin, "test", list(range(47)), [f"images/{line}" for line in lines["test"]])
    train = plugin.split("train")
    for i in (0, 47 * 2, 47 * 3 - 1):  # first train image, first val image, last val image
        image, y = train.images[i]
        assert_solid(image, class_colour(y))
    assert plugin.validate()["train"]["per_class"] == [3] * 47
    assert fresh_ids(plugin, "train") == train.sample_ids
    with pytest.raises(DatasetMissingError, match="has 141 images, expected 3760"):
        Dtd(root=tmp_path).split("train")


def test_dtd_listed_image_absent(tmp_path):
    lines = write_dtd(tmp_path)
    (tmp_path / "dtd" / "dtd" / "images" / lines["val"][5]).unlink()
    with pytest.raises(DatasetMissingError, match=r"1 listed train images are absent"):
        Dtd(root=tmp_path, expected_counts={"train": 94, "test": 47}).split("train")


def test_dtd_split_lists_must_cover_the_same_classes(tmp_path):
    lines = write_dtd(tmp_path)
    val1 = tmp_path / "dtd" / "dtd" / "labels" / "val1.txt"
    val1.write_text("\n".join(lines["val"][:-1]) + "\n")  # no zigzagged image in val1
    with pytest.raises(
        DatasetMissingError, match=r"val1.txt lists 46 classes, labels/test1.txt 47"
    ):
        Dtd(root=tmp_path).split("train")


# ---------------------------------------------------------------------------------------------
# ImageNet-10, ImageNet-Dogs, ImageNet


def test_imagenet10_reads_only_its_wnids(tmp_path):
    # mixed extensions, an extra class folder, a stray non-image file, a greyscale image
    written = write_imagenet(tmp_path, IMAGENET10_WNIDS, n_train=3, n_val=1,
                             suffixes=(".JPEG", ".jpg", ".png"))  # fmt: skip
    write_imagenet(tmp_path, ["n01440764"], n_train=2, n_val=2)
    (tmp_path / "imagenet" / "train" / IMAGENET10_WNIDS[0] / "notes.txt").write_text("x")
    grey = tmp_path / "imagenet" / "val" / IMAGENET10_WNIDS[9] / "zz_grey.jpeg"
    Image.new("L", (12, 10), 90).save(grey)
    plugin = ImageNet10(root=tmp_path, expected_counts={"train": 30, "test": 11})
    assert plugin.class_names()[-1] == "orange"
    # sorted by wnid; the ImageNet-10 list is sorted, so labels come in list order
    assert_split(
        plugin, "train", [y for y in range(10) for _ in range(3)], sorted(written["train"])
    )
    test_ids = sorted(written["val"]) + [f"val/{IMAGENET10_WNIDS[9]}/zz_grey.jpeg"]
    assert_split(plugin, "test", [*range(10), 9], test_ids)
    test = plugin.split("test")
    assert_solid(test.images[3][0], class_colour(3))
    image, label = test.images[10]
    assert label == 9 and image.mode == "RGB" and image.getpixel((0, 0)) == (90, 90, 90)
    train = plugin.split("train")
    assert {Path(i).suffix for i in train.sample_ids} == {".JPEG", ".jpg", ".png"}
    assert fresh_ids(plugin, "train") == train.sample_ids
    assert plugin.validate()["train"]["per_class"] == [3] * 10


def test_imagenet_dogs_labels_follow_the_list(tmp_path):
    write_imagenet(tmp_path, IMAGENET_DOGS_WNIDS, n_train=1, n_val=1)
    plugin = ImageNetDogs(root=tmp_path, expected_counts={"train": 15, "test": 15})
    assert len(plugin.class_names()) == 15 and plugin.class_names()[-1] == "chow"
    assert_split(plugin, "train", list(range(15)))
    data = plugin.split("test")
    for i in (0, 7, 14):
        image, y = data.images[i]
        assert data.sample_ids[i].startswith(f"val/{IMAGENET_DOGS_WNIDS[y]}/")
        assert_solid(image, class_colour(y))
    with pytest.raises(DatasetMissingError, match="has 15 images, expected 750"):
        ImageNetDogs(root=tmp_path).split("test")


def test_imagenet_subset_label_is_position_in_list_not_sorted_rank(tmp_path):
    class Reversed(ImageNet10):  # a subset whose list is not sorted (not registered)
        subset_wnids = tuple(reversed(IMAGENET10_WNIDS))

    write_imagenet(tmp_path, IMAGENET10_WNIDS, n_train=1, n_val=1)
    data = Reversed(root=tmp_path, expected_counts={"train": 10, "test": 10}).split("test")
    assert data.labels.tolist() == list(range(9, -1, -1))  # files in sorted wnid order
    assert data.sample_ids[0].startswith(f"val/{IMAGENET10_WNIDS[0]}/")
    assert Reversed().class_names()[0] == "orange"


def test_imagenet_subset_missing_wnid_folder(tmp_path):
    write_imagenet(tmp_path, IMAGENET_DOGS_WNIDS[:-1])
    with pytest.raises(DatasetMissingError, match=IMAGENET_DOGS_WNIDS[-1]):
        ImageNetDogs(root=tmp_path).split("train")


def test_imagenet_images_are_read_lazily(tmp_path):
    written = write_imagenet(tmp_path, IMAGENET10_WNIDS, n_train=1, n_val=1)
    data = ImageNet10(root=tmp_path, expected_counts={"train": 10, "test": 10}).split("test")
    write_jpeg(tmp_path / "imagenet" / written["val"][4], (250, 250, 0))  # after listing
    assert_solid(data.images[4][0], (250, 250, 0))


def test_imagenet_1k_sorted_wnid_folders(tmp_path):
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    wnids = list(reversed(IMAGENET_WNIDS))  # written out of order: labels follow the sorted ids
    write_imagenet(tmp_path, wnids, n_train=1, n_val=1)
    (tmp_path / "imagenet" / "val" / ".ipynb_checkpoints").mkdir()  # hidden: not a class
    plugin = ImageNet(root=tmp_path, expected_counts={"train": 1000, "test": 1000})
    assert plugin.class_names() == list(IMAGENET_CLASSNAMES)
    order = sorted(wnids)
    data = plugin.split("test")
    assert data.labels.tolist() == list(range(1000))
    assert data.sample_ids[:2] == [
        f"val/{order[0]}/{order[0]}_0.JPEG",
        f"val/{order[1]}/{order[1]}_0.JPEG",
    ]
    image, y = data.images[500]
    assert y == 500 and data.sample_ids[500].startswith(f"val/{order[500]}/")
    assert_solid(image, class_colour(wnids.index(order[500])))
    assert plugin.validate()["train"]["per_class"] == [1] * 1000


def test_imagenet_1k_needs_1000_folders(tmp_path):
    write_imagenet(tmp_path, IMAGENET_WNIDS[:999], n_train=1, n_val=0)
    (tmp_path / "imagenet" / "val").mkdir()
    with pytest.raises(
        DatasetMissingError, match=f"1 of the 1000 wnids absent .{IMAGENET_WNIDS[-1]}"
    ):
        ImageNet(root=tmp_path).split("train")
    with pytest.raises(DatasetMissingError, match="absent"):
        ImageNet(root=tmp_path).class_names()


def test_imagenet_1k_folders_are_checked_against_the_standard_wnids(tmp_path):
    # 1,000 folders, one of them misnamed: an error naming it, not a silently wrong class
    for split in ("train", "val"):
        for wnid in IMAGENET_WNIDS[:999]:
            (tmp_path / "imagenet" / split / wnid).mkdir(parents=True)
        (tmp_path / "imagenet" / split / "n99999999").mkdir()
    with pytest.raises(DatasetMissingError) as err:
        ImageNet(root=tmp_path).split("test")
    message = str(err.value)
    assert (
        "\n" not in message and "1 folder(s) that are not ImageNet-1K wnids (n99999999)" in message
    )
    assert f"1 of the 1000 wnids absent ({IMAGENET_WNIDS[-1]})" in message
    assert "class_names" not in message and ImageNet.layout in message


# ---------------------------------------------------------------------------------------------
# UCF101


def test_ucf101_middle_frames_from_split_1_lists(tmp_path):
    folders = ucf_class_folders(101)
    written = write_ucf101(tmp_path, folders, n_train=2, n_test=1)
    plugin = Ucf101(root=tmp_path, expected_counts={"train": 202, "test": 101})
    names = plugin.class_names()
    assert names[:3] == ["Apply Eye Makeup", "Handstand Pushups", "Yo Yo"] and len(names) == 101
    for split in ("train", "test"):
        ids, labels = zip(*written[split], strict=True)
        assert_split(plugin, split, list(labels), list(ids))
    train = plugin.split("train")
    assert train.sample_ids[2] == "frames/HandstandPushups/v_HandStandPushups_g08_c01.jpg"
    for i in (0, 3, 201):
        image, y = train.images[i]
        assert_solid(image, class_colour(y))
    assert fresh_ids(plugin, "test") == plugin.split("test").sample_ids
    report = plugin.validate()
    assert report["train"]["per_class"] == [2] * 101 and report["test"]["per_class"] == [1] * 101
    with pytest.raises(DatasetMissingError, match="has 202 images, expected 9537"):
        Ucf101(root=tmp_path).split("train")


def test_ucf101_missing_frames_counted(tmp_path):
    written = write_ucf101(tmp_path, ucf_class_folders(5), n_train=2, n_test=1)
    for frame, _ in written["test"][1:4]:
        (tmp_path / "ucf101" / frame).unlink()
    with pytest.raises(DatasetMissingError) as err:
        Ucf101(root=tmp_path).split("test")
    message = str(err.value)
    assert re.search(r"\b3 of the 5 frames of testlist01.txt are absent", message)
    assert str(tmp_path / "ucf101" / written["test"][1][0]) in message


def test_ucf101_train_list_label_must_match_classind(tmp_path):
    write_ucf101(tmp_path, ucf_class_folders(3), n_train=1, n_test=1)
    trainlist = tmp_path / "ucf101" / "ucfTrainTestlist" / "trainlist01.txt"
    trainlist.write_text(trainlist.read_text().replace(".avi 2", ".avi 3"))
    with pytest.raises(DatasetMissingError, match=r"has label 3, classInd.txt says 2"):
        Ucf101(root=tmp_path).split("train")
