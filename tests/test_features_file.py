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


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("absent", "does not exist"),
        ("not-npz", "not a readable .npz"),
        ("nouns-without-words", "noun_features without noun_words"),
        ("label-out-of-range", "labels must lie in [0, K)"),
        ("length-mismatch", "labels and features differ in length"),
    ],
)
def test_bad_features_file_is_a_usage_error(cli, tmp_path, case, message):
    path = tmp_path / f"{case}.npz"
    if case == "not-npz":
        path.write_bytes(b"this is not a zip archive")
    elif case == "nouns-without-words":
        write_features(path, nouns=True, drop=("noun_words",))
    elif case == "label-out-of-range":
        write_features(path, labels_test=np.full(30, 3))
    elif case == "length-mismatch":
        write_features(path, labels_test=np.zeros(29, dtype=np.int64))
    results = tmp_path / "results"
    result = cli(*run_args("clip-kmeans", path, results))
    assert result.status == 2
    assert len(result.err_lines) == 1
    assert message in result.err_lines[0]
    assert not results.exists()


def test_method_needing_nouns_on_a_file_without_nouns_is_an_error_record(cli, tmp_path):
    path = write_features(tmp_path / "plain.npz")
    results = tmp_path / "results"
    result = cli(*run_args("tac-notrain", path, results))
    assert result.status == 1
    (record,) = records_in(results)
    assert record["status"] == "error"
    assert record["metrics"] is None
    assert "provides no nouns" in record["error"]["message"]
    assert "provides no nouns" in result.out


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
