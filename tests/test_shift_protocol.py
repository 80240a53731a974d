"""The shift track as VLM4Cluster runs it, on two small in-memory datasets registered here (a
source with a train split and a test-only shifted copy of three of its classes): 1,000-way
(here: all-class) heads by default, the subset protocol as an option, training-free methods
selecting their nouns on the source's train images, the like-for-like drop of the shift table,
and the dry run saying which runs learn on the source. The real ImageNet layout is exercised by
the slow test in test_backbones_and_shift.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import table_rows, unique_name
from laicbench.methods.tac import TacNoTrain

from laicbench.api.dataset import Dataset
from laicbench.api.features import DatasetFeatures
from laicbench.api.registry import register_dataset
from laicbench.cluster.metrics import cluster_accuracy
from laicbench.report.build import load_runs
from laicbench.report.stat_tables import shift_table
from laicbench.report.tables import main_points
from laicbench.run.records import load_arrays

N_SOURCE_CLASSES, SHIFT_CLASSES = 6, [1, 3, 4]  # the shift set's classes, as source labels
DIM = 16


def _toy_features(labels: np.ndarray, centres: np.ndarray, shift: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 0.35, (len(labels), DIM))
    return (centres[labels] + noise + shift).astype(np.float32)


def _toy_datasets() -> tuple[str, str]:
    """Register a source (6 classes, 20 train and 10 test images each, 40 nouns) and a test-only
    shifted copy of its classes 1, 3 and 4 (12 images each); returns their names."""
    source_name, shift_name = unique_name("toy-source"), unique_name("toy-shift")
    rng = np.random.default_rng(0)
    centres = rng.normal(0.0, 1.0, (N_SOURCE_CLASSES, DIM))
    nouns = rng.normal(0.0, 1.0, (40, DIM)).astype(np.float32)
    nouns /= np.linalg.norm(nouns, axis=1, keepdims=True)
    words = [f"noun{i}" for i in range(len(nouns))]

    def features(y_train, y_test, shift, seed, names):
        return DatasetFeatures(
            image_train=_toy_features(y_train, centres, shift, seed),
            image_test=_toy_features(y_test, centres, shift, seed + 1),
            labels_train=y_train,
            labels_test=y_test,
            class_names=names,
            noun_words=words,
            noun_features_loader=lambda: nouns,
            info={"kind": "toy"},
        )

    @register_dataset(source_name)
    class Source(Dataset):
        """A toy source dataset with a train split."""

        n_classes = N_SOURCE_CLASSES

        def load(self, backbone, device, settings):
            y_train = np.repeat(np.arange(N_SOURCE_CLASSES), 20)
            y_test = np.repeat(np.arange(N_SOURCE_CLASSES), 10)
            return features(y_train, y_test, 0.0, 1, [f"c{i}" for i in range(6)])

    @register_dataset(shift_name)
    class Shift(Dataset):
        """A toy test-only shifted copy of three source classes."""

        n_classes = len(SHIFT_CLASSES)
        test_only = True
        shift_source = source_name

        def load(self, backbone, device, settings):
            y = np.repeat(np.arange(len(SHIFT_CLASSES)), 12)
            in_source = np.asarray(SHIFT_CLASSES)[y]
            data = features(in_source, in_source, 0.4, 7, [f"c{i}" for i in SHIFT_CLASSES])
            return DatasetFeatures(
                data.image_test, data.image_test, y, y, data.class_names, data.noun_words,
                data.noun_features_loader, info={"kind": "toy shift"},
            )  # fmt: skip

        def source_classes(self, source):
            return list(SHIFT_CLASSES) if source == source_name else None

    return source_name, shift_name


@pytest.fixture
def toy(cli, tmp_path, monkeypatch):
    """run(*extra) runs clip-kmeans, tac-notrain and scan on the toy pair with seeds 0-1; returns
    (source, shift, run, records)."""
    source, shift = _toy_datasets()
    # a per-dataset setting of the source, to see which dataset's settings a run takes
    monkeypatch.setattr(TacNoTrain, "dataset_settings", {source: {"n_semantic_centers": 7}})
    results = tmp_path / "runs"
    config = tmp_path / "cheap.toml"
    config.write_text("[params.scan]\nepochs = 2\nn_heads = 2\nbatch_size = 32\n")

    def run(*extra):
        result = cli("run", "--methods", "clip-kmeans,tac-notrain,scan", "--seeds", "0-1",
                     "--results-dir", results, "--device", "cpu", "--config", config,
                     "--datasets", f"{source},{shift}", *extra)  # fmt: skip
        assert result.status == 0, result.out + result.err
        return result

    def records():
        found = [json.loads(p.read_text()) for p in results.rglob("*.json")]
        return {
            (r["method"]["name"], r["dataset"]["name"], r.get("train_on"), r["seed"]): r
            for r in found
        }

    return source, shift, run, records, results


def test_train_on_defaults_to_all_classes_and_nouns_from_the_source(toy):
    source, shift, run, records, _ = toy
    run("--train-on", source)
    found = records()
    everything = f"{source}:all"
    scan = found[("scan", shift, everything, 0)]
    # VLM4Cluster's protocol: heads of all the source's classes, trained on its whole train split
    assert scan["n_clusters"] == N_SOURCE_CLASSES and scan["dataset"]["n_train"] == 120
    assert scan["dataset"]["n_test"] == 36 and scan["dataset"]["info"]["train_classes"] == "all"
    assert scan["inputs"]["train_on"] == everything
    assert scan["inputs"]["settings_from"] == source  # the source's per-dataset settings
    assert scan["run_id"].endswith(f"-on-{source}_all")
    # a training-free method that reads the noun bank selects its nouns on the source's train
    # images (and takes the source's settings: n_semantic_centers 7), with the same K
    nouns = found[("tac-notrain", shift, everything, 0)]
    assert nouns["n_clusters"] == N_SOURCE_CLASSES and nouns["dataset"]["n_train"] == 120
    assert nouns["artefacts"]["resolved"]["n_semantic_centers"] == 7
    # ... the others cluster the shift set on its own, with its K
    kmeans = found[("clip-kmeans", shift, None, 0)]
    assert kmeans["n_clusters"] == len(SHIFT_CLASSES)


def test_subset_protocol_and_nouns_from_the_target_are_named_options(toy):
    source, shift, run, records, _ = toy
    run("--train-on", f"{source}:subset", "--nouns-from", "target")
    found = records()
    subset = found[("scan", shift, f"{source}:subset", 0)]
    # the source's 20 train images of each of the shift set's 3 classes, K = 3
    assert subset["n_clusters"] == 3 and subset["dataset"]["n_train"] == 60
    assert subset["dataset"]["info"]["train_classes"] == 3
    assert subset["inputs"]["settings_from"] == shift
    own = found[("tac-notrain", shift, None, 0)]  # nouns from the shift set's own images
    assert own["n_clusters"] == 3 and own["dataset"]["n_train"] == 36
    assert own["artefacts"]["resolved"]["n_semantic_centers"] != 7


def test_shift_table_drop_is_like_for_like(toy):
    source, shift, run, records, results = toy
    run("--train-on", source)
    run("--train-on", f"{source}:subset")
    runs, _ = load_runs(results)
    table = shift_table(main_points([r for r in runs if r.state == "done"])).to_markdown()
    rows = {r[0]: r[1:] for r in _markdown_rows(table)}
    header = _markdown_header(table)
    assert header == ["method", source, shift]
    found = records()
    # scan trained on all classes: the drop against the same heads (the source run, same
    # seeds) scored on the source's test images of the shift set's classes only
    drops = []
    for seed in (0, 1):
        shifted = found[("scan", shift, f"{source}:all", seed)]["metrics"]["acc"]
        reference = next(
            p for p in results.rglob("*.json")
            if json.loads(p.read_text())["dataset"]["name"] == source
            and json.loads(p.read_text())["method"]["name"] == "scan"
            and json.loads(p.read_text())["seed"] == seed
        )  # fmt: skip
        arrays = load_arrays(reference)
        y_true, y_pred = arrays["y_true"], arrays["y_pred"]
        keep = np.isin(y_true, SHIFT_CLASSES)
        drops.append(shifted - 100 * cluster_accuracy(y_true[keep], y_pred[keep]))
    accs = [found[("scan", shift, f"{source}:all", s)]["metrics"]["acc"] for s in (0, 1)]
    everything = rows[f"scan (trained on {source}:all)"]
    assert everything[1] == f"{np.mean(accs):.2f} ({np.mean(drops):+.2f})"
    source_accs = [found[("scan", source, None, s)]["metrics"]["acc"] for s in (0, 1)]
    assert everything[0] == f"{np.mean(source_accs):.2f}"  # all the source's classes
    assert "(" in rows[f"tac-notrain (nouns from {source}:all)"][1]
    # no like-for-like counterpart: no drop
    assert "(" not in rows[f"scan (trained on {source}:subset)"][1]
    assert "(" not in rows["clip-kmeans (own images)"][1]
    assert "like for like" in table


def test_dry_run_shows_what_each_run_learns_from(toy, cli):
    source, shift, _, _, _ = toy
    result = cli("run", "--dry-run", "--methods", "clip-kmeans,tac-notrain,scan", "--seeds", "0",
                 "--datasets", f"{source},{shift}", "--train-on", source)  # fmt: skip
    assert result.status == 0, result.err
    learns = {(r[0], r[1]): r[5] for r in table_rows(result.out)}
    assert learns[("scan", shift)] == f"{source} train, all classes"
    assert learns[("tac-notrain", shift)] == f"nouns: {source} train, all classes"
    assert learns[("clip-kmeans", shift)] == "own images (test only)"
    assert learns[("scan", source)] == "own train split"


def test_train_on_bad_protocol_and_nouns_from_alone_are_one_line(toy, cli):
    source, shift, _, _, _ = toy
    common = ("run", "--dry-run", "--methods", "scan", "--datasets", shift)
    bad = cli(*common, "--train-on", f"{source}:most")
    assert bad.status == 2 and len(bad.err_lines) == 1 and "subset" in bad.err
    alone = cli(*common, "--nouns-from", "source")
    assert alone.status == 2 and len(alone.err_lines) == 1 and "--train-on" in alone.err


def _markdown_header(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith("| "))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _markdown_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines[1:]]
