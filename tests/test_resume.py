"""Resume never returns a stale or wrong result: run identity by content, canonical
parameters, damaged predictions, and failed reruns that keep the last good record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_features_file import write_features
from test_pipeline import image_dataset_setup

from laicbench.run.records import ResultStore
from laicbench.run.spec import RunSpec


def _records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in ResultStore(results).record_paths()]


def _run(cli, *argv):
    return cli("run", "--executor", "local", "--seeds", "0", *argv)


def test_a_regenerated_features_file_makes_its_runs_outdated(cli, tmp_path):
    path = write_features(tmp_path / "feats.npz")
    results = tmp_path / "results"
    args = ["--methods", "clip-kmeans", "--datasets", path, "--results-dir", results]
    assert _run(cli, *args).status == 0
    (first,) = _records(results)
    assert _run(cli, *args).out.count("0 new, 1 skipped") == 1

    # the same path, other content: two of the three classes merged into one
    write_features(path, labels_train=np.arange(60) % 3 // 2, labels_test=np.arange(30) % 3 // 2,
                   class_names=np.array(["a", "b"]))  # fmt: skip
    status = cli("status", "--methods", "clip-kmeans", "--datasets", path, "--seeds", "0",
                 "--results-dir", results)  # fmt: skip
    assert "0 done, 0 failed, 1 outdated" in status.out
    assert "1 outdated: inputs changed: sha256" in status.out
    rerun = _run(cli, *args)
    assert "1 new, 0 skipped" in rerun.out
    (second,) = _records(results)
    assert second["inputs"]["sha256"] != first["inputs"]["sha256"]
    assert second["dataset"]["n_classes"] == 2


def test_another_precision_makes_image_runs_outdated(cli, tmp_path, write_plugin):
    name, _, flags = image_dataset_setup(tmp_path, write_plugin)
    results = tmp_path / "results"
    args = ["--methods", "clip-kmeans", "--datasets", name, "--results-dir", results, *flags]
    assert _run(cli, *args).status == 0
    (fp32,) = _records(results)
    assert fp32["inputs"]["precision"] == "fp32"
    assert "vocabulary_sha256" not in fp32["inputs"]  # clip-kmeans reads no nouns
    status = cli("status", "--methods", "clip-kmeans", "--datasets", name, "--seeds", "0",
                 "--results-dir", results, *flags, "--precision", "bf16")  # fmt: skip
    assert "1 outdated: inputs changed: precision" in status.out
    assert "1 new, 0 skipped" in _run(cli, *args, "--precision", "bf16").out
    (bf16,) = _records(results)
    assert bf16["inputs"]["precision"] == "bf16"


def test_paths_that_sanitise_alike_get_different_run_ids():
    a = RunSpec("clip-kmeans", "/data/x/y.npz", "features-file", 0, {})
    b = RunSpec("clip-kmeans", "/data/x_y.npz", "features-file", 0, {})
    assert a.run_id != b.run_id
    assert a.run_id.startswith("clip-kmeans/data_x_y.npz-")
    plain = RunSpec("clip-kmeans", "demo-10", "ViT-B-32:openai", 0, {})
    assert plain.run_id.startswith("clip-kmeans/demo-10/ViT-B-32_openai/seed0-")  # as before


def test_an_integer_for_a_float_parameter_is_the_default_point(cli, tmp_path):
    results = tmp_path / "results"
    base = ["--methods", "gradnorm-notrain", "--datasets", "demo", "--seeds", "0-2", "--dry-run",
            "--results-dir", results]  # fmt: skip
    plain = cli("run", *base)
    gridded = cli("run", *base, "--grid", "gradnorm-notrain.norm_p=2,2.0")
    assert "3 runs" in plain.out and "3 runs" in gridded.out
    assert plain.out == gridded.out


def test_truncated_predictions_are_rerun_and_status_says_so(cli, tmp_path):
    results = tmp_path / "results"
    args = ["--methods", "clip-kmeans", "--datasets", "demo", "--results-dir", results]
    assert _run(cli, *args).status == 0
    (predictions,) = results.rglob("*.pred.npz")
    intact = predictions.read_bytes()
    predictions.write_bytes(intact[: len(intact) // 2])
    status = cli("status", "--methods", "clip-kmeans", "--datasets", "demo", "--seeds", "0",
                 "--results-dir", results)  # fmt: skip
    assert "1 damaged" in status.out
    assert "predictions file missing or damaged" in status.out
    assert "1 new, 0 skipped" in _run(cli, *args).out
    assert predictions.read_bytes() == intact  # the same seed gives the same predictions


@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_a_failed_overwrite_keeps_the_last_good_record(cli, method_plugin, tmp_path, executor):
    flag = tmp_path / "fail-now"
    name, folder = method_plugin(
        body=f"""
        import os
        if os.path.exists({str(flag)!r}):
            raise RuntimeError("broken on the rerun")
        return np.arange(len(features.image_test)) % n_clusters
        """
    )
    results = tmp_path / "results"
    args = ["--methods", name, "--datasets", "demo", "--results-dir", results,
            "--include-path", folder, "--executor", executor]  # fmt: skip
    assert _run(cli, *args).status == 0
    (good,) = _records(results)
    (predictions,) = results.rglob("*.pred.npz")
    before = predictions.read_bytes()
    flag.touch()
    failed = _run(cli, *args, "--overwrite")
    assert failed.status == 1  # reported as failed by either executor, though the file stays ok
    assert "0 new, 0 skipped (already done), 1 failed" in failed.out
    assert "broken on the rerun" in failed.out
    (kept,) = _records(results)
    assert kept["status"] == "ok" and kept["metrics"] == good["metrics"]
    assert kept["last_failure"]["status"] == "error"
    assert "broken on the rerun" in kept["last_failure"]["error"]["message"]
    assert predictions.read_bytes() == before


def test_an_unknown_architecture_stops_a_local_sweep_before_any_run(cli, tmp_path, write_plugin):
    name, _, flags = image_dataset_setup(tmp_path, write_plugin)
    results = tmp_path / "results"
    result = _run(cli, "--methods", "clip-kmeans", "--datasets", name, "--results-dir", results,
                  *flags, "--backbone", "NoSuchArch:random")  # fmt: skip
    assert result.status == 2
    assert len(result.err_lines) == 1, result.err
    assert "unknown open_clip architecture 'NoSuchArch'" in result.err_lines[0]
    assert not results.exists()


def test_report_out_below_a_file_is_one_line(cli, tmp_path):
    results = tmp_path / "results"
    assert _run(cli, "--methods", "clip-kmeans", "--datasets", "demo", "--results-dir",
                results).status == 0  # fmt: skip
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    result = cli("report", "--results-dir", results, "--out", blocker / "report")
    assert result.status == 2
    assert result.err_lines == [
        f"laicbench: error: --out {blocker / 'report'}: {blocker} is a file, not a directory"
    ]
