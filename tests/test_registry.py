"""The plugin registry, the built-in registrations and plugins from --include-path."""

from __future__ import annotations

import json

import pytest
from conftest import method_plugin_source, squash, table_rows, unique_name

from laicbench.api import registry
from laicbench.api.errors import UserError
from laicbench.api.registry import Registry


@pytest.fixture
def fresh():
    return Registry("widget", "laicbench.tests.no_such_group", builtin=())


def test_register_and_get_by_name_and_alias(fresh):
    @fresh.register("alpha", aliases=("a", "al"))
    class Alpha:
        """Alpha widget.

        More text that is not part of the description.
        """

    assert fresh.get("alpha") is Alpha
    assert fresh.get("a") is Alpha
    assert fresh.get("al") is Alpha
    assert fresh.canonical("al") == "alpha"
    assert fresh.names() == ["alpha"]
    assert Alpha.name == "alpha"
    entry = fresh.entry("a")
    assert entry.aliases == ("a", "al")
    assert entry.description == "Alpha widget."
    assert entry.defined_in.endswith("test_registry.py")


def test_registration_order_is_kept(fresh):
    for name in ("zeta", "beta", "mu"):
        fresh.add(name, type(name.title(), (), {}))
    assert fresh.names() == ["zeta", "beta", "mu"]
    assert [e.name for e in fresh.entries()] == ["zeta", "beta", "mu"]


def test_duplicate_name_raises(fresh):
    fresh.add("alpha", type("A", (), {}), aliases=("a",))

    class Other:
        pass

    with pytest.raises(UserError, match="alpha"):
        fresh.add("alpha", Other)
    with pytest.raises(UserError, match="'a'"):
        fresh.add("other", Other, aliases=("a",))  # an alias clashing with an alias
    with pytest.raises(UserError):
        fresh.add("a", Other)  # a name clashing with an alias
    # failed registrations leave nothing behind
    assert fresh.names() == ["alpha"]
    with pytest.raises(UserError):
        fresh.get("other")


def test_miss_suggests_close_names(fresh):
    fresh.add("alpha", type("A", (), {}))
    with pytest.raises(UserError) as info:
        fresh.get("alpah")
    message = str(info.value)
    assert "unknown widget 'alpah'" in message
    assert "did you mean 'alpha'" in message
    with pytest.raises(UserError) as info:
        fresh.get("zzzzzzzz")
    assert "did you mean" not in str(info.value)


def test_builtin_registrations():
    assert "clip-kmeans" in registry.methods.names()
    assert registry.methods.canonical("kmeans") == "clip-kmeans"
    assert {"demo-10", "demo-50"} <= set(registry.datasets.names())
    assert registry.datasets.canonical("demo") == "demo-10"
    assert registry.datasets.entry("demo-10").aliases == ("demo",)
    assert registry.methods.entry("clip-kmeans").origin == "builtin"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("methods", ["clip-kmeans", "clip_kmeans.py", "Spherical k-means"]),
        ("datasets", ["demo-10", "demo-50", "demo.py"]),
    ],
)
def test_list_command(cli, kind, expected):
    result = cli("list", kind)
    assert result.status == 0
    for text in expected:
        assert squash(text) in squash(result.out)


def test_list_shows_descriptions_whole_including_brackets(cli):
    out = squash(cli("list", "methods").out)
    assert squash(registry.methods.entry("tac-notrain").description) in out
    assert squash("[image; retrieved-noun counterpart]") in out


def test_include_path_plugin_is_listed(cli, method_plugin):
    name, folder = method_plugin()
    plugin_file = next(folder.glob("*.py"))
    result = cli("list", "methods", "--include-path", folder)
    assert result.status == 0, result.err
    rows = {row[0]: row for row in table_rows(result.out)}
    _, aliases, tags, tuned, description, defined_in = rows[name]
    assert aliases == "" and tags == "" and tuned == "not tunable"
    assert description == f"Test plugin {name}: a one-line description."
    assert squash(f"{plugin_file} (include-path {folder})") in squash(defined_in)
    assert "clip-kmeans" in rows  # the built-ins are still there


def test_include_path_plugin_runs(cli, method_plugin, tmp_path):
    name, folder = method_plugin()
    results = tmp_path / "results"
    result = cli(
        "run",
        "--methods", name,
        "--datasets", "demo",
        "--seeds", "0",
        "--results-dir", results,
        "--include-path", folder,
    )  # fmt: skip
    assert result.status == 0, result.err
    records = sorted(results.rglob("*.json"))
    assert len(records) == 1
    assert records[0].relative_to(results).parts[:3] == (name, "demo-10", "tiny-random")
    record = json.loads(records[0].read_text())
    assert record["status"] == "ok"
    assert record["method"]["name"] == name
    assert 0 <= record["metrics"]["acc"] <= 100


def test_two_include_paths_with_same_file_name(cli, write_plugin, tmp_path):
    first, second = unique_name("first"), unique_name("second")
    folder_a = write_plugin(method_plugin_source(first), stem="plugin", folder=tmp_path / "a")
    folder_b = write_plugin(method_plugin_source(second), stem="plugin", folder=tmp_path / "b")
    result = cli("list", "methods", "--include-path", folder_a, "--include-path", folder_b)
    assert result.status == 0, result.err
    names = [row[0] for row in table_rows(result.out)]
    assert first in names
    assert second in names


def test_include_path_dataset_plugin_origin(cli, write_plugin):
    name = unique_name("tiny-ds")
    folder = write_plugin(
        f'''
        from laicbench.api.dataset import Dataset
        from laicbench.api.registry import register_dataset

        @register_dataset({name!r})
        class PluginDataset(Dataset):
            """A dataset from a plugin file."""

            n_classes = 2
        '''
    )
    result = cli("list", "datasets", "--include-path", folder)
    assert result.status == 0, result.err
    rows = {row[0]: row for row in table_rows(result.out)}
    assert rows[name][2] == "A dataset from a plugin file."
    assert squash(f"(include-path {folder})") in squash(rows[name][3])
    assert registry.datasets.entry(name).origin == f"include-path {folder}"


@pytest.mark.parametrize(
    "source",
    [
        "raise RuntimeError('plugin is broken\\non two lines')\n",
        "def broken(:\n    pass\n",
        "import laicbench_no_such_module_xyz\n",
    ],
    ids=["raises", "syntax-error", "missing-import"],
)
def test_plugin_that_fails_to_import(cli, write_plugin, source):
    folder = write_plugin(source)
    result = cli("list", "methods", "--include-path", folder)
    assert result.status == 2
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith("laicbench: error:")
    assert "failed to import" in result.err
    assert str(folder) in result.err
    assert "Traceback" not in result.err


def test_include_path_that_is_not_a_directory(cli, tmp_path):
    result = cli("list", "methods", "--include-path", tmp_path / "missing")
    assert result.status == 2
    assert len(result.err_lines) == 1
    assert "not a directory" in result.err


def test_plugin_with_a_taken_name(cli, write_plugin):
    folder = write_plugin(method_plugin_source("clip-kmeans"))
    result = cli("list", "methods", "--include-path", folder)
    assert result.status == 2
    assert len(result.err_lines) == 1
    assert "already registered" in result.err
