"""The built wheel carries the plugin folders under laicbench's namespace, and entry points load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from laicbench.api.registry import Registry

pytestmark = pytest.mark.slow  # builds and installs wheels

REPO = Path(__file__).resolve().parent.parent


def _run(args: list[str], env_path: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(env_path)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return next(out.glob("laicbench-*.whl"))


def test_wheel_ships_plugins_without_top_level_datasets_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "laicbench/methods/clip_kmeans.py" in names
    assert "laicbench/datasets/demo.py" in names
    assert "laicbench/data/model_configs/laicbench-tiny.json" in names
    top_level = {name.split("/")[0] for name in names}
    assert "datasets" not in top_level and "methods" not in top_level


def test_non_editable_install_runs_the_demo(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    where = _run(
        [
            "-c",
            "import laicbench.methods.clip_kmeans as m, laicbench.datasets.demo as d;"
            "print(m.__file__); print(d.__file__)",
        ],
        target,
        tmp_path,
    )
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(target)) for line in where.stdout.split())
    results = tmp_path / "runs"
    run = _run(
        [
            "-m",
            "laicbench",
            "run",
            "--methods",
            "clip-kmeans",
            "--datasets",
            "demo",
            "--seeds",
            "0",
            "--results-dir",
            str(results),
        ],
        target,
        tmp_path,
    )
    assert run.returncode == 0, run.stderr
    (record,) = results.rglob("*.json")
    assert json.loads(record.read_text())["status"] == "ok"


PLUGIN = '''
import numpy as np
from laicbench.api.method import Method

class EntryPointMethod(Method):
    """Labels every test image 0 (an entry-point plugin for the tests)."""

    def fit_predict(self, features, n_clusters, seed):
        return np.zeros(len(features.image_test), dtype=int)
'''


@pytest.fixture()
def entry_point_dist(tmp_path) -> Path:
    """A folder that is an installed distribution declaring a laicbench.methods entry point."""
    (tmp_path / "ep_plugin_pkg.py").write_text(PLUGIN)
    info = tmp_path / "ep_plugin_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[laicbench.methods]\nep-method = ep_plugin_pkg:EntryPointMethod\n"
    )
    return tmp_path


def test_entry_point_plugin_is_registered(entry_point_dist, monkeypatch):
    monkeypatch.syspath_prepend(str(entry_point_dist))
    registry = Registry("method", "laicbench.methods", builtin=())
    entry = registry.entry("ep-method")
    assert entry.obj.__name__ == "EntryPointMethod"
    assert entry.origin == "entry point"
    assert entry.description.startswith("Labels every test image 0")


def test_entry_point_plugin_listed_and_run_by_cli(entry_point_dist, tmp_path):
    listing = _run(["-m", "laicbench", "list", "methods"], entry_point_dist, tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "ep-method" in listing.stdout and "entry point" in listing.stdout
    results = tmp_path / "runs"
    run = _run(
        [
            "-m",
            "laicbench",
            "run",
            "--methods",
            "ep-method",
            "--datasets",
            "demo",
            "--seeds",
            "0",
            "--results-dir",
            str(results),
        ],
        entry_point_dist,
        tmp_path,
    )
    assert run.returncode == 0, run.stderr
    (record,) = results.rglob("*.json")
    assert json.loads(record.read_text())["metrics"]["acc"] == pytest.approx(10.0)
