"""No silent wrong number: hostile inputs that used to give a table that was wrong without a word
(issue 24, section 1) and records of the wrong shape that broke every command (section 3)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import method_plugin_source
from test_features_file import write_features

from laicbench.api import registry
from laicbench.api.errors import UserError
from laicbench.run.records import SCHEMA_VERSION, ResultStore


def _run(cli, *argv):
    return cli("run", "--executor", "local", "--seeds", "0", *argv)


def _status(cli, *argv):
    return cli("status", "--seeds", "0", *argv)


def _record_paths(results: Path) -> list[Path]:
    return ResultStore(results).record_paths()


# ------------------------------------------------------------------------------------------
# labels a method returns


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("return (np.arange(len(features.image_test)) % n_clusters).astype(float)", "dtype"),
        ("return np.full(len(features.image_test), -1)", "no noise label"),
        ("return np.arange(len(features.image_test))", "expected 0 to 2"),
        ("return np.zeros(len(features.image_test) - 1, dtype=int)", "shape"),
    ],
)
def test_labels_a_method_cannot_return_fail_the_run(cli, tmp_path, method_plugin, body, problem):
    name, folder = method_plugin(body)
    path = write_features(tmp_path / "feats.npz")
    results = tmp_path / "results"
    result = _run(cli, "--include-path", folder, "--methods", name, "--datasets", path,
                  "--results-dir", results)  # fmt: skip
    assert result.status == 1
    assert problem in result.out
    (record,) = (json.loads(p.read_text()) for p in _record_paths(results))
    assert record["status"] == "error" and record["metrics"] is None
    assert record["error"]["type"] == "LabelsError"


def test_integer_labels_in_range_are_scored(cli, tmp_path, method_plugin):
    name, folder = method_plugin("return (np.arange(len(features.image_test)) % n_clusters)")
    path = write_features(tmp_path / "feats.npz")
    results = tmp_path / "results"
    result = _run(cli, "--include-path", folder, "--methods", name, "--datasets", path,
                  "--results-dir", results, "--k-factor", "2")  # fmt: skip
    assert result.status == 0, result.out
    (record,) = (json.loads(p.read_text()) for p in _record_paths(results))
    assert record["status"] == "ok" and record["n_clusters_found"] == 6


# ------------------------------------------------------------------------------------------
# features files: one class, one file spelled several ways


def test_a_features_file_with_one_class_is_refused(cli, tmp_path):
    n = np.zeros
    path = write_features(tmp_path / "one.npz", labels_train=n(60, int), labels_test=n(30, int),
                          class_names=np.array(["only"]))  # fmt: skip
    result = _run(cli, "--methods", "clip-kmeans", "--datasets", path,
                  "--results-dir", tmp_path / "results")  # fmt: skip
    assert result.status == 2
    assert result.err_lines == [
        f"laicbench: error: features file {path}: 1 class only: clustering into K < 2 "
        "clusters is trivially right; a features file needs at least two classes"
    ]
    assert not (tmp_path / "results").exists()


def test_one_features_file_spelled_three_ways_is_one_dataset(cli, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "sub").mkdir()
    real = write_features(tmp_path / "data" / "feats.npz")
    (tmp_path / "link.npz").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    spellings = ["data/feats.npz", "sub/../data/feats.npz", str(tmp_path / "link.npz")]
    first = _run(cli, "--methods", "clip-kmeans", "--datasets", spellings[0],
                 "--results-dir", results)  # fmt: skip
    assert "1 new, 0 skipped" in first.out
    for spelling in spellings[1:]:
        again = _run(cli, "--methods", "clip-kmeans", "--datasets", spelling,
                     "--results-dir", results)  # fmt: skip
        assert "0 new, 1 skipped" in again.out, spelling
    (record,) = (json.loads(p.read_text()) for p in _record_paths(results))
    assert record["dataset"]["name"] == str(real.resolve())


# ------------------------------------------------------------------------------------------
# method names and the set of records every command reads


@pytest.mark.parametrize("bad", ["../../x", "a/b", ".hidden", "", "a\\b", "x y"])
def test_unsafe_method_names_are_refused_at_registration(bad):
    with pytest.raises(UserError, match="is not allowed"):
        registry.methods.add(bad, type("M", (), {}))
    assert bad not in registry.methods._alias_to_name


def test_a_plugin_with_a_path_as_name_writes_nothing(cli, tmp_path, write_plugin):
    folder = write_plugin(method_plugin_source("../../escape"))
    results = tmp_path / "a" / "b" / "results"
    result = _run(cli, "--include-path", folder, "--methods", "../../escape",
                  "--datasets", "demo-10", "--results-dir", results)  # fmt: skip
    assert result.status == 2
    assert len(result.err_lines) == 1 and "'../../escape'" in result.err
    assert not list(tmp_path.rglob("*.json"))


def test_a_symlinked_folder_of_the_results_dir_is_read_by_every_command(cli, tmp_path):
    path = write_features(tmp_path / "feats.npz")
    elsewhere = tmp_path / "elsewhere"
    args = ["--methods", "clip-kmeans", "--datasets", path]
    assert _run(cli, *args, "--results-dir", elsewhere).status == 0
    results = tmp_path / "results"
    results.mkdir()
    (results / "clip-kmeans").symlink_to(elsewhere / "clip-kmeans", target_is_directory=True)
    (elsewhere / "clip-kmeans" / "loop").symlink_to(results, target_is_directory=True)

    assert len(_record_paths(results)) == 1  # the loop back to the root is read once
    assert "1 done, 0 failed" in _status(cli, *args, "--results-dir", results).out
    assert "0 new, 1 skipped" in _run(cli, *args, "--results-dir", results).out
    report = cli("report", "--results-dir", results, "--out", tmp_path / "report")
    assert report.status == 0 and "report of 1 runs" in report.out
    rescore = cli("rescore", "--results-dir", results, "--all")
    assert rescore.status == 0 and "rescored 1 record(s)" in rescore.out


# ------------------------------------------------------------------------------------------
# records: newer schema, wrong-typed fields


def _one_run(cli, tmp_path) -> tuple[list, Path, Path]:
    path = write_features(tmp_path / "feats.npz")
    results = tmp_path / "results"
    args = ["--methods", "clip-kmeans", "--datasets", path, "--results-dir", results]
    assert _run(cli, *args).status == 0
    (record_path,) = _record_paths(results)
    return args, results, record_path


def test_a_record_of_a_newer_schema_is_refused_and_never_rewritten(cli, tmp_path):
    args, results, record_path = _one_run(cli, tmp_path)
    data = json.loads(record_path.read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    data["scoring"] = {"version": 1}  # would be rescored if it were of this schema
    text = json.dumps(data)
    record_path.write_text(text)
    expected = (
        f"laicbench: error: {record_path}: record of schema_version {SCHEMA_VERSION + 1}, "
        f"newer than this release's {SCHEMA_VERSION}: upgrade laicbench to read it, or use "
        "another --results-dir"
    )
    for argv in (
        ["report", "--results-dir", results, "--out", tmp_path / "report"],
        ["rescore", "--results-dir", results, "--all"],
        ["status", "--seeds", "0", *args],
        ["run", "--executor", "local", "--seeds", "0", *args],
        ["run", "--executor", "local", "--seeds", "0", "--overwrite", *args],
    ):
        result = cli(*argv)
        assert (result.status, result.err_lines) == (2, [expected]), argv
    assert record_path.read_text() == text
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("metrics", {"acc": "97.1", "nmi": 90.0}, "metrics['acc'] is a str, not a number"),
        ("metrics", "97.1", "metrics is a str, not a mapping of numbers"),
        ("predictions", "y.pred.npz", "predictions is a str, not a mapping of file name and"),
        ("inputs", ["sha256"], "inputs is a list, not a mapping"),
        ("cluster_sizes", "balanced", "cluster_sizes is a str, not a mapping of numbers"),
        ("seed", "0", "seed is a str, not an integer"),
        ("status", 1, "status is an int, not a string"),
        ("environment", {"libraries": ["numpy"]}, "environment.libraries is a list, not a mapping"),
    ],
)  # fmt: skip
def test_a_record_with_a_wrong_typed_field_is_skipped_and_named(
    cli, tmp_path, field, value, problem
):
    args, results, record_path = _one_run(cli, tmp_path)
    # a second, good record of another method, so that the report has something to show
    assert _run(cli, *args, "--seeds", "1").status == 0
    data = json.loads(record_path.read_text())
    data[field] = value
    record_path.write_text(json.dumps(data))

    status = _status(cli, *args)
    assert status.status == 0
    assert f"1 damaged: unusable record {record_path}: malformed record: {problem}" in status.out
    report = cli("report", "--results-dir", results, "--out", tmp_path / "report")
    assert report.status == 0, report.err
    assert "report of 1 runs" in report.out
    assert str(record_path.relative_to(results)) in report.err
    run = _run(cli, *args)
    assert run.status == 0 and "1 new, 0 skipped" in run.out
    assert f"rerunning: unusable record {record_path}" in run.err
    assert json.loads(record_path.read_text())["status"] == "ok"  # repaired


def test_a_folder_where_a_record_should_be_is_named(cli, tmp_path):
    args, results, record_path = _one_run(cli, tmp_path)
    record_path.unlink()
    record_path.mkdir()
    status = _status(cli, *args)
    assert f"1 damaged: unusable record {record_path}: unreadable" in status.out
    assert os.path.isdir(record_path)


# ------------------------------------------------------------------------------------------
# extraction flags that cannot apply


@pytest.mark.parametrize("flag", [["--precision", "fp16"], ["--vocabulary", "NOUNS"]])
@pytest.mark.parametrize("command", ["run", "status"])
def test_an_extraction_flag_no_dataset_reads_is_refused(cli, tmp_path, flag, command):
    vocabulary = tmp_path / "nouns.txt"
    vocabulary.write_text("apple\npear\n")
    flag = [str(vocabulary) if v == "NOUNS" else v for v in flag]
    path = write_features(tmp_path / "feats.npz")
    results = tmp_path / "results"
    for datasets in ("demo-10", str(path)):
        result = cli(command, "--seeds", "0", "--methods", "clip-kmeans", "--datasets", datasets,
                     "--results-dir", results, *flag)  # fmt: skip
        assert result.status == 2
        assert result.err_lines == [
            f"laicbench: error: {' '.join(flag)} (flag or config) cannot apply: no dataset of "
            "this sweep computes features (the demo datasets and features files carry their "
            "own); drop it"
        ]
    assert not results.exists()


# ------------------------------------------------------------------------------------------
# a method's source is part of its runs' identity


def _reload_plugin(name: str, folder: Path) -> None:
    """Forget method `name` and its plugin module, as a new process would not have them."""
    for module in [m for m in sys.modules if m.startswith("laicbench_plugins.")]:
        if getattr(sys.modules[module], "__file__", "").startswith(str(folder)):
            del sys.modules[module]
    registry.methods._entries.pop(name)
    registry.methods._alias_to_name.pop(name)


def test_a_plugin_whose_code_changed_is_outdated_everywhere(cli, tmp_path, method_plugin):
    name, folder = method_plugin("return np.arange(len(features.image_test)) % n_clusters")
    path = write_features(tmp_path / "feats.npz")
    results = tmp_path / "results"
    args = ["--include-path", folder, "--methods", name, "--datasets", path,
            "--results-dir", results]  # fmt: skip
    assert _run(cli, *args).status == 0
    (record_path,) = _record_paths(results)
    stored = json.loads(record_path.read_text())["method"]["source_sha256"]
    assert len(stored) == 64
    report_args = ["report", "--results-dir", results, "--out", tmp_path / "report"]
    assert "report of 1 runs" in cli(*report_args).out

    plugin_file = next(folder.glob("*.py"))  # same version, other labels
    plugin_file.write_text(plugin_file.read_text().replace("% n_clusters", "% 2"))
    _reload_plugin(name, folder)
    assert "1 outdated: method source changed (same version)" in _status(cli, *args).out
    report = cli(*report_args)  # the only record is outdated: nothing to report
    assert report.status == 2 and "1 outdated" in report.err
    assert "1 new, 0 skipped" in _run(cli, *args).out
    again = json.loads(record_path.read_text())["method"]["source_sha256"]
    assert again != stored
    assert "report of 1 runs" in cli(*report_args).out


def test_a_record_without_a_source_hash_is_judged_by_version(cli, tmp_path):
    args, results, record_path = _one_run(cli, tmp_path)
    data = json.loads(record_path.read_text())
    del data["method"]["source_sha256"]  # as records written before it was stored
    record_path.write_text(json.dumps(data))
    assert "1 done, 0 failed, 0 outdated" in _status(cli, *args).out


# ------------------------------------------------------------------------------------------
# the report uses today's inputs only, unless told otherwise (and then says so in the table)


def _regenerate(path: Path) -> None:
    """The same features file path, other content (the test points drawn with another seed)."""
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["image_test"] = arrays["image_test"][::-1].copy()
    arrays["labels_test"] = arrays["labels_test"][::-1].copy()
    np.savez(path, **arrays)


def test_report_leaves_out_runs_of_a_regenerated_features_file(cli, tmp_path, method_plugin):
    name, folder = method_plugin()
    path = write_features(tmp_path / "feats.npz")
    results = tmp_path / "results"
    common = ["--include-path", folder, "--datasets", path, "--results-dir", results]
    assert _run(cli, *common, "--methods", f"clip-kmeans,{name}").status == 0
    _regenerate(path)
    assert "1 new, 0 skipped" in _run(cli, *common, "--methods", "clip-kmeans").out

    out = tmp_path / "report"
    report = cli("report", "--include-path", folder, "--results-dir", results, "--out", out)
    assert report.status == 0, report.err
    assert "report of 1 runs" in report.out
    assert "left out 1 record: 1 outdated; --allow-outdated keeps the outdated ones" in report.err
    table = (out / "main_table.md").read_text()
    assert "clip-kmeans" in table and name not in table and "§" not in table
    runs = (out / "runs.csv").read_text()
    assert "outdated" in runs

    kept = cli("report", "--include-path", folder, "--results-dir", results, "--out", out,
               "--allow-outdated")  # fmt: skip
    assert kept.status == 0, kept.err
    assert "report of 2 runs" in kept.out and "kept 1 outdated record(s)" in kept.err
    rows = {
        line.split("|")[1].strip(): line
        for line in (out / "main_table.md").read_text().splitlines()
        if line.startswith("| ")
    }
    assert "§" in rows[name] and "§" not in rows["clip-kmeans"]
    caption = (out / "main_table.md").read_text().splitlines()[0]
    assert "§: made (in part) from inputs other than today's" in caption
    assert "\\textsuperscript{\\ddag}" in (out / "main_table.tex").read_text()
    assert 'class="mark outdated"' in (out / "index.html").read_text()
    assert (
        "Includes 1 outdated run(s) kept with --allow-outdated"
        in (out / "confidence_intervals.md").read_text()
    )
    assert (
        "Used on purpose (--allow-outdated): 1 outdated record(s)" in (out / "index.md").read_text()
    )


def test_report_marks_image_runs_made_with_other_inputs_than_the_newest(
    cli, tmp_path, write_plugin
):
    from test_pipeline import image_dataset_setup

    name, _, flags = image_dataset_setup(tmp_path, write_plugin)
    results = tmp_path / "results"
    args = ["--datasets", name, "--results-dir", results, *flags]
    assert _run(cli, *args, "--methods", "clip-kmeans", "--seeds", "0-1").status == 0
    # seed 1 again with another precision: the column now mixes fp32 and bf16 runs
    assert _run(cli, *args, "--methods", "clip-kmeans", "--seeds", "1", "--overwrite",
                "--precision", "bf16").status == 0  # fmt: skip
    plugins = flags[flags.index("--include-path") + 1]
    out = tmp_path / "report"
    report = cli("report", "--include-path", plugins, "--results-dir", results, "--out", out)
    assert report.status == 0, report.err
    assert "report of 1 runs" in report.out and "1 outdated" in report.err


def test_train_on_without_a_test_only_dataset_is_refused(cli, tmp_path):
    result = cli("run", "--methods", "clip-kmeans", "--datasets", "demo-10", "--seeds", "0",
                 "--train-on", "imagenet", "--results-dir", tmp_path / "results")  # fmt: skip
    assert result.status == 2
    assert result.err_lines == [
        "laicbench: error: --train-on imagenet cannot apply: no dataset of this sweep is a "
        "test-only set (the ImageNet shift sets), and the others learn on their own train "
        "split; drop it"
    ]


def test_a_features_file_whose_test_split_has_one_class_is_refused(cli, tmp_path):
    path = write_features(tmp_path / "f.npz", labels_test=np.zeros(30, int))
    result = _run(cli, "--methods", "clip-kmeans", "--datasets", path,
                  "--results-dir", tmp_path / "results")  # fmt: skip
    assert result.status == 2 and len(result.err_lines) == 1
    assert "labels_test holds one class only" in result.err


def test_a_plugin_dataset_with_one_class_is_an_error_record(cli, tmp_path, write_plugin):
    name = "one-class-" + tmp_path.name[-8:].replace("_", "-")
    folder = write_plugin(
        f'''
        import numpy as np
        from laicbench.api.dataset import Dataset
        from laicbench.api.features import DatasetFeatures
        from laicbench.api.registry import register_dataset

        @register_dataset({name!r})
        class OneClass(Dataset):
            """A dataset of one class."""

            n_classes = 1
            native_backbone = "features-file"

            def load(self, backbone, device, settings):
                x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
                y = np.zeros(20, dtype=np.int64)
                return DatasetFeatures(x, x, y, y, ["only"])
        '''
    )
    results = tmp_path / "results"
    result = _run(cli, "--include-path", folder, "--methods", "clip-kmeans", "--datasets", name,
                  "--results-dir", results)  # fmt: skip
    assert result.status == 1
    assert f"{name} has 1 class: K must be at least 2" in result.out
    (record,) = (json.loads(p.read_text()) for p in _record_paths(results))
    assert record["status"] == "error" and record["metrics"] is None


def test_a_deeply_nested_stray_json_and_deep_folders_are_named_not_a_crash(cli, tmp_path):
    args, results, record_path = _one_run(cli, tmp_path)
    stray = results / "clip-kmeans" / "stray.json"
    stray.write_text("[" * 100_000 + "]" * 100_000)
    deep = results / "deep"
    for i in range(300):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    (deep / "x.json").write_text("{}")  # not a record: ignored

    assert stray in _record_paths(results) and len(_record_paths(results)) == 3
    report = cli("report", "--results-dir", results, "--out", tmp_path / "report")
    assert report.status == 0, report.err
    assert "1 unreadable" in report.err and "clip-kmeans/stray.json" in report.err
    assert "rescored 1 record(s)" in cli("rescore", "--results-dir", results, "--all").out


def test_newest_inputs_compare_each_other_backbone_separately():
    from laicbench.run.plan import TodayInputs, run_state
    from laicbench.run.records import DatasetInfo, MethodInfo, RunRecord

    def record(inputs: dict, finished: str) -> RunRecord:
        spec = {"method": "clip-kmeans", "dataset": "no-such-image-set", "backbone": "b",
                "seed": 0, "params": {}}  # fmt: skip
        return RunRecord("x", "ok", spec, MethodInfo("clip-kmeans", "1"),
                         DatasetInfo("no-such-image-set"), "b", 0, inputs=inputs,
                         finished_at=finished)  # fmt: skip

    reads_a = record({"precision": "fp32", "spaces": {"a": {"weights": 1}}}, "2026-01-01")
    reads_c = record({"precision": "fp32", "spaces": {"c": {"weights": 3}}}, "2026-01-02")
    older_a = record({"precision": "fp32", "spaces": {"a": {"weights": 0}}}, "2025-12-31")
    other_precision = record({"precision": "fp16"}, "2025-12-30")
    today = TodayInputs([reads_a, reads_c, older_a, other_precision])
    states = [run_state(r, today(r)) for r in (reads_a, reads_c, older_a, other_precision)]
    assert states == ["done", "done", "outdated", "outdated"]
