"""The Python API under the CLI: run_sweep, SweepConfig (every flag a field, TOML the same), the
typed RunRecord and its schema-1 files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

import laicbench
from laicbench.api.errors import UserError
from laicbench.cli.main import build_parser
from laicbench.run.config import SweepConfig, load_config
from laicbench.run.records import RunRecord, read_record

SCHEMA1 = Path(__file__).parent / "golden" / "schema1"
# flags of `laicbench run` that are not part of what a sweep is: how the command behaves
COMMAND_ONLY = {"help", "dry_run", "config", "command"}


def test_run_sweep_runs_stores_and_resumes(tmp_path):
    config = laicbench.SweepConfig(
        methods=["clip-kmeans"],
        datasets=["demo"],
        seeds="0-1",
        results_dir=str(tmp_path / "runs"),
        executor="local",
        params={"clip-kmeans": {"n_init": 2}},
    )
    started = []
    result = laicbench.run_sweep(config, on_start=started.append)
    assert [s.seed for s in started] == [0, 1]
    assert len(result.finished) == 2 and not result.skipped and not result.failed
    for spec, record in result.finished:
        assert isinstance(record, RunRecord) and record.ok
        assert record.method.params["n_init"] == 2
        assert read_record(tmp_path / "runs" / f"{spec.run_id}.json") == record

    again = laicbench.run_sweep(config)
    assert not again.finished and len(again.skipped) == 2
    assert [r.metrics for r in again.records] == [r.metrics for _, r in result.finished]


def test_every_run_flag_is_a_config_field_and_toml_takes_them_all(tmp_path):
    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]
    flags = {a.dest for a in run._actions} - COMMAND_ONLY
    assert flags <= {f.name for f in fields(SweepConfig)}

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (tmp_path / "sweep.toml").write_text(
        f'data_root = "{tmp_path}"\n'
        f'cache_dir = "{tmp_path / "cache"}"\n'
        "download = false\n"
        'precision = "fp32"\n'
        "batch_size = 8\n"
        "workers = 0\n"
        'executor = "local"\n'
        "num_cpus = 2\n"
        f'include_path = ["{plugins}"]\n'
        'device = "cpu"\n'
    )
    config = load_config(tmp_path / "sweep.toml")
    assert (config.data_root, config.batch_size, config.workers) == (str(tmp_path), 8, 0)
    assert config.include_path == [str(plugins)]
    settings = config.data_settings()
    assert (settings.batch_size, settings.num_workers, settings.precision) == (8, 0, "fp32")


def test_a_wrongly_typed_toml_field_is_one_line(cli, tmp_path):
    (tmp_path / "sweep.toml").write_text('batch_size = "large"\n')
    result = cli("run", "--config", tmp_path / "sweep.toml", "--dry-run")
    assert result.status == 2
    assert result.err.strip() == (
        f"laicbench: error: --config {tmp_path / 'sweep.toml'}: batch_size must be an integer"
    )


def test_the_data_root_of_a_toml_reaches_the_datasets(cli, tmp_path):
    (tmp_path / "sweep.toml").write_text(f'data_root = "{tmp_path / "nowhere"}"\n')
    result = cli(
        "run", "--config", tmp_path / "sweep.toml", "--methods", "clip-kmeans",
        "--datasets", "cifar10", "--results-dir", tmp_path / "runs", "--executor", "local",
    )  # fmt: skip
    assert result.status == 2
    assert str(tmp_path / "nowhere") in result.err


def test_a_schema1_record_of_the_previous_release_reads_and_writes_back_unchanged(tmp_path):
    (path,) = SCHEMA1.rglob("*.json")
    stored = json.loads(path.read_text())
    record = RunRecord.from_dict(stored)
    assert record.method.name == "clip-kmeans" and record.dataset.n_classes == 10
    assert record.metrics == stored["metrics"]
    assert record.to_dict() == stored


def test_schema1_records_are_reported_and_counted_done(cli, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(SCHEMA1, runs)
    result = cli("report", "--results-dir", runs, "--out", tmp_path / "report")
    assert result.status == 0, result.err
    assert "clip-kmeans" in (tmp_path / "report" / "main_table.md").read_text()
    status = cli(
        "status", "--methods", "clip-kmeans", "--datasets", "demo", "--seeds", "0",
        "--results-dir", runs,
    )  # fmt: skip
    assert status.status == 0 and "1 done" in status.out


@pytest.mark.parametrize(
    "data",
    [{"schema_version": 1, "method": {"name": "x"}}, {"schema_version": 1, "seed": "zero"}],
    ids=["no-dataset", "bad-seed"],
)
def test_a_record_missing_fields_is_not_a_record(data):
    with pytest.raises(ValueError, match="malformed record"):
        RunRecord.from_dict(data)


def test_run_sweep_refuses_bad_input_before_any_run(tmp_path):
    config = SweepConfig(methods=["no-such-method"], results_dir=str(tmp_path), executor="local")
    with pytest.raises(UserError, match="unknown method 'no-such-method'"):
        laicbench.run_sweep(config)
    assert list(tmp_path.iterdir()) == []


def test_reports_never_import_torch(tmp_path):
    # reports only read records: the report package, the registries (built-in methods, datasets
    # and figures) and a whole `laicbench report` run in a fresh interpreter without torch
    shutil.copytree(SCHEMA1, tmp_path / "runs")
    code = (
        "import sys\n"
        "import laicbench.report.build\n"
        "assert 'torch' not in sys.modules, 'import'\n"
        "from laicbench.cli.main import main\n"
        f"assert main(['report', '--results-dir', {str(tmp_path / 'runs')!r}]) == 0\n"
        "assert 'torch' not in sys.modules, 'report'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "report" / "index.md").is_file()


def test_a_plugin_needs_one_import_and_methods_never_load_the_profiler():
    # the plugin API is one import line, and the built-in methods declare their benchmark steps
    # in its vocabulary (laicbench.api.bench), so loading them imports neither the profiler nor
    # torch
    code = (
        "import sys\n"
        "from laicbench.api import Method, Need, FeatureBundle, register_method, PrimitiveStep\n"
        "from laicbench.api import registry\n"
        "registry.methods.load_builtins()\n"
        "for cls in (registry.methods.get(n) for n in registry.methods.names()):\n"
        "    for size in ('cifar10', 'imagenet'):\n"
        "        cls.bench_steps(size, 'cpu')\n"
        "assert not [m for m in sys.modules if m.startswith('laicbench.bench')], 'profiler'\n"
        "assert 'torch' not in sys.modules, 'torch'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_python_api_takes_the_forms_a_toml_file_takes():
    config = laicbench.SweepConfig(methods="clip-kmeans, scan", seeds=[0, 2])
    assert config.methods == ["clip-kmeans", "scan"] and config.seeds == "0,2"
    with pytest.raises(UserError, match="SweepConfig: workers must be an integer"):
        laicbench.SweepConfig(workers="two")


def test_plugin_folders_of_a_config_file_are_relative_to_it(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "sweep.toml").write_text('include_path = ["plugins"]\n')
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("conf") / "sweep.toml")
    assert config.include_path == [str(Path("conf") / "plugins")]


def test_no_overwrite_undoes_the_config_files_overwrite(cli, tmp_path):
    runs = tmp_path / "runs"
    args = ["--methods", "clip-kmeans", "--datasets", "demo", "--seeds", "0",
            "--results-dir", runs, "--executor", "local"]  # fmt: skip
    assert cli("run", *args).status == 0
    (tmp_path / "sweep.toml").write_text("overwrite = true\n")
    again = cli("run", *args, "--config", tmp_path / "sweep.toml", "--no-overwrite")
    assert again.status == 0 and "0 new, 1 skipped" in again.out
    forced = cli("run", *args, "--config", tmp_path / "sweep.toml")
    assert forced.status == 0 and "1 new, 0 skipped" in forced.out


def test_an_integer_for_a_float_parameter_is_the_same_run():
    from laicbench.api import registry

    tac = registry.methods.get("tac")
    assert tac.from_params({"temperature": 1}).temperature == 1.0
    assert (
        tac.from_params({"temperature": 1}).get_params()
        == tac.from_params({"temperature": 1.0}).get_params()
    )
    turtle = registry.methods.get("turtle")
    assert turtle.from_params({"gamma_grid": [1, 10]}).gamma_grid == [1.0, 10.0]


def test_a_record_keeps_unknown_keys_of_its_method_and_dataset():
    (path,) = SCHEMA1.rglob("*.json")
    stored = json.loads(path.read_text())
    stored["method"]["from_a_later_release"] = {"x": 1}
    stored["dataset"]["split_note"] = "kept"
    assert RunRecord.from_dict(stored).to_dict() == stored
