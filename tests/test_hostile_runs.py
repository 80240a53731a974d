"""A hostile user's sweeps: methods that never return, grids too big to expand, records where
they cannot go, results dirs that cannot be written; each one line or a failed run, never a
hang or a traceback."""

from __future__ import annotations

import errno
import json
import os
import socket
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from conftest import method_plugin_source

from laicbench.run.records import ResultStore

SLEEP_FOREVER = """
import time
if seed == 0:
    while True:
        time.sleep(1000)
return np.arange(len(features.image_test)) % n_clusters
"""


def _records(results) -> list[dict]:
    return [json.loads(p.read_text()) for p in ResultStore(results).record_paths()]


@pytest.mark.parametrize(
    ("where", "executor"),
    [("flag", "local"), ("config", "local"), pytest.param("flag", "ray", marks=pytest.mark.slow)],
)
def test_a_run_that_never_returns_times_out_and_the_sweep_goes_on(
    cli, method_plugin, tmp_path, where, executor
):
    name, folder = method_plugin(body=SLEEP_FOREVER)
    results = tmp_path / "results"
    args = ["run", "--executor", executor, "--methods", f"{name},clip-kmeans",
            "--datasets", "demo", "--seeds", "0-1", "--results-dir", results,
            "--include-path", folder]  # fmt: skip
    if executor == "ray":
        args += ["--num-cpus", "2"]
    if where == "flag":
        args += ["--run-timeout", "2"]
    else:
        config = tmp_path / "sweep.toml"
        config.write_text("run_timeout = 2\n")
        args += ["--config", config]
    t0 = time.perf_counter()
    result = cli(*args)
    assert time.perf_counter() - t0 < 300  # it ends: nothing waits for the sleeper
    assert result.status == 1
    assert "3 new, 0 skipped (already done), 1 failed" in result.out
    assert "timeout" in result.out and "--run-timeout 2 s" in result.out
    by_seed = {(r["method"]["name"], r["seed"]): r for r in _records(results)}
    assert by_seed[(name, 0)]["status"] == "timeout"
    assert "time limit" in by_seed[(name, 0)]["error"]["message"]
    assert by_seed[(name, 1)]["status"] == "ok"  # later runs still ran
    assert by_seed[("clip-kmeans", 0)]["status"] == "ok"
    status = cli("status", "--methods", f"{name},clip-kmeans", "--datasets", "demo", "--seeds",
                 "0-1", "--results-dir", results, "--include-path", folder)  # fmt: skip
    assert "1 failed: timeout" in status.out


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_a_bad_run_timeout_is_one_line(cli, tmp_path, value):
    result = cli("run", "--methods", "clip-kmeans", "--results-dir", tmp_path / "r",
                 "--run-timeout", value)  # fmt: skip
    assert result.status == 2 and len(result.err_lines) == 1
    assert "run-timeout" in result.err
    assert not (tmp_path / "r").exists()


def test_a_huge_grid_is_refused_before_expansion(cli, tmp_path):
    values = ",".join(str(v) for v in range(1, 101))
    args = ["run", "--methods", "clip-kmeans", "--datasets", "demo", "--seeds", "0-999",
            "--results-dir", tmp_path / "r", "--grid", f"clip-kmeans.n_init={values}",
            "--grid", f"clip-kmeans.max_iter={values}"]  # fmt: skip
    t0 = time.perf_counter()
    result = cli(*args)
    assert time.perf_counter() - t0 < 10
    assert result.status == 2 and len(result.err_lines) == 1
    assert "10,000,000 runs" in result.err and "--max-runs" in result.err
    assert not (tmp_path / "r").exists()
    # the limit is the user's to raise: 4 runs over a limit of 3 are refused, of 4 allowed
    small = ["run", "--methods", "clip-kmeans", "--datasets", "demo", "--seeds", "0-3",
             "--results-dir", tmp_path / "r", "--dry-run"]  # fmt: skip
    assert cli(*small, "--max-runs", "3").status == 2
    config = tmp_path / "limits.toml"
    config.write_text("max_runs = 4\n")
    allowed = cli(*small, "--config", config)
    assert allowed.status == 0 and "4 runs" in allowed.out


def test_params_of_a_method_left_out_name_the_config_file(cli, tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text("[params.tac]\nn_epochs = 3\n")
    result = cli("run", "--config", config, "--methods", "clip-kmeans", "--results-dir",
                 tmp_path / "r")  # fmt: skip
    assert result.status == 2 and len(result.err_lines) == 1
    assert str(config) in result.err and "[params.tac]" in result.err


@pytest.mark.parametrize(("factor", "says"), [("1000000000", "1000000000"), ("200", "2,000")])
def test_an_absurd_k_factor_is_refused_up_front(cli, tmp_path, factor, says):
    # demo-10 has 1,000 test images: 200 x 10 clusters are more than it has
    result = cli("run", "--methods", "clip-kmeans", "--datasets", "demo", "--seeds", "0",
                 "--results-dir", tmp_path / "r", "--k-factor", factor)  # fmt: skip
    assert result.status == 2 and len(result.err_lines) == 1
    assert "k-factor" in result.err.replace("_", "-") and says in result.err
    assert not list((tmp_path / "r").rglob("*.json"))


@pytest.fixture
def finished_sweep(cli, tmp_path_factory):
    """A results dir with two finished clip-kmeans runs on the demo (seeds 0-1)."""
    results = tmp_path_factory.mktemp("sweep") / "runs"
    args = ["run", "--methods", "clip-kmeans", "--datasets", "demo", "--seeds", "0-1",
            "--results-dir", results]  # fmt: skip
    assert cli(*args).status == 0
    return results


def _read_only(folder, monkeypatch) -> list:
    """Make `folder` and everything below it read-only; returns the paths, to undo it. Root
    writes anywhere, so for root the temporary files laicbench writes through (every write is
    atomic, through one) are refused below `folder` as well."""
    paths = [folder, *folder.rglob("*")]
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)
    if os.geteuid() == 0:
        for name in ("mkstemp", "mkdtemp", "TemporaryFile"):
            original = getattr(tempfile, name)

            def refused(*args, _original=original, **kwargs):
                where = Path(kwargs.get("dir") or ".").absolute()
                if where == folder or folder in where.parents:
                    raise PermissionError(errno.EACCES, "Permission denied", str(where))
                return _original(*args, **kwargs)

            monkeypatch.setattr(tempfile, name, refused)
    return paths


def test_report_and_rescore_on_a_read_only_results_dir(cli, finished_sweep, tmp_path, monkeypatch):
    parent = finished_sweep.parent
    paths = _read_only(parent, monkeypatch)
    try:
        report = cli("report", "--results-dir", finished_sweep)
        assert report.status == 2 and len(report.err_lines) == 1
        assert "--out" in report.err and "Traceback" not in report.err
        elsewhere = cli("report", "--results-dir", finished_sweep, "--out", tmp_path / "rep")
        assert elsewhere.status == 0 and (tmp_path / "rep" / "index.md").is_file()
        rescore = cli("rescore", "--results-dir", finished_sweep, "--all")
        assert rescore.status == 2 and len(rescore.err_lines) == 1
        assert "cannot rewrite" in rescore.err and "write access" in rescore.err
    finally:
        for path in paths:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_deeply_nested_stray_json_is_named_not_a_crash(cli, finished_sweep):
    stray = finished_sweep / "clip-kmeans" / "stray.json"
    stray.write_text("[" * 100_000 + "]" * 100_000)
    args = ["--methods", "clip-kmeans", "--datasets", "demo", "--seeds", "0-1",
            "--results-dir", finished_sweep]  # fmt: skip
    status = cli("status", *args)
    assert status.status == 0 and "2 done" in status.out
    report = cli("report", "--results-dir", finished_sweep)
    assert report.status == 0 and "report of 2 runs" in report.out
    assert "1 unreadable" in report.err and "stray.json" in report.err
    assert "RecursionError" not in report.err


def test_report_and_status_of_many_seeds_aggregate_every_record(tmp_path, monkeypatch):
    from laicbench.bench.report import write_copies
    from laicbench.report import stat_tables
    from laicbench.report.build import build_report
    from laicbench.run.config import SweepConfig
    from laicbench.run.sweep import Sweep

    config = SweepConfig(methods=["clip-kmeans"], datasets=["demo"], seeds="0-6",
                         results_dir=str(tmp_path / "runs"), executor="local")  # fmt: skip
    assert write_copies(config) == 7
    assert [state for _, state, _ in Sweep(config).states()] == ["done"] * 7
    monkeypatch.setattr(stat_tables, "STABILITY_SEEDS", 5)
    report = build_report(tmp_path / "runs", out=tmp_path / "report", reference=False)
    assert len(report.runs) == 7 and sorted(r.seed for r in report.runs) == list(range(7))
    runs = (tmp_path / "report" / "runs.csv").read_text().splitlines()
    assert len(runs) == 1 + 7
    # the copies share one run's predictions: every pair agrees, over the lowest 5 seeds
    stability = (tmp_path / "report" / "seed_stability.md").read_text()
    assert "100.00 (5)" in stability
    acc = report.runs[0].record.metrics["acc"]
    assert f"{acc:.2f} ± 0.00 (7)" in (tmp_path / "report" / "main_table.md").read_text()


def test_a_features_file_with_a_very_long_path_is_stored(cli, tmp_path):
    from test_features_file import write_features

    folder = tmp_path / ("a" * 120) / ("b" * 120)
    folder.mkdir(parents=True)
    path = write_features(folder / "feats.npz")
    assert len(str(path)) > 250
    results = tmp_path / "results"
    args = ["--methods", "clip-kmeans", "--datasets", path, "--seeds", "0-1",
            "--results-dir", results]  # fmt: skip
    run = cli("run", "--executor", "local", *args)
    assert run.status == 0, run.err
    assert len(_records(results)) == 2
    status = cli("status", *args)
    assert "2 done" in status.out


def test_records_that_cannot_go_where_they_go_stop_the_sweep_before_any_run(
    cli, method_plugin, tmp_path
):
    name, folder = method_plugin()
    results = tmp_path / "results"
    args = ["run", "--executor", "local", "--methods", name, "--datasets", "demo", "--seeds",
            "0", "--include-path", folder]  # fmt: skip
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    first = cli(*args, "--results-dir", dangling)
    assert first.status == 2 and len(first.err_lines) == 1
    assert "symbolic link" in first.err and "nowhere" in first.err
    (results / name).mkdir(parents=True)
    (results / name / "demo-10").write_text("in the way")
    second = cli(*args, "--results-dir", results)
    assert second.status == 2 and len(second.err_lines) == 1
    assert "is a file where" in second.err
    from laicbench.api import registry

    assert registry.methods.get(name).calls == 0  # nothing was computed


@pytest.mark.parametrize("contents", [False, True])
def test_a_record_replaced_by_a_folder_is_damaged_and_a_rerun_repairs_it(
    cli, finished_sweep, contents
):
    (record, *_) = ResultStore(finished_sweep).record_paths()
    record.unlink()
    record.mkdir()
    if contents:
        (record / "notes.txt").write_text("kept")
    args = ["--methods", "clip-kmeans", "--datasets", "demo", "--seeds", "0-1",
            "--results-dir", finished_sweep]  # fmt: skip
    status = cli("status", *args)
    assert "1 done, 0 failed, 0 outdated, 1 damaged, 0 missing" in status.out
    assert "its record is a folder" in status.out
    report = cli("report", "--results-dir", finished_sweep)
    assert "rerun to repair" in report.err
    rerun = cli("run", *args)
    assert rerun.status == 0 and "1 new, 1 skipped" in rerun.out
    assert record.is_file() and json.loads(record.read_text())["status"] == "ok"
    assert "2 done" in cli("status", *args).out
    moved = list(record.parent.glob(f".{record.name}.folder-*"))
    assert [(m / "notes.txt").read_text() for m in moved] == (["kept"] if contents else [])


def test_a_folder_named_like_a_features_file_is_called_a_folder(cli, tmp_path):
    folder = tmp_path / "x.npz"
    folder.mkdir()
    result = cli("run", "--methods", "clip-kmeans", "--datasets", folder,
                 "--results-dir", tmp_path / "r")  # fmt: skip
    assert result.status == 2 and len(result.err_lines) == 1
    assert "is a directory" in result.err and "does not exist" not in result.err


def _terminate_when_started(argv, flag, tmp_path) -> tuple[int, str]:
    """Run ``laicbench *argv`` in a new process, send it SIGTERM once `flag` exists, and
    return its exit status and stderr."""
    import signal
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "300", "LAICBENCH_EXECUTOR": "local"}
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "laicbench", *map(str, argv)],
            stdout=subprocess.DEVNULL, stderr=err, env=env,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 240
            while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert flag.exists(), stderr.read_text()
            proc.send_signal(signal.SIGTERM)
            status = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    return status, stderr.read_text()


@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_sigterm_stops_a_sweep_like_ctrl_c(method_plugin, tmp_path, executor):
    flag = tmp_path / "started"
    name, folder = method_plugin(
        body=f"""
        import pathlib, time
        if seed == 1:
            pathlib.Path({str(flag)!r}).touch()
            time.sleep(1000)
        return np.arange(len(features.image_test)) % n_clusters
        """
    )
    results = tmp_path / "results"
    argv = ["run", "--executor", executor, "--methods", name, "--datasets", "demo", "--seeds",
            "0-1", "--results-dir", results, "--include-path", folder]  # fmt: skip
    if executor == "ray":
        argv += ["--num-cpus", "1"]  # one trial at a time: seed 0 is stored before seed 1 starts
    status, err = _terminate_when_started(argv, flag, tmp_path)
    assert status == 128 + 15
    assert "terminated: 1 of 2 runs finished and were stored" in err
    assert "rerun the same command" in err and "Traceback" not in err
    assert [r["seed"] for r in _records(results)] == [0]


def test_a_killed_reports_staging_folders_are_removed_by_the_next(cli, finished_sweep, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "report"
    # what a report killed while writing, and one killed while replacing, leave behind
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.split()[0]  # fmt: skip
    killed = tmp_path / ".report-abc123.tmp"
    killed.mkdir()
    (killed / ".laicbench-staging-owner").write_text(f"{socket.gethostname()} {gone}")
    replaced = tmp_path / ".report-old-1234abcd"
    replaced.mkdir()
    running = tmp_path / ".report-def456.tmp"  # a report still writing: this process
    running.mkdir()
    (running / ".laicbench-staging-owner").write_text(f"{socket.gethostname()} {os.getpid()}")
    result = cli("report", "--results-dir", finished_sweep, "--out", out)
    assert result.status == 0
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".report"))
    assert left == [running.name]
    assert not (out / ".laicbench-staging-owner").exists()


@pytest.mark.slow
def test_a_plugin_that_does_not_import_in_rays_workers_stops_the_sweep_first(
    cli, write_plugin, tmp_path
):
    name = f"driver-only-{uuid.uuid4().hex[:8]}"
    folder = write_plugin(
        method_plugin_source(name).replace(
            "import numpy as np\n",
            "import numpy as np\nimport ray\n"
            "if ray.is_initialized() and (\n"
            "    ray.get_runtime_context().worker.mode == ray.WORKER_MODE\n"
            "):\n"
            "    raise ImportError('the library is on the driver only')\n",
        )
    )
    results = tmp_path / "results"
    result = cli("run", "--executor", "ray", "--num-cpus", "1", "--methods", f"{name},clip-kmeans",
                 "--datasets", "demo", "--seeds", "0", "--results-dir", results,
                 "--include-path", folder)  # fmt: skip
    assert result.status == 2 and len(result.err_lines) == 1
    assert "not in Ray's workers" in result.err and "driver only" in result.err
    assert not list(results.rglob("*.json"))


def test_the_timeout_watcher_reads_thread_frames_with_no_garbage_collection(monkeypatch):
    """A collection inside sys._current_frames (which holds the thread-list lock) can free a torch
    tensor whose destructor needs that lock: a deadlock seen in the suite. The watcher must keep
    the collector off during the call, and on again afterwards."""
    import gc
    import sys
    import threading

    from laicbench.run import timeout

    seen = []

    def frames():
        seen.append(gc.isenabled())
        return {}

    monkeypatch.setattr(sys, "_current_frames", frames)
    assert gc.isenabled()
    assert timeout._importing(threading.current_thread()) is False
    assert seen == [False] and gc.isenabled()
