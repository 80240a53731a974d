"""The tuning track on Ray Tune: the same choice as the in-process search, and resume after an
interruption (a real local Ray, so slow)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

ray = pytest.importorskip("ray")

from test_tune import RIGHT_NEIGHBOURS, blobs_file, tuning_config  # noqa: E402

from laicbench.cli.main import main  # noqa: E402
from laicbench.tune import run_tuning  # noqa: E402
from laicbench.tune.study import read_study_record  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    yield
    ray.shutdown()


def _choices(result):
    return {
        s.study.objective.name: (s.best.sampled, [(t.number, t.sampled, t.value) for t in s.trials])
        for s in result.studies
    }


@pytest.mark.slow
def test_both_executors_choose_the_same_configuration(tmp_path):
    path = blobs_file(tmp_path / "blobs.npz")
    chosen = {}
    for executor in ("local", "ray"):
        config = tuning_config(path, tmp_path / executor, objectives=["silhouette"], budget=8)
        config.sweep.executor = executor
        config.sweep.num_cpus = 2 if executor == "ray" else None
        chosen[executor] = _choices(run_tuning(config))
    assert chosen["ray"] == chosen["local"]
    assert chosen["ray"]["silhouette"][0]["n_neighbors"] in RIGHT_NEIGHBOURS


@pytest.mark.slow
def test_an_interrupted_ray_tuning_resumes_without_repeating_finished_trials(tmp_path):
    path = blobs_file(tmp_path / "blobs.npz")
    results = tmp_path / "runs"
    argv = [
        "tune", "--methods", "spectral", "--datasets", str(path), "--seeds", "0",
        "--budget", "8", "--batch", "2", "--objective", "silhouette", "--executor", "ray",
        "--num-cpus", "2", "--results-dir", str(results),
    ]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "laicbench.cli.main", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    records = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        records = sorted((results / "_tune").rglob("*.json")) if results.exists() else []
        if records and len((read_study_record(records[0]) or {}).get("trials", [])) >= 2:
            break
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("the tuning ended or stalled before two trials were stored")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130
    before = read_study_record(records[0])["trials"]
    assert 2 <= len(before) < 8
    stamps = {
        run["run_id"]: json.loads((results / f"{run['run_id']}.json").read_text())["finished_at"]
        for trial in before
        for run in trial["runs"]
    }

    assert main(argv) == 0
    after = read_study_record(records[0])
    assert after["status"] == "done" and len(after["trials"]) == 8
    for old in before:
        new = after["trials"][old["number"]]
        assert new["sampled"] == old["sampled"]
        assert [r["executed"] for r in new["runs"]] == [False]  # found stored, not run again
    for run_id, stamp in stamps.items():
        assert json.loads((results / f"{run_id}.json").read_text())["finished_at"] == stamp


@pytest.mark.slow
def test_bench_tune_times_the_search_against_a_plain_run(tmp_path, capsys):
    out = tmp_path / "tune.json"
    argv = ["bench", "tune", "--budget", "3", "--methods", "clip-kmeans", "--dataset", "demo",
            "--cpus", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(out.read_text())
    (one,) = result["repeats"]
    assert one["trials"] == 3 and 1 <= one["runs"] <= 3
    assert result["median"]["same_choice"] is True
    assert one["ray_overhead_per_trial_s"] == pytest.approx(
        (one["tune_ray_s"] - one["run_ray_s"]) / 3
    )
    assert min(one["tune_ray_s"], one["run_ray_s"], one["tune_local_s"], one["run_local_s"]) > 0
    assert "Ray Tune's overhead per trial" in capsys.readouterr().out


def test_bench_tune_rejects_a_zero_budget(capsys):
    assert main(["bench", "tune", "--budget", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--budget" in err[0]
