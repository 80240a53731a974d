"""Sweeps on Ray Tune give the local executor's records, resume from records, and survive
failing runs."""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray")

from laicbench.cli.main import main  # noqa: E402

SWEEP = ["--methods", "clip-kmeans,tac-notrain", "--datasets", "demo-10,demo-50", "--seeds", "0-1"]


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    yield
    ray.shutdown()


def _metrics(results):
    return {
        p.relative_to(results).as_posix(): json.loads(p.read_text())["metrics"]
        for p in results.rglob("*.json")
        if "_ray" not in p.parts
    }


@pytest.mark.slow
def test_ray_sweep_equals_local_and_resumes(tmp_path, capsys):
    ray_dir, local_dir = tmp_path / "ray", tmp_path / "local"
    ray_args = [
        "run",
        *SWEEP,
        "--executor",
        "ray",
        "--num-cpus",
        "2",
        "--results-dir",
        str(ray_dir),
    ]
    assert main(ray_args) == 0
    assert main(["run", *SWEEP, "--executor", "local", "--results-dir", str(local_dir)]) == 0
    ray_metrics, local_metrics = _metrics(ray_dir), _metrics(local_dir)
    assert len(ray_metrics) == 8
    assert ray_metrics == local_metrics
    assert (ray_dir / "_ray").is_dir()  # Tune's own storage lives under the results dir

    victim = sorted(ray_dir.glob("tac-notrain/demo-50/**/*.json"))[0]
    victim.unlink()
    capsys.readouterr()
    assert main(ray_args) == 0
    assert "1 new, 7 skipped" in capsys.readouterr().out
    assert victim.exists()


def test_a_raising_method_becomes_an_error_record_and_the_rest_complete(
    tmp_path, write_plugin, capsys
):
    plugins = write_plugin(
        """
        from laicbench.api.method import Method
        from laicbench.api.registry import register_method

        @register_method("ray-raiser")
        class Raiser(Method):
            \"\"\"Always fails.\"\"\"

            def fit_predict(self, features, n_clusters, seed):
                raise RuntimeError("boom from a trial")
        """
    )
    results = tmp_path / "runs"
    argv = [
        "run",
        "--methods",
        "ray-raiser,clip-kmeans",
        "--datasets",
        "demo",
        "--seeds",
        "0-1",
        "--executor",
        "ray",
        "--include-path",
        str(plugins),
        "--results-dir",
        str(results),
    ]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "2 new, 0 skipped (already done), 2 failed" in out
    records = [json.loads(p.read_text()) for p in results.rglob("*.json") if "_ray" not in p.parts]
    by_status = sorted((r["method"]["name"], r["status"]) for r in records)
    assert by_status == [
        ("clip-kmeans", "ok"),
        ("clip-kmeans", "ok"),
        ("ray-raiser", "error"),
        ("ray-raiser", "error"),
    ]
    error = next(r for r in records if r["status"] == "error")["error"]
    assert error["type"] == "RuntimeError" and "boom from a trial" in error["message"]


def test_grid_points_are_separate_runs_and_status_counts_them(tmp_path, capsys):
    results = tmp_path / "runs"
    argv = [
        "run",
        "--methods",
        "clip-kmeans",
        "--datasets",
        "demo",
        "--seeds",
        "0",
        "--grid",
        "clip-kmeans.n_init=1,3",
        "--results-dir",
        str(results),
    ]
    assert main(argv) == 0
    params = sorted(
        json.loads(p.read_text())["method"]["params"]["n_init"] for p in results.rglob("*.json")
    )
    assert params == [1, 3]
    table = capsys.readouterr().out  # each point labelled (rich would eat '[...]' as markup)
    assert "clip-kmeans [n_init=1]" in table and "clip-kmeans [n_init=3]" in table
    status = [
        "status",
        "--methods",
        "clip-kmeans",
        "--datasets",
        "demo",
        "--seeds",
        "0-1",
        "--grid",
        "clip-kmeans.n_init=1,3",
        "--results-dir",
        str(results),
    ]
    assert main(status) == 0
    assert "2 done, 0 failed, 0 outdated, 0 damaged, 2 missing" in capsys.readouterr().out


def test_grid_errors_are_one_line(tmp_path, capsys):
    for grid, needle in [
        ("clip-kmeans.n_inti=1,2", "n_inti"),
        ("tac.epochs=1", "not in this sweep"),
        ("clip-kmeans", "METHOD.PARAM"),
    ]:
        argv = [
            "run",
            "--methods",
            "clip-kmeans",
            "--datasets",
            "demo",
            "--grid",
            grid,
            "--results-dir",
            str(tmp_path / "r"),
        ]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0]
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_bench_sweep_compares_local_and_ray_runs(tmp_path, capsys):
    out = tmp_path / "sweep.json"
    argv = ["bench", "sweep", "--runs", "2", "--seconds", "0.3", "--repeats", "1", "--cpus", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    (one,) = result["repeats"]
    assert result["median"]["same_metrics"] is True
    assert one["local_mean_run_s"] > 0 and one["ray_mean_run_s"] > 0
    assert 0 < one["tune_start_s"] < one["ray_wall_s"]
    assert one["speedup"] == pytest.approx(one["local_wall_s"] / one["ray_wall_s"])
    assert one["speedup_with_ray_start"] < one["speedup"]
    assert "speedup local / Ray" in capsys.readouterr().out


def test_bench_sweep_rejects_zero_repeats(capsys):
    assert main(["bench", "sweep", "--repeats", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--repeats" in err[0]


def test_cuda_on_a_cluster_without_gpus_is_a_user_error(tmp_path):
    from laicbench.api.errors import UserError
    from laicbench.api.settings import DataSettings
    from laicbench.run.executors import Batch
    from laicbench.run.executors.ray import RayExecutor
    from laicbench.run.records import ResultStore
    from laicbench.run.spec import RunSpec

    spec = RunSpec("tac-notrain", "demo", "tiny-random", 0, {})
    ray.shutdown()  # a local Ray without GPUs, also on a machine that has one
    with pytest.raises(UserError, match="no GPU"):
        RayExecutor("cuda", num_cpus=2, num_gpus=0).run(
            Batch([spec], ResultStore(tmp_path), DataSettings()), print, print
        )
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.slow
def test_a_trial_uses_as_many_torch_threads_as_its_cpu_share(tmp_path, write_plugin):
    # trial processes import torch before Ray assigns them a task; without care each would
    # start one thread per core and two concurrent trials would oversubscribe the CPUs
    plugins = write_plugin(
        """
        import numpy as np
        import torch

        from laicbench.api.method import Method
        from laicbench.api.registry import register_method

        @register_method("ray-threads")
        class Threads(Method):
            \"\"\"Predicts one cluster and records torch's thread count.\"\"\"

            def fit_predict(self, features, n_clusters, seed):
                self.artefacts_ = {"torch_threads": torch.get_num_threads()}
                return np.zeros(len(features.image_test), dtype=np.int64)
        """
    )
    results = tmp_path / "runs"
    argv = ["run", "--methods", "ray-threads", "--datasets", "demo", "--seeds", "0-3"]
    argv += ["--executor", "ray", "--num-cpus", "2", "--include-path", str(plugins)]
    assert main([*argv, "--results-dir", str(results)]) == 0
    records = [json.loads(p.read_text()) for p in results.rglob("*.json") if "_ray" not in p.parts]
    assert [r["artefacts"]["torch_threads"] for r in records] == [1, 1, 1, 1]


@pytest.mark.slow
def test_tac_gives_the_same_metrics_locally_and_in_a_trial(tmp_path):
    """Torch runs each run with the method's declared CPU share of threads under either
    executor, so reductions, and so TAC's trained heads, do not depend on the executor."""
    sweep = ["run", "--methods", "tac", "--datasets", "demo", "--seeds", "0"]
    local, in_ray = tmp_path / "local", tmp_path / "ray"
    assert main([*sweep, "--executor", "local", "--results-dir", str(local)]) == 0
    assert main([*sweep, "--executor", "ray", "--num-cpus", "2", "--results-dir", str(in_ray)]) == 0
    (local_record,) = [json.loads(p.read_text()) for p in local.rglob("*.json")]
    assert local_record["threads"] == 1
    assert _metrics(local) == _metrics(in_ray)


def test_a_resource_request_no_node_can_satisfy_is_refused(tmp_path, write_plugin, capsys):
    plugins = write_plugin(
        """
        import numpy as np

        from laicbench.api.method import Method, Resources
        from laicbench.api.registry import register_method

        @register_method("ray-greedy")
        class Greedy(Method):
            \"\"\"Asks for four CPUs per run.\"\"\"

            resources = Resources(cpus=4)

            def fit_predict(self, features, n_clusters, seed):
                return np.zeros(len(features.image_test), dtype=np.int64)
        """
    )
    results = tmp_path / "runs"
    base = ["run", "--methods", "ray-greedy", "--datasets", "demo", "--seeds", "0", "--executor",
            "ray", "--include-path", str(plugins), "--results-dir", str(results)]  # fmt: skip
    for extra, message in (
        (["--num-cpus", "2"], "method 'ray-greedy' asks for 4 CPU and 0 GPU per run, but no Ray "
         "node has that much (the largest has 2 CPU, 0 GPU)"),
        (["--num-cpus", "0"], "--num-cpus must be at least 1"),
    ):  # fmt: skip
        ray.shutdown()  # a fresh local Ray with the CPUs asked for
        capsys.readouterr()
        assert main([*base, *extra]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and message in err[0], err
        assert not results.exists()
