"""`laicbench run`: records, resume, failures, dry runs, bad input, config files, Ctrl-C."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import table_rows, unique_name

from laicbench.api import registry
from laicbench.api.method import Method
from laicbench.cluster.metric_table import label_scores

KMEANS_PARAMS = {"n_init": 10, "max_iter": 300, "tol": 1e-4}


def kmeans_args(results: Path, seeds: str = "0-1", *extra) -> list:
    return [
        "run",
        "--methods", "clip-kmeans",
        "--datasets", "demo",
        "--seeds", seeds,
        "--results-dir", results,
        *extra,
    ]  # fmt: skip


def records_in(results: Path) -> list[Path]:
    return sorted(results.rglob("*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def load_predictions(record_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) from the .pred.npz beside a record."""
    path = record_path.with_name(record_path.name.removesuffix(".json") + ".pred.npz")
    with np.load(path) as data:
        return data["y_true"], data["y_pred"]


def by_seed(results: Path) -> dict[int, Path]:
    return {load(p)["seed"]: p for p in records_in(results)}


# --------------------------------------------------------------------------------------------
# (a) a plain run


def test_run_writes_one_record_and_predictions_per_run(cli, tmp_path):
    results = tmp_path / "results"
    result = cli(*kmeans_args(results))
    assert result.status == 0, result.err
    records = records_in(results)
    predictions = sorted(results.rglob("*.pred.npz"))
    assert len(records) == 2
    assert len(predictions) == 2
    assert "2 new" in result.out
    rows = [row for row in table_rows(result.out) if row[0] == "clip-kmeans"]
    assert len(rows) == 1
    assert rows[0][1:3] == ["demo-10", "2"]

    seeds = set()
    for path in records:
        record = load(path)
        seeds.add(record["seed"])
        assert record["schema_version"] == 1
        assert record["status"] == "ok"
        assert record["method"]["name"] == "clip-kmeans"
        assert record["method"]["version"] == "1"
        assert record["method"]["params"] == KMEANS_PARAMS
        assert record["dataset"]["name"] == "demo-10"
        assert record["dataset"]["n_classes"] == 10
        assert record["dataset"]["n_train"] == 2000
        assert record["dataset"]["n_test"] == 1000
        assert record["backbone"] == "tiny-random"
        assert set(record["metrics"]) == {"acc", "nmi", "ari", "ami", "balanced_acc", "m2o_acc"}
        assert set(record["internal_metrics"]) == {
            "silhouette",
            "davies_bouldin",
            "calinski_harabasz",
        }
        assert record["scoring"]["version"] == 2
        assert record["scoring"]["nmi_average_method"] == "arithmetic"
        assert all(0 <= v <= 100 for v in record["metrics"].values())
        assert record["wall_time_s"] > 0
        assert record["peak_rss_mb"] > 0
        assert isinstance(record["device"], str) and record["device"]
        env = record["environment"]
        assert env["libraries"]["torch"] == importlib.metadata.version("torch")
        assert "git_commit" in env
        started = datetime.fromisoformat(record["started_at"])
        finished = datetime.fromisoformat(record["finished_at"])
        assert started <= finished
        assert path.parent.relative_to(results).parts == ("clip-kmeans", "demo-10", "tiny-random")

        # the predictions beside the record reproduce its metrics
        y_true, y_pred = load_predictions(path)
        assert y_true.shape == y_pred.shape == (1000,)
        scores = label_scores(y_true, y_pred)
        for metric, value in record["metrics"].items():
            assert value == pytest.approx(scores[metric])
        pred_file = path.parent / record["predictions"]["file"]
        digest = hashlib.sha256(pred_file.read_bytes()).hexdigest()
        assert record["predictions"]["sha256"] == digest
    assert seeds == {0, 1}


# --------------------------------------------------------------------------------------------
# (b) resume


def test_rerun_skips_finished_runs(cli, tmp_path):
    results = tmp_path / "results"
    assert cli(*kmeans_args(results)).status == 0
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in results.rglob("*") if p.is_file()}

    result = cli(*kmeans_args(results))
    assert result.status == 0, result.err
    assert "0 new, 2 skipped" in result.out
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in results.rglob("*") if p.is_file()}
    assert after == before
    # the table still reports both seeds
    rows = [row for row in table_rows(result.out) if row[0] == "clip-kmeans"]
    assert rows[0][2] == "2"


def test_deleted_record_is_rerun_alone(cli, tmp_path):
    results = tmp_path / "results"
    assert cli(*kmeans_args(results)).status == 0
    paths = by_seed(results)
    kept = paths[0].read_bytes()
    paths[1].unlink()

    result = cli(*kmeans_args(results))
    assert result.status == 0, result.err
    assert "1 new, 1 skipped" in result.out
    assert paths[0].read_bytes() == kept
    assert paths[1].exists()
    assert load(paths[1])["status"] == "ok"


def test_overwrite_reruns_everything(cli, tmp_path):
    results = tmp_path / "results"
    assert cli(*kmeans_args(results)).status == 0
    started = {seed: load(p)["started_at"] for seed, p in by_seed(results).items()}

    result = cli(*kmeans_args(results, "0-1", "--overwrite"))
    assert result.status == 0, result.err
    assert "2 new, 0 skipped" in result.out
    rerun = by_seed(results)
    assert len(records_in(results)) == 2
    for seed, path in rerun.items():
        record = load(path)
        assert record["started_at"] != started[seed]
        assert record["status"] == "ok"


@pytest.mark.parametrize("damage", ["outdated-version", "corrupt", "error-status"])
def test_stale_or_broken_record_is_rerun(cli, tmp_path, damage):
    results = tmp_path / "results"
    assert cli(*kmeans_args(results)).status == 0
    paths = by_seed(results)
    record = load(paths[1])
    if damage == "outdated-version":
        record["method"]["version"] = "0"  # made by an older version of the method
        paths[1].write_text(json.dumps(record))
    elif damage == "corrupt":
        paths[1].write_text('{"schema_version": 1, "status": "ok", "meth')
    else:
        record["status"] = "error"
        paths[1].write_text(json.dumps(record))

    result = cli(*kmeans_args(results))
    assert result.status == 0, result.err
    assert "1 new, 1 skipped" in result.out
    rerun = load(paths[1])
    assert rerun["status"] == "ok"
    assert rerun["method"]["version"] == "1"


def test_same_seed_gives_same_predictions(cli, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert cli(*kmeans_args(first, "0")).status == 0
    assert cli(*kmeans_args(second, "0")).status == 0
    (a,), (b,) = records_in(first), records_in(second)
    np.testing.assert_array_equal(load_predictions(a)[1], load_predictions(b)[1])
    assert load(a)["metrics"] == load(b)["metrics"]


# --------------------------------------------------------------------------------------------
# (c) a failing method


def test_failing_method_gives_error_record_and_others_complete(cli, method_plugin, tmp_path):
    name, folder = method_plugin(body="raise RuntimeError('boom: the method broke')")
    results = tmp_path / "results"
    argv = [
        "run",
        "--methods", f"{name},clip-kmeans",  # the failing method runs first
        "--datasets", "demo",
        "--seeds", "0",
        "--results-dir", results,
        "--include-path", folder,
    ]  # fmt: skip
    result = cli(*argv)
    assert result.status == 1
    assert "1 new" in result.out
    assert "1 failed" in result.out
    assert "RuntimeError: boom: the method broke" in result.out

    records = {load(p)["method"]["name"]: load(p) for p in records_in(results)}
    assert set(records) == {name, "clip-kmeans"}
    failed = records[name]
    assert failed["status"] == "error"
    assert failed["metrics"] is None
    assert failed["error"]["type"] == "RuntimeError"
    assert failed["error"]["message"] == "boom: the method broke"
    assert "Traceback" in failed["error"]["traceback"]
    assert "RuntimeError: boom" in failed["error"]["traceback"]
    assert "wall_time_s" in failed
    assert records["clip-kmeans"]["status"] == "ok"
    # no predictions for the failed run
    assert not list((results / name).rglob("*.pred.npz"))

    # an error record is not "done": a rerun retries it (and fails again), the ok run is skipped
    again = cli(*argv)
    assert again.status == 1
    assert "0 new, 1 skipped" in again.out
    assert "1 failed" in again.out


def test_wrong_label_shape_is_an_error_record(cli, method_plugin, tmp_path):
    name, folder = method_plugin(body="return np.zeros(3, dtype=int)")
    results = tmp_path / "results"
    result = cli(
        "run", "--methods", name, "--seeds", "0", "--results-dir", results, "--include-path", folder
    )
    assert result.status == 1
    (path,) = records_in(results)
    record = load(path)
    assert record["status"] == "error"
    assert record["error"]["type"] == "LabelsError"  # a ValueError
    assert "(3,)" in record["error"]["message"]


# --------------------------------------------------------------------------------------------
# (d) dry run


def test_dry_run_prints_runs_and_writes_nothing(cli, tmp_path):
    results = tmp_path / "results"
    result = cli(*kmeans_args(results, "0-2", "--dry-run"))
    assert result.status == 0, result.err
    assert not results.exists()
    rows = [row for row in table_rows(result.out) if row[0] == "clip-kmeans"]
    assert [row[3] for row in rows] == ["0", "1", "2"]
    assert all(row[1] == "demo-10" and row[2] == "tiny-random" for row in rows)
    assert all(row[-1] == "to run" for row in rows)
    assert "n_init=10" in rows[0][4]


def test_dry_run_shows_finished_runs(cli, tmp_path):
    results = tmp_path / "results"
    assert cli(*kmeans_args(results, "1")).status == 0
    before = sorted(results.rglob("*"))
    result = cli(*kmeans_args(results, "0-1", "--dry-run"))
    assert result.status == 0
    status = {row[3]: row[-1] for row in table_rows(result.out) if row[0] == "clip-kmeans"}
    assert status == {"0": "to run", "1": "done (skip)"}
    assert sorted(results.rglob("*")) == before


# --------------------------------------------------------------------------------------------
# (e) bad input: exit 2, one line on stderr, nothing written


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_INPUT = {
    "unknown-method": (
        lambda tmp, res: ["--methods", "clip-kmean", "--results-dir", res],
        ["unknown method 'clip-kmean'", "did you mean", "'clip-kmeans'"],
    ),
    "unknown-dataset": (
        lambda tmp, res: ["--datasets", "nosuchdataset", "--results-dir", res],
        ["unknown dataset 'nosuchdataset'"],
    ),
    "unknown-option": (
        lambda tmp, res: ["--methods", "clip-kmeans", "--result-dir", res],
        ["--result-dir", "did you mean '--results-dir'"],
    ),
    "seeds-not-numbers": (
        lambda tmp, res: ["--seeds", "a-b", "--results-dir", res],
        ["--seeds", "'a-b'"],
    ),
    "seeds-empty-range": (
        lambda tmp, res: ["--seeds", "3-1", "--results-dir", res],
        ["--seeds", "3-1", "empty"],
    ),
    "results-dir-is-a-file": (
        lambda tmp, res: ["--results-dir", _write(res, "not a folder\n")],
        ["not a directory"],
    ),
    "results-dir-below-a-file": (
        lambda tmp, res: ["--results-dir", _write(tmp / "afile", "x") / "sub"],
        ["not a directory"],
    ),
    "missing-config": (
        lambda tmp, res: ["--config", tmp / "nope.toml", "--results-dir", res],
        ["--config", "nope.toml", "cannot read"],
    ),
    "config-unknown-key": (
        lambda tmp, res: ["--config", _write(tmp / "c.toml", 'seed = "0"\n'), "--results-dir", res],
        ["unknown key 'seed'", "did you mean 'seeds'"],
    ),
    "config-bad-param": (
        lambda tmp, res: [
            "--config",
            _write(tmp / "c.toml", "[params.clip-kmeans]\nn_inits = 2\n"),
            "--results-dir",
            res,
        ],
        ["'n_inits'", "did you mean 'n_init'"],
    ),
    "config-invalid-toml": (
        lambda tmp, res: [
            "--config",
            _write(tmp / "c.toml", "methods = [\n"),
            "--results-dir",
            res,
        ],
        ["invalid TOML"],
    ),
    "bad-device": (
        lambda tmp, res: ["--device", "tpu", "--results-dir", res],
        ["--device", "tpu"],
    ),
    "backbone-for-demo": (
        lambda tmp, res: ["--backbone", "ViT-B-32:openai", "--results-dir", res],
        ["tiny-random"],
    ),
    "grid-not-a-number": (
        lambda tmp, res: ["--methods", "ours", "--grid", "ours.eta=abc", "--results-dir", res],
        ["method 'ours'", "eta='abc' must be a number"],
    ),
    "grid-below-minimum": (
        lambda tmp, res: [
            "--methods",
            "clip-kmeans",
            "--grid",
            "clip-kmeans.n_init=-3",
            "--results-dir",
            res,
        ],  # fmt: skip
        ["n_init=-3 must be >= 1"],
    ),
    "grid-float-for-an-integer": (
        lambda tmp, res: [
            "--methods",
            "clip-kmeans",
            "--grid",
            "clip-kmeans.n_init=2.5",
            "--results-dir",
            res,
        ],  # fmt: skip
        ["n_init=2.5 must be an integer"],
    ),
    "grid-not-an-option": (
        lambda tmp, res: [
            "--methods",
            "ours-notrain",
            "--grid",
            "ours-notrain.representation=banana",
            "--results-dir",
            res,
        ],  # fmt: skip
        ["representation='banana' must be one of 'sharpened', 'relation', 'concat'"],
    ),
    "config-param-wrong-type": (
        lambda tmp, res: [
            "--config",
            _write(tmp / "c.toml", '[params.clip-kmeans]\nn_init = "abc"\n'),
            "--results-dir",
            res,
        ],  # fmt: skip
        ["n_init='abc' must be an integer"],
    ),
    "config-grid-not-a-list": (
        lambda tmp, res: [
            "--config",
            _write(tmp / "c.toml", '[grid]\n"clip-kmeans.n_init" = 3\n'),
            "--results-dir",
            res,
        ],  # fmt: skip
        ["grid must be a table of lists"],
    ),
    "config-not-utf8": (
        lambda tmp, res: [
            "--config",
            _write_bytes(tmp / "c.toml", b"seeds = '\xff\xfe'\n"),
            "--results-dir",
            res,
        ],  # fmt: skip
        ["not UTF-8 text"],
    ),
    "seed-too-large": (
        lambda tmp, res: ["--seeds", "99999999999999999999", "--results-dir", res],
        ["above the largest seed, 4294967295"],
    ),
    "too-many-seeds": (
        lambda tmp, res: ["--seeds", "0-4294967295", "--dry-run", "--results-dir", res],
        ["more than 10,000 seeds"],
    ),
    "cache-dir-below-a-file": (
        lambda tmp, res: ["--cache-dir", _write(tmp / "afile", "x") / "sub", "--results-dir", res],
        ["--cache-dir", "afile is not a directory"],
    ),
    "vocabulary-missing": (
        lambda tmp, res: ["--vocabulary", tmp / "nouns.txt", "--results-dir", res],
        ["--vocabulary", "nouns.txt", "cannot read"],
    ),
    "negative-workers": (
        lambda tmp, res: ["--workers", "-1", "--results-dir", res],
        ["--workers must be 0"],
    ),
}


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input(cli, tmp_path, case):
    build, expected = BAD_INPUT[case]
    results = tmp_path / "results"
    argv = build(tmp_path, results)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = cli("run", *argv)
    assert result.status == 2
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith("laicbench: error:")
    for text in expected:
        assert text in line
    assert "Traceback" not in result.err + result.out
    # nothing created or changed
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before
    if case != "results-dir-is-a-file":
        assert not results.exists()


def test_unknown_option_suggests_only_the_subcommands_own_options(cli, tmp_path):
    wrong = cli("run", "--ou", tmp_path / "x", "--results-dir", tmp_path / "r")
    assert wrong.status == 2
    assert "--out" not in wrong.err  # an option of `report`, not of `run`
    close = cli("report", "--outt", tmp_path / "x")
    assert close.status == 2
    assert close.err_lines == [
        "laicbench: error: unrecognized option --outt (did you mean '--out'?) "
        "(see 'laicbench report --help')"
    ]


def test_option_without_a_command_is_not_suggested_as_itself(cli, tmp_path, monkeypatch):
    # `laicbench` alone runs the default sweep; `laicbench --dry-run` (an option of `run` without
    # the command) must not answer "unrecognized option --dry-run (did you mean '--dry-run'?)"
    monkeypatch.chdir(tmp_path)
    result = cli("--dry-run")
    assert "did you mean '--dry-run'" not in result.err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# (f) config files


def test_config_file_is_honoured_and_flags_override_it(cli, tmp_path):
    results = tmp_path / "from-config"
    config = tmp_path / "sweep.toml"
    config.write_text(
        'methods = ["clip-kmeans"]\n'
        'datasets = "demo"\n'
        'seeds = "0,2"\n'
        f"results_dir = {json.dumps(str(results))}\n"
        "\n"
        "[params.clip-kmeans]\n"
        "n_init = 2\n"
    )
    result = cli("run", "--config", config, "--seeds", "1")
    assert result.status == 0, result.err
    (path,) = records_in(results)  # only the flag's seed, in the config's results dir
    record = load(path)
    assert record["seed"] == 1
    assert record["method"]["params"] == {**KMEANS_PARAMS, "n_init": 2}
    assert record["dataset"]["name"] == "demo-10"

    result = cli("run", "--config", config)
    assert result.status == 0, result.err
    assert "2 new, 0 skipped" in result.out
    assert sorted(by_seed(results)) == [0, 1, 2]
    for path in records_in(results):
        assert load(path)["method"]["params"]["n_init"] == 2


def test_params_change_the_run_identity(cli, tmp_path):
    results = tmp_path / "results"
    assert cli(*kmeans_args(results, "0")).status == 0
    config = tmp_path / "sweep.toml"
    config.write_text("[params.kmeans]\nn_init = 3\n")  # by alias
    result = cli(*kmeans_args(results, "0", "--config", config))
    assert result.status == 0, result.err
    assert "1 new, 0 skipped" in result.out
    params = sorted(load(p)["method"]["params"]["n_init"] for p in records_in(results))
    assert params == [3, 10]


# --------------------------------------------------------------------------------------------
# (g) defaults


class CheapMethod(Method):
    """A registered method that costs nothing to run."""

    def fit_predict(self, features, n_clusters, seed):
        return (np.arange(len(features.image_test)) + seed) % n_clusters


@pytest.mark.parametrize("argv", [["run"], []], ids=["run", "no-command"])
def test_no_arguments_runs_every_method_on_demo_with_three_seeds(
    cli, tmp_path, monkeypatch, only_methods, argv
):
    # every registered method: here clip-kmeans and one registered by the test (the methods
    # that laicbench ships are left out so that this stays fast)
    only_methods("clip-kmeans")
    cheap = unique_name("cheap")
    registry.register_method(cheap)(type("Cheap", (CheapMethod,), {}))
    methods = registry.methods.names()
    assert methods == ["clip-kmeans", cheap]

    monkeypatch.chdir(tmp_path)
    result = cli(*argv)
    assert result.status == 0, result.err
    results = tmp_path / "results" / "runs"
    records = [load(p) for p in records_in(results)]
    assert len(records) == 3 * len(methods)
    assert {(r["method"]["name"], r["seed"]) for r in records} == {
        (m, s) for m in methods for s in (0, 1, 2)
    }
    assert {r["dataset"]["name"] for r in records} == {"demo-10"}
    assert all(r["status"] == "ok" for r in records)
    assert f"{len(records)} new" in result.out


# --------------------------------------------------------------------------------------------
# (h) Ctrl-C


def test_ctrl_c_keeps_finished_runs_and_leaves_no_partial_files(cli, method_plugin, tmp_path):
    name, folder = method_plugin(
        body="""
        if type(self).calls == 2:
            raise KeyboardInterrupt
        return np.arange(len(features.image_test)) % n_clusters
        """
    )
    results = tmp_path / "results"
    argv = [
        "run",
        "--methods", name,
        "--seeds", "0-2",
        "--results-dir", results,
        "--include-path", folder,
    ]  # fmt: skip
    result = cli(*argv)
    assert result.status == 130
    assert "interrupted" in result.err
    files = sorted(p.name for p in results.rglob("*") if p.is_file())
    assert len(files) == 2
    assert files[0].startswith("seed0-") and files[0].endswith(".json")
    assert files[1].startswith("seed0-") and files[1].endswith(".pred.npz")
    assert not list(results.rglob("*.tmp"))
    assert load(records_in(results)[0])["status"] == "ok"

    # the method no longer raises (only its 2nd call did): the rerun skips seed 0
    result = cli(*argv)
    assert result.status == 0, result.err
    assert "2 new, 1 skipped" in result.out
    assert sorted(by_seed(results)) == [0, 1, 2]
    assert not list(results.rglob("*.tmp"))


def test_records_and_cache_honour_the_umask(cli, tmp_path):
    """Colleagues on shared storage can read what a run wrote (no private 0600/0700 files)."""
    import os
    import stat

    previous = os.umask(0o022)
    try:
        results, cache = tmp_path / "results", tmp_path / "cache"
        argv = [*kmeans_args(results, "0"), "--cache-dir", cache, "--executor", "local"]
        assert cli(*argv).status == 0
    finally:
        os.umask(previous)
    written = [p for p in [*results.rglob("*"), *cache.rglob("*")] if not p.is_symlink()]
    assert any(p.is_file() for p in written) and any(p.is_dir() for p in written)
    for path in written:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))
