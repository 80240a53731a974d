"""A real two-node Ray cluster on this machine (``ray start --head`` and a second node joining
it): a sweep with ``--address`` runs trials on both nodes, and losing the worker node in the
middle of a sweep loses no result. Slow (about two minutes): ``pytest -m "not slow"`` skips it."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

pytest.importorskip("ray")

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).with_name("ray"))
LAICBENCH = str(Path(sys.executable).with_name("laicbench"))

PROBE = """
import time

import numpy as np
import ray

from laicbench.api.method import Method
from laicbench.api.registry import register_method


@register_method("node-probe")
class NodeProbe(Method):
    \"\"\"Cyclic labels after `sleep` seconds; records the Ray node it ran on.\"\"\"

    def __init__(self, sleep: float = 0.0):
        self.sleep = sleep

    def fit_predict(self, features, n_clusters, seed):
        time.sleep(self.sleep)
        self.artefacts_ = {"node": ray.get_runtime_context().get_node_id()}
        return np.arange(len(features.image_test)) % n_clusters
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_with_descendants(processes: list[psutil.Process]) -> None:
    """SIGKILL `processes` and everything they started (Ray's agents rename themselves, so
    only their parentage says whose they are)."""
    family = {p.pid: p for p in processes}
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            family.update({c.pid: c for c in proc.children(recursive=True)})
    for proc in family.values():
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(list(family.values()), timeout=30)


def _processes_of(marker: str) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in proc.info["cmdline"] or []):
            out.append(proc)
    return out


@pytest.fixture
def cluster():
    """(address, worker node's port, environment): a head with 1 CPU and a worker node with 1
    CPU, in a temp dir of their own, so that only their processes are stopped afterwards. Ray's
    token authentication is on, with one token that the nodes and the driver share."""
    temp = tempfile.mkdtemp(prefix="lbray", dir="/tmp")  # short: Unix socket paths are limited
    port, worker_port = _free_port(), _free_port()
    address = f"127.0.0.1:{port}"
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "LAICBENCH_EXECUTOR": "ray",
    }
    common = ["--num-cpus=1", "--num-gpus=0", "--disable-usage-stats"]
    start = [RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
             f"--temp-dir={temp}", "--include-dashboard=false", *common]  # fmt: skip
    subprocess.run(start, check=True, capture_output=True, env=env, timeout=120)
    join = [RAY, "start", f"--address={address}", "--node-ip-address=127.0.0.1",
            f"--node-manager-port={worker_port}", *common]  # fmt: skip
    subprocess.run(join, check=True, capture_output=True, env=env, timeout=120)
    try:
        yield address, worker_port, env
    finally:
        _kill_with_descendants(_processes_of(temp))
        shutil.rmtree(temp, ignore_errors=True)


def _sweep(results: Path, plugins: Path, *extra) -> list[str]:
    return [LAICBENCH, "run", "--methods", "node-probe,clip-kmeans", "--datasets", "demo",
            "--results-dir", str(results), "--include-path", str(plugins), "--executor", "ray",
            *extra]  # fmt: skip


def _records(results: Path) -> dict[str, dict]:
    return {
        p.relative_to(results).as_posix(): json.loads(p.read_text())
        for p in results.rglob("*.json")
        if "_ray" not in p.parts
    }


def test_a_sweep_runs_on_both_nodes_and_survives_losing_one(cluster, tmp_path, write_plugin):
    address, worker_port, env = cluster
    plugins = write_plugin(PROBE)

    spread = tmp_path / "spread"
    argv = _sweep(spread, plugins, "--seeds", "0-3", "--address", address,
                  "--grid", "node-probe.sleep=2.0")  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    records = _records(spread)
    assert len(records) == 8 and all(r["status"] == "ok" for r in records.values())
    nodes = {r["artefacts"]["node"] for r in records.values() if "node" in r["artefacts"]}
    assert len(nodes) == 2  # trials ran on the head and on the worker node

    # lose the worker node while its trials run: nothing is lost, the rerun completes
    lost = tmp_path / "lost"
    argv = _sweep(lost, plugins, "--seeds", "0-7", "--address", address,
                  "--grid", "node-probe.sleep=4.0")  # fmt: skip
    sweep = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    time.sleep(15)  # Tune has started trials on both nodes
    raylets = _processes_of(f"--node_manager_port={worker_port}")
    assert raylets, "the worker node's raylet was not found"
    _kill_with_descendants(raylets)  # the node is gone: its raylet, workers and agents
    _, err = sweep.communicate(timeout=300)
    assert sweep.returncode in (0, 1), err.decode()  # 1: a trial lost with its node
    rerun = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    after = _records(lost)
    assert len(after) == 16 and all(r["status"] == "ok" for r in after.values())
    local = tmp_path / "local"
    argv = [LAICBENCH, "run", "--methods", "clip-kmeans", "--datasets", "demo", "--seeds", "0-7",
            "--executor", "local", "--results-dir", str(local)]  # fmt: skip
    assert subprocess.run(argv, capture_output=True, env=env, timeout=300).returncode == 0
    for path, record in _records(local).items():  # the same metrics as without the accident
        assert after[path]["metrics"] == record["metrics"]
    probes = [r for r in after.values() if r["method"]["name"] == "node-probe"]
    assert len(probes) == 8 and len({json.dumps(r["metrics"]) for r in probes}) == 1


def test_a_driver_killed_with_sigkill_leaves_no_process_behind(tmp_path):
    """The local Ray a sweep starts (raylet, GCS, workers, the runtime-env and dashboard
    agents) goes away once Ray's own timeout has passed: the agents wait up to 60 s to report
    the raylet's death to the dead GCS."""
    argv = [LAICBENCH, "run", "--methods", "clip-kmeans", "--datasets", "demo-50", "--seeds",
            "0-7", "--executor", "ray", "--results-dir", str(tmp_path / "runs")]  # fmt: skip
    driver = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: dict[int, psutil.Process] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for child in psutil.Process(driver.pid).children(recursive=True):
            seen.setdefault(child.pid, child)
        if sum("ray::" in _command(p) for p in seen.values()) >= 2:
            break  # trials are running in Ray workers
        time.sleep(0.5)
    assert any("raylet" in _command(p) for p in seen.values())
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 120
    while [p for p in seen.values() if _alive(p)] and time.monotonic() < deadline:
        time.sleep(1)
    assert not [(p.pid, _command(p)) for p in seen.values() if _alive(p)]


def _command(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a container's init may never reap orphans)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_ctrl_c_stops_a_ray_sweep_keeping_what_is_stored(tmp_path):
    results = tmp_path / "runs"
    argv = [LAICBENCH, "run", "--methods", "clip-kmeans", "--datasets", "demo-50", "--seeds",
            "0-11", "--grid", "clip-kmeans.n_init=30", "--executor", "ray",
            "--results-dir", str(results)]  # fmt: skip
    sweep = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _records(results) and time.monotonic() < deadline:
        time.sleep(0.2)
    sweep.send_signal(signal.SIGINT)
    _, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err and "rerun the same command to do the rest" in " ".join(err.split())
    stored = _records(results)
    assert 1 <= len(stored) < 12 and all(r["status"] == "ok" for r in stored.values())
    assert not [p for p in results.rglob(".*") if "_ray" not in p.parts]  # no partial files
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{12 - len(stored)} new, {len(stored)} skipped" in rerun.stdout
