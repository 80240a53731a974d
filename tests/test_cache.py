"""The feature cache: build once, memory-mapped loads, damage detection, locking, `cache` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import squash, table_rows

import laicbench.data.cache
from laicbench.data.cache import MANIFEST, FeatureCache, cache_key, file_sha256

FIELDS = {"kind": "image", "dataset": "unit", "split": "train", "n": 6}


def sample_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "features": rng.normal(size=(6, 5)).astype(np.float32),
        "labels": np.arange(6, dtype=np.int64) % 3,
    }


class Builder:
    """A build() callable that counts its calls and returns copies of fixed arrays."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.calls = 0

    def __call__(self) -> dict[str, np.ndarray]:
        self.calls += 1
        return {name: array.copy() for name, array in self.arrays.items()}


def assert_arrays_equal(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert set(got) == set(expected)
    for name, array in expected.items():
        assert got[name].dtype == array.dtype
        np.testing.assert_array_equal(np.asarray(got[name]), array)


def subdirs(root: Path) -> list[str]:
    """Every folder below `root` (hidden staging folders included)."""
    return sorted(p.name for p in root.iterdir() if p.is_dir())


# ---------------------------------------------------------------------------------------------
# get_or_build


def test_builds_once_then_loads_memory_mapped_arrays(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    expected = sample_arrays()
    build = Builder(expected)

    key, arrays = cache.get_or_build(FIELDS, build, "unit/train")
    assert build.calls == 1
    assert key == cache_key(FIELDS)
    assert len(key) == 32
    assert_arrays_equal(arrays, expected)
    assert all(isinstance(a, np.memmap) for a in arrays.values())

    for again in (cache, FeatureCache(tmp_path / "cache")):  # same object and a fresh one
        key2, arrays2 = again.get_or_build(dict(FIELDS), build, "unit/train")
        assert key2 == key
        assert build.calls == 1
        assert all(isinstance(a, np.memmap) for a in arrays2.values())
        assert all(not a.flags.writeable for a in arrays2.values())
        assert_arrays_equal(arrays2, expected)

    entry = cache.entry(key)
    assert entry.path == tmp_path / "cache" / key
    assert entry.manifest["key"] == key
    assert entry.manifest["fields"] == FIELDS
    assert entry.manifest["description"] == "unit/train"
    meta = entry.manifest["arrays"]["features"]
    assert meta["shape"] == [6, 5] and meta["dtype"] == "float32"
    assert meta["sha256"] == file_sha256(entry.path / "features.npy")
    assert cache.problems(key) == []
    assert [e.key for e in cache.entries()] == [key]


def test_other_fields_make_another_entry(tmp_path):
    cache = FeatureCache(tmp_path)
    first, second = Builder(sample_arrays(0)), Builder(sample_arrays(1))
    key1, _ = cache.get_or_build(FIELDS, first)
    key2, arrays = cache.get_or_build({**FIELDS, "split": "test"}, second)
    assert key1 != key2
    assert (first.calls, second.calls) == (1, 1)
    assert_arrays_equal(arrays, sample_arrays(1))
    assert sorted(e.key for e in cache.entries()) == sorted([key1, key2])


def test_cache_key_is_canonical():
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1, "b": [1, 2]}) != cache_key({"a": 1, "b": [2, 1]})
    assert cache_key({"a": 1}) != cache_key({"a": "1"})


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-9])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # inside the array data, not the header
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [(_truncate, "features.npy has"), (_flip, "features.npy does not match its checksum")],
    ids=["truncated", "flipped-bytes"],
)
def test_damaged_array_is_detected_and_rebuilt(tmp_path, damage, problem):
    cache = FeatureCache(tmp_path)
    expected = sample_arrays()
    build = Builder(expected)
    key, arrays = cache.get_or_build(FIELDS, build)
    del arrays  # no live memory map of a file about to be rewritten
    file = cache.entry(key).path / "features.npy"
    size = file.stat().st_size
    damage(file)

    problems = cache.problems(key)
    assert len(problems) == 1 and problems[0].startswith(problem)
    if damage is _flip:
        assert file.stat().st_size == size
        assert cache.problems(key, checksums=False) == []  # only the checksum sees it
    else:
        assert f"expected {size}" in problems[0]

    key2, arrays2 = cache.get_or_build(FIELDS, build)
    assert key2 == key
    assert build.calls == 2
    assert_arrays_equal(arrays2, expected)
    assert cache.problems(key) == []


def test_missing_array_file_is_rebuilt(tmp_path):
    cache = FeatureCache(tmp_path)
    build = Builder(sample_arrays())
    key, _ = cache.get_or_build(FIELDS, build)
    (cache.entry(key).path / "labels.npy").unlink()
    assert cache.problems(key) == ["labels.npy is missing"]
    _, arrays = cache.get_or_build(FIELDS, build)
    assert build.calls == 2
    assert_arrays_equal(arrays, sample_arrays())


@pytest.mark.parametrize(
    "manifest",
    [None, b'{"key": "abc", "arr', b"not json", b"{}", b"[]"],
    ids=["missing", "truncated", "not-json", "empty-object", "list"],
)
def test_missing_or_unreadable_manifest_means_rebuild(tmp_path, manifest):
    cache = FeatureCache(tmp_path)
    build = Builder(sample_arrays())
    key, _ = cache.get_or_build(FIELDS, build)
    path = cache.entry(key).path / MANIFEST
    if manifest is None:
        path.unlink()
    else:
        path.write_bytes(manifest)

    assert cache.problems(key)  # never reported intact
    _, arrays = cache.get_or_build(FIELDS, build)
    assert build.calls == 2
    assert_arrays_equal(arrays, sample_arrays())
    assert cache.problems(key) == []


def test_failing_build_leaves_no_entry_and_no_temporary_folder(tmp_path):
    cache = FeatureCache(tmp_path)

    def broken():
        raise RuntimeError("extraction failed")

    with pytest.raises(RuntimeError, match="extraction failed"):
        cache.get_or_build(FIELDS, broken)
    assert subdirs(tmp_path) == []
    assert cache.entries() == []
    assert cache.problems(cache_key(FIELDS)) == ["no readable manifest"]

    build = Builder(sample_arrays())
    _, arrays = cache.get_or_build(FIELDS, build)
    assert build.calls == 1
    assert_arrays_equal(arrays, sample_arrays())


def test_interrupted_store_leaves_no_entry_and_no_temporary_folder(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)

    def interrupted(path, chunk=1 << 22):
        assert Path(path).parent.name.startswith(".")  # the staging folder exists now
        raise KeyboardInterrupt

    monkeypatch.setattr(laicbench.data.cache, "file_sha256", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.get_or_build(FIELDS, Builder(sample_arrays()))
    assert subdirs(tmp_path) == []
    assert cache.entries() == []

    monkeypatch.undo()
    build = Builder(sample_arrays())
    _, arrays = cache.get_or_build(FIELDS, build)
    assert build.calls == 1
    assert_arrays_equal(arrays, sample_arrays())
    assert cache.problems(cache_key(FIELDS)) == []


# ---------------------------------------------------------------------------------------------
# two processes, one build

WORKER = """
import json, os, sys, time
from pathlib import Path

import numpy as np

from laicbench.data.cache import FeatureCache

root, log, out, ready, go = sys.argv[1:6]


def build():
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(1.0)
    return {"features": np.arange(12, dtype=np.float32).reshape(3, 4)}


Path(ready).touch()
while not os.path.exists(go):
    time.sleep(0.005)
start = time.time()
key, arrays = FeatureCache(root).get_or_build({"test": "two processes"}, build)
end = time.time()
result = {
    "key": key,
    "features": arrays["features"].tolist(),
    "memmap": isinstance(arrays["features"], np.memmap),
    "start": start,
    "end": end,
}
Path(out).write_text(json.dumps(result))
"""


def test_two_processes_build_the_same_entry_once(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    root, log, go = tmp_path / "cache", tmp_path / "builds.log", tmp_path / "go"
    procs, outs, readies = [], [], []
    for i in range(2):
        outs.append(tmp_path / f"out{i}.json")
        readies.append(tmp_path / f"ready{i}")
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), root, log, outs[i], readies[i], go],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        deadline = time.time() + 60
        while not all(r.exists() for r in readies):
            assert time.time() < deadline, "workers did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.01)
        go.touch()  # both ask for the key now
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()

    assert len(log.read_text().splitlines()) == 1  # built once
    results = [json.loads(o.read_text()) for o in outs]
    expected = np.arange(12, dtype=np.float32).reshape(3, 4).tolist()
    for result in results:
        assert result["key"] == cache_key({"test": "two processes"})
        assert result["features"] == expected
        assert result["memmap"]
    # the requests overlapped in time: one waited for the other's build
    assert max(r["start"] for r in results) < min(r["end"] for r in results)
    assert max(r["end"] - r["start"] for r in results) >= 0.9
    assert FeatureCache(root).problems(results[0]["key"]) == []


# ---------------------------------------------------------------------------------------------
# the `cache` command


def populate(root: Path, n: int = 2) -> list[str]:
    cache = FeatureCache(root)
    keys = []
    for i in range(n):
        fields = {**FIELDS, "entry": i}
        keys.append(cache.get_or_build(fields, Builder(sample_arrays(i)), f"entry number {i}")[0])
    return keys


def rows_by_key(out: str) -> dict[str, list[str]]:
    return {row[0]: row for row in table_rows(out) if len(row) == 5}


def test_cache_ls_lists_entries(cli, tmp_path):
    root = tmp_path / "cache"
    keys = populate(root)
    result = cli("cache", "ls", "--cache-dir", root)
    assert result.status == 0, result.err
    rows = rows_by_key(result.out)
    assert set(rows) == set(keys)
    for i, key in enumerate(keys):
        _, description, size, created, status = rows[key]
        assert description == f"entry number {i}"
        assert size.endswith("MiB")
        assert created.startswith("20")
        assert status == "sizes ok (checksums: cache verify)"
    assert squash(root) in squash(result.out)


def test_cache_ls_reads_laicbench_cache_variable(cli, tmp_path, monkeypatch):
    root = tmp_path / "from-env"
    keys = populate(root, n=1)
    monkeypatch.setenv("LAICBENCH_CACHE", str(root))
    result = cli("cache", "ls")
    assert result.status == 0, result.err
    assert set(rows_by_key(result.out)) == set(keys)


def test_cache_verify_names_the_damaged_file(cli, tmp_path):
    root = tmp_path / "cache"
    keys = populate(root)
    result = cli("cache", "verify", "--cache-dir", root)
    assert result.status == 0, result.err
    assert {row[4] for row in rows_by_key(result.out).values()} == {"ok (checksums)"}
    assert "2 intact, 0 damaged" in result.out

    _flip(root / keys[1] / "features.npy")
    result = cli("cache", "verify", "--cache-dir", root)
    assert result.status == 1
    rows = rows_by_key(result.out)
    assert rows[keys[0]][4] == "ok (checksums)"
    assert rows[keys[1]][4] == "features.npy does not match its checksum"
    assert "1 intact, 1 damaged" in result.out

    # ls does not recompute checksums, and says so rather than calling the entry "ok"
    listed = cli("cache", "ls", "--cache-dir", root)
    assert listed.status == 0
    assert rows_by_key(listed.out)[keys[1]][4] == "sizes ok (checksums: cache verify)"

    # a missing manifest is damage too
    (root / keys[0] / MANIFEST).unlink()
    result = cli("cache", "verify", "--cache-dir", root)
    assert result.status == 1
    assert rows_by_key(result.out)[keys[0]][4] == "no readable manifest"
    assert "0 intact, 2 damaged" in result.out


@pytest.mark.parametrize("action", ["ls", "verify"])
def test_cache_command_on_a_missing_folder_is_an_error(cli, tmp_path, action):
    result = cli("cache", action, "--cache-dir", tmp_path / "nowhere")
    assert result.status == 2
    assert len(result.err_lines) == 1
    assert "no feature cache at" in result.err_lines[0] and "absent" in result.err_lines[0]
    assert not (tmp_path / "nowhere").exists()


def test_cache_clear_one_key_then_all(cli, tmp_path):
    root = tmp_path / "cache"
    keys = populate(root, n=3)
    result = cli("cache", "clear", keys[0], "--cache-dir", root)
    assert result.status == 0, result.err
    assert "removed 1 entries" in result.out
    assert not (root / keys[0]).exists()
    assert not (root / f"{keys[0]}.lock").exists()
    assert sorted(e.key for e in FeatureCache(root).entries()) == sorted(keys[1:])

    result = cli("cache", "clear", "--cache-dir", root)
    assert result.status == 0, result.err
    assert "removed 2 entries" in result.out
    assert FeatureCache(root).entries() == []
    assert subdirs(root) == []
    assert list(root.glob("*.lock")) == []


def test_cache_clear_unknown_key_is_a_usage_error(cli, tmp_path):
    root = tmp_path / "cache"
    keys = populate(root, n=1)
    result = cli("cache", "clear", "unknownkey", "--cache-dir", root)
    assert result.status == 2
    assert len(result.err_lines) == 1
    assert "unknownkey" in result.err_lines[0]
    assert [e.key for e in FeatureCache(root).entries()] == keys  # nothing removed

    # a known key next to an unknown one: nothing is removed either
    result = cli("cache", "clear", keys[0], "unknownkey", "--cache-dir", root)
    assert result.status == 2
    assert [e.key for e in FeatureCache(root).entries()] == keys


def test_cache_verify_reports_a_manifest_without_arrays(cli, tmp_path):
    root = tmp_path / "cache"
    keys = populate(root)
    (root / keys[0] / MANIFEST).write_text("{}")  # valid JSON, but not a manifest
    result = cli("cache", "verify", "--cache-dir", root)
    assert result.status == 1
    rows = rows_by_key(result.out)
    assert rows[keys[1]][4] == "ok (checksums)"
    assert rows[keys[0]][4] != "ok (checksums)"
