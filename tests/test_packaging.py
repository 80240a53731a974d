"""The plugin folders are installed under laicbench's namespace, not as top-level packages."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import laicbench.datasets
import laicbench.methods

import laicbench


def run_python(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_builtin_plugins_import_under_laicbench():
    clip_kmeans = importlib.import_module("laicbench.methods.clip_kmeans")
    demo = importlib.import_module("laicbench.datasets.demo")
    assert laicbench.methods.__name__ == "laicbench.methods"
    assert laicbench.datasets.__name__ == "laicbench.datasets"
    assert clip_kmeans.ClipKMeans.__module__ == "laicbench.methods.clip_kmeans"
    assert demo.Demo10.__module__ == "laicbench.datasets.demo"
    assert laicbench.api.registry.methods.get("clip-kmeans") is clip_kmeans.ClipKMeans
    assert laicbench.api.registry.datasets.get("demo") is demo.Demo10


def test_no_top_level_plugin_packages(tmp_path):
    """Importing laicbench (from outside the source tree) makes no `datasets`/`methods` of ours.

    A top-level `datasets` would shadow Hugging Face's package of that name.
    """
    script = (
        "import importlib.util, json, sys\n"
        "import laicbench, laicbench.datasets, laicbench.methods, laicbench.cli.main\n"
        "from laicbench.api import registry\n"
        "registry.methods.load_builtins(); registry.datasets.load_builtins()\n"
        "out = {}\n"
        "for name in ('datasets', 'methods'):\n"
        "    spec = importlib.util.find_spec(name)\n"
        "    mod = sys.modules.get(name)\n"
        "    out[name] = {\n"
        "        'spec_origin': spec.origin if spec else None,\n"
        "        'module_file': getattr(mod, '__file__', None) if mod else None,\n"
        "    }\n"
        "out['ours'] = {\n"
        "    'datasets': laicbench.datasets.__file__, 'methods': laicbench.methods.__file__\n"
        "}\n"
        "print(json.dumps(out))\n"
    )
    proc = run_python(["-c", script], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ("datasets", "methods"):
        ours = Path(found["ours"][name]).resolve().parent
        assert Path(found["ours"][name]).name == "__init__.py"
        for key in ("spec_origin", "module_file"):
            origin = found[name][key]
            if origin is not None:
                assert Path(origin).resolve().parent != ours, (name, key, origin)


def test_python_m_laicbench_lists_datasets(tmp_path):
    proc = run_python(["-m", "laicbench", "list", "datasets"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "demo-10" in proc.stdout
    assert "demo-50" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_python_m_laicbench_usage_error_exit_status(tmp_path):
    proc = run_python(["-m", "laicbench", "list", "nothing"], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("laicbench: error:")
    assert "Traceback" not in proc.stderr


def test_every_package_folder_is_listed_in_pyproject():
    """A sub-package missing from pyproject's explicit list is left out of wheels (the installed
    CLI then fails with ModuleNotFoundError), while the editable install hides it."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    root = Path(__file__).parents[1]
    listed = set(
        tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(("laicbench", *init.parent.relative_to(root / "laicbench").parts))
        for init in (root / "laicbench").rglob("__init__.py")
    }
    assert found <= listed, sorted(found - listed)
