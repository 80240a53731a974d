"""A .npz of precomputed features as a --datasets entry."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

K, DIM = 3, 16
NOUN_WORDS = [f"noun{c}_{j}" for c in range(K) for j in range(6)]


def write_features(path: Path, *, nouns: bool = False, drop: tuple[str, ...] = (), **extra) -> Path:
    """Three well separated clusters: 60 train and 30 test points (optionally 18 nouns)."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(K, DIM)) * 4

    def points(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % K
        return (centers[y] + 0.05 * rng.normal(size=(n, DIM))).astype(np.float32), y

    x_train, y_train = points(60)
    x_test, y_test = points(30)
    arrays = {
        "image_train": x_train,
        "image_test": x_test,
        "labels_train": y_train,
        "labels_test": y_test,
        "class_names": np.array(["red", "green", "blue"]),
    }
    if nouns:
        owner = np.repeat(np.arange(K), 6)
        arrays["noun_features"] = centers[owner] + 0.05 * rng.normal(size=(len(owner), DIM))
        arrays["noun_words"] = np.array(NOUN_WORDS)
    arrays.update(extra)
    for key in drop:
        del arrays[key]
    np.savez(path, **arrays)
    return path


def run_args(methods: str, path: Path, results: Path, *extra) -> list:
    return ["run", "--methods", methods, "--datasets", path, "--seeds", "0",
            "--results-dir", results, "--device", "cpu", *extra]  # fmt: skip


def records_in(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.rglob("*.json"))]


def test_clip_kmeans_on_a_features_file(cli, tmp_path):
    path = write_features(tmp_path / "feats.npz")
    results = tmp_path / "results"
    result = cli(*run_args("clip-kmeans", path, results))
    assert result.status == 0, result.out + result.err
    (record,) = records_in(results)
    assert record["status"] == "ok"
    assert record["backbone"] == "features-file"
    assert record["dataset"]["name"] == str(path)
    assert (record["dataset"]["n_classes"], record["dataset"]["n_test"]) == (3, 30)
    info = record["dataset"]["info"]
    assert info["kind"] == "features file"
    assert info["path"] == str(path)
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["has_nouns"] is False
    assert record["metrics"]["acc"] == pytest.approx(100.0)  # the clusters are far apart


def test_relative_path_and_explicit_native_backbone(cli, tmp_path, monkeypatch):
    write_features(tmp_path / "rel.npz")
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    result = cli(*run_args("clip-kmeans", "rel.npz", results, "--backbone", "features-file"))
    assert result.status == 0, result.out + result.err
    (record,) = records_in(results)
    assert record["status"] == "ok"
    assert record["dataset"]["info"]["path"] == str(tmp_path / "rel.npz")


@pytest.mark.parametrize("missing", ["labels_test", "image_train"])
def test_missing_key_is_a_usage_error(cli, tmp_path, missing):
    path = write_features(tmp_path / f"no-{missing}.npz", drop=(missing,))
    results = tmp_path / "results"
    result = cli(*run_args("clip-kmeans", path, results))
    assert result.status == 2
    assert len(result.err_lines) == 1
    line = result.err_lines[0]
    assert f"missing key(s) {missing};" in line
    assert not results.exists()


def _write_bytes(data: bytes):
    return lambda path: path.write_bytes(data)


def _truncated(path: Path) -> None:
    write_features(path, nouns=True)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupted(path: Path) -> None:
    write_features(path)
    data = bytearray(path.read_bytes())
    data[200:400] = bytes(200)  # inside the first member's data
    path.write_bytes(bytes(data))


def _with_nan(key: str):
    def write(path: Path) -> None:
        write_features(path, nouns=True)
        arrays = dict(np.load(path))
        arrays[key] = arrays[key].astype(np.float32)
        arrays[key][3, 2] = np.nan if key != "image_test" else np.inf
        np.savez(path, **arrays)

    return write


def _with_zero_row(key: str):
    def write(path: Path) -> None:
        write_features(path, nouns=True)
        arrays = dict(np.load(path))
        arrays[key][0] = 0
        np.savez(path, **arrays)

    return write


BAD_FILES = {
    "absent": (None, "does not exist"),
    "text-file": (_write_bytes(b"this is not a zip archive"), "not a .npz (zip) archive"),
    "empty-file": (_write_bytes(b""), "an empty file"),
    "truncated": (_truncated, "damaged or truncated .npz"),
    "corrupted": (_corrupted, "damaged or truncated .npz"),
    "nouns-without-words": (
        lambda p: write_features(p, nouns=True, drop=("noun_words",)),
        "noun_features without noun_words",
    ),
    "label-out-of-range": (
        lambda p: write_features(p, labels_test=np.full(30, 3)),
        "labels must be the contiguous class ids 0..K-1",
    ),
    "labels-not-contiguous": (
        lambda p: write_features(
            p,
            drop=("class_names",),
            labels_train=np.arange(60) % 3 * 1000,
            labels_test=np.arange(30) % 3 * 1000,
        ),
        "found 3 distinct values from 0 to 2000",
    ),
    "length-mismatch": (
        lambda p: write_features(p, labels_test=np.zeros(29, dtype=np.int64)),
        "image_test has 30 rows but labels_test 29 values",
    ),
    "string-images": (
        lambda p: write_features(p, image_train=np.array([["a", "b"]] * 60)),
        "image_train must hold numbers",
    ),
    "nan-in-image-train": (_with_nan("image_train"), "image_train has 1 row(s) with NaN or inf"),
    "inf-in-image-test": (_with_nan("image_test"), "image_test has 1 row(s) with NaN or inf"),
    "nan-in-nouns": (_with_nan("noun_features"), "noun_features has 1 row(s) with NaN or inf"),
    "float-labels": (
        lambda p: write_features(p, labels_train=np.arange(60) % 3 + 0.5),
        "labels_train holds non-integer values",
    ),
    "labels-n-by-1": (
        lambda p: write_features(p, labels_test=(np.arange(30) % 3)[:, None]),
        "labels_test must be one-dimensional (n,), got shape (30, 1)",
    ),
    "zero-row-split": (
        lambda p: write_features(
            p, image_test=np.zeros((0, DIM), np.float32), labels_test=np.zeros(0, np.int64)
        ),
        "image_test must be a non-empty (n, d) array",
    ),
    "k-above-test-size": (
        lambda p: write_features(
            p,
            class_names=np.array([f"c{i}" for i in range(40)]),
            labels_train=np.arange(60) % 40,
            labels_test=np.arange(30) % 30,
        ),
        "K = 40 classes but only 30 test samples",
    ),
    "noun-dimension": (
        lambda p: write_features(
            p, nouns=True, noun_features=np.ones((len(NOUN_WORDS), DIM + 1), np.float32)
        ),
        "noun_features have dimension 17, the images 16",
    ),
    "noun-words-length": (
        lambda p: write_features(p, nouns=True, noun_words=np.array(NOUN_WORDS[:-1])),
        "noun_words has 17 entries but noun_features 18 rows",
    ),
    "zero-image-row": (_with_zero_row("image_train"), "image_train has 1 all-zero row(s)"),
    "zero-noun-row": (_with_zero_row("noun_features"), "noun_features has 1 all-zero row(s)"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_features_file_is_a_usage_error(cli, tmp_path, case):
    write, message = BAD_FILES[case]
    path = tmp_path / f"{case}.npz"
    if write is not None:
        write(path)
    results = tmp_path / "results"
    result = cli(*run_args("clip-kmeans", path, results))
    assert result.status == 2
    assert len(result.err_lines) == 1, result.err
    assert message in result.err_lines[0]
    assert "Traceback" not in result.err + result.out
    assert not results.exists()


def test_method_needing_nouns_on_a_file_without_nouns_is_refused_up_front(cli, tmp_path):
    path = write_features(tmp_path / "plain.npz")
    results = tmp_path / "results"
    result = cli(*run_args("clip-kmeans,tac-notrain", path, results))
    assert result.status == 2
    assert result.err_lines == [
        f"laicbench: error: method 'tac-notrain' needs nouns, which dataset {path} cannot give: "
        "this features file stores no noun_features / noun_words; drop 'tac-notrain' from "
        "--methods for this dataset"
    ]
    assert not results.exists()


def test_tac_notrain_uses_the_files_nouns(cli, tmp_path):
    path = write_features(tmp_path / "with-nouns.npz", nouns=True)
    results = tmp_path / "results"
    result = cli(*run_args("tac-notrain", path, results))
    assert result.status == 0, result.out + result.err
    (record,) = records_in(results)
    assert record["status"] == "ok", record.get("error")
    assert record["dataset"]["info"]["has_nouns"] is True
    cluster_nouns = record["artefacts"]["cluster_nouns"]
    assert cluster_nouns
    assert all(word in NOUN_WORDS for words in cluster_nouns.values() for word, _ in words)
    assert record["metrics"]["acc"] == pytest.approx(100.0)


def test_other_backbone_on_a_features_file_is_a_usage_error(cli, tmp_path):
    path = write_features(tmp_path / "feats.npz")
    results = tmp_path / "results"
    result = cli(*run_args("clip-kmeans", path, results, "--backbone", "tiny-random"))
    assert result.status == 2
    assert len(result.err_lines) == 1
    assert "features-file" in result.err_lines[0]
    assert "tiny-random" in result.err_lines[0]
    assert not results.exists()
