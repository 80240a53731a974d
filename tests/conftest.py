"""Shared fixtures: registry isolation, plugin files and a CLI runner."""

from __future__ import annotations

import itertools
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from laicbench.api import registry
from laicbench.cli.main import main

PLUGIN_MODULE_PREFIX = "laicbench_plugins."


@pytest.fixture(autouse=True, scope="session")
def private_feature_cache(tmp_path_factory):
    """Keep the tests' feature cache (demo features included) out of the user's home."""
    import os

    previous = os.environ.get("LAICBENCH_CACHE")
    os.environ["LAICBENCH_CACHE"] = str(tmp_path_factory.mktemp("feature-cache"))
    yield
    if previous is None:
        os.environ.pop("LAICBENCH_CACHE", None)
    else:
        os.environ["LAICBENCH_CACHE"] = previous


@pytest.fixture(autouse=True)
def local_executor(monkeypatch):
    """Run sweeps in-process unless a test asks for Ray (starting Ray costs seconds per test)."""
    monkeypatch.setenv("LAICBENCH_EXECUTOR", "local")


@pytest.fixture(autouse=True)
def isolated_registries(monkeypatch):
    """Give every test its own copy of the global method and dataset registries.

    Plugins registered by one test (through --include-path) must not leak into another: `laicbench
    run` with no arguments runs *every* registered method, so a leaked plugin that raises would
    make tests depend on their order. Built-ins are loaded first so that the copy holds them.
    Plugin modules imported during the test are forgotten afterwards.
    """
    for reg in (registry.methods, registry.datasets, registry.figures):
        reg.load_builtins()
        monkeypatch.setattr(reg, "_entries", dict(reg._entries))
        monkeypatch.setattr(reg, "_alias_to_name", dict(reg._alias_to_name))
    before = {name for name in sys.modules if name.startswith(PLUGIN_MODULE_PREFIX)}
    yield
    for name in [n for n in sys.modules if n.startswith(PLUGIN_MODULE_PREFIX)]:
        if name not in before:
            del sys.modules[name]


@pytest.fixture
def only_methods(monkeypatch):
    """only_methods(*names): leave just these built-in methods in this test's method registry.

    For tests of "every registered method" that must stay fast whatever methods laicbench ships.
    """

    def _keep(*names: str) -> None:
        reg = registry.methods
        keep = {reg.canonical(name) for name in names}
        entries = {name: entry for name, entry in reg._entries.items() if name in keep}
        aliases = {key: name for key, name in reg._alias_to_name.items() if name in keep}
        monkeypatch.setattr(reg, "_entries", entries)
        monkeypatch.setattr(reg, "_alias_to_name", aliases)

    return _keep


def unique_name(prefix: str) -> str:
    """A method/dataset name that no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


_folder_counter = itertools.count()


@pytest.fixture
def write_plugin(tmp_path):
    """write_plugin(source, stem=None, folder=None) -> the folder holding the new plugin file.

    Each call without `folder` makes a new folder below tmp_path; the file stem is unique unless
    given, so that no two tests import plugin modules of the same name.
    """

    def _write(source: str, stem: str | None = None, folder: Path | None = None) -> Path:
        if folder is None:
            folder = tmp_path / f"plugins{next(_folder_counter)}"
        folder.mkdir(parents=True, exist_ok=True)
        stem = stem or f"plugin_{uuid.uuid4().hex[:8]}"
        (folder / f"{stem}.py").write_text(textwrap.dedent(source))
        return folder

    return _write


@dataclass
class CliResult:
    status: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture
def cli(capsys, monkeypatch):
    """cli(*argv) -> CliResult(status, stdout, stderr) of ``laicbench.cli.main.main(argv)``."""
    monkeypatch.setenv("COLUMNS", "400")  # rich tables/lines unwrapped, whatever the tmp path

    def _run(*argv) -> CliResult:
        capsys.readouterr()  # drop anything printed before
        try:
            status = main([str(a) for a in argv])
        except KeyboardInterrupt:  # never let it abort the whole pytest session
            pytest.fail("KeyboardInterrupt escaped laicbench.cli.main.main")
        captured = capsys.readouterr()
        return CliResult(status, captured.out, captured.err)

    return _run


def method_plugin_source(name: str, body: str = "", header: str = "") -> str:
    """Source of a plugin file registering method `name` (cyclic labels unless `body` given)."""
    body = body or "return np.arange(len(features.image_test)) % n_clusters"
    body = textwrap.indent(textwrap.dedent(body).strip(), " " * 8)
    return (
        "import numpy as np\n"
        "from laicbench.api.method import Method\n"
        "from laicbench.api.registry import register_method\n"
        f"{header}\n"
        f"@register_method({name!r})\n"
        "class PluginMethod(Method):\n"
        f'    """Test plugin {name}: a one-line description."""\n'
        "\n"
        "    calls = 0\n"
        "\n"
        "    def fit_predict(self, features, n_clusters, seed):\n"
        "        type(self).calls += 1\n"
        f"{body}\n"
    )


@pytest.fixture
def method_plugin(write_plugin):
    """method_plugin(body="", prefix="plugin") -> (unique method name, folder of its plugin file).

    `body` is the body of ``fit_predict(self, features, n_clusters, seed)``, run after a call
    counter ``type(self).calls`` has been incremented; by default it returns cyclic labels.
    """

    def _make(body: str = "", prefix: str = "plugin") -> tuple[str, Path]:
        name = unique_name(prefix)
        return name, write_plugin(method_plugin_source(name, body))

    return _make


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the rich tables in `text`, each a list of cell texts.

    A cell wrapped over several lines is joined with spaces; compare with ``squash`` where a long
    path may have been folded mid-word.
    """
    rows: list[list[str]] = []
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if rows and not cells[0] and len(cells) == len(rows[-1]):
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    return rows


def squash(text: str) -> str:
    """`text` without any whitespace."""
    return "".join(str(text).split())


def save_as_features_file(data, path: Path) -> Path:
    """Write DatasetFeatures `data` (images, labels, class names, nouns and, when it has them,
    the nouns' per-template features) as a .npz features file."""
    templates = data.noun_template_features
    extra = {} if templates is None else {"noun_template_features": templates}
    np.savez(
        path,
        image_train=data.image_train,
        image_test=data.image_test,
        labels_train=data.labels_train,
        labels_test=data.labels_test,
        class_names=np.array(data.class_names),
        noun_features=data.noun_features,
        noun_words=np.array(data.noun_words),
        **extra,
    )
    return path
