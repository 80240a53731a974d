"""scripts/device_check.py: one line and exit status 2 without a GPU; its demo comparison."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from laicbench.run.config import SweepConfig
from laicbench.run.sweep import run_sweep

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "device_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["device_check"] = module
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_it_stops_at_once_with_one_line(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "no CUDA GPU" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing started


def test_the_demo_comparison_pairs_runs_and_reports_their_agreement(tmp_path):
    check = load_script()
    folders = {}
    for name in ("a", "b"):
        folders[name] = tmp_path / name
        config = SweepConfig(
            methods=["clip-kmeans"],
            datasets=["demo"],
            seeds="0",
            executor="local",
            device="cpu",
            results_dir=str(folders[name]),
        )
        run_sweep(config)
    lines, agree = check.compare_demo(folders["a"], folders["b"])
    assert agree
    assert lines[-1].startswith("  clip-kmeans: 1.0000, 0.0000,")
    _, agree = check.compare_demo(folders["a"], tmp_path / "none")  # runs missing on one side
    assert not agree
