"""One small generic registry for methods, datasets and report figures.

Names and aliases map to plugins (classes; functions for figures). Built-in plugins are listed by
module in ``laicbench.methods`` and ``laicbench.datasets`` (so that no core module names one),
third-party plugins arrive through an entry-point group or a folder of plugin files
(``--include-path``). A duplicate name is an error and a miss suggests the closest names.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Generic, TypeVar

from laicbench.api.errors import UserError, did_you_mean

T = TypeVar("T", bound=Callable)

# A plugin name is one path component of the results dir (<method>/<dataset>/...): a letter or
# digit, then letters, digits, '_', '.', '+' or '-'; so no '/', '\\', '..' or hidden name
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")


def check_name(kind: str, name: object, obj: Callable) -> None:
    """UserError unless `name` is a safe plugin name (``SAFE_NAME``) for the `kind` plugin
    `obj`."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise UserError(
            f"{kind} name {name!r} of {obj.__module__}.{getattr(obj, '__qualname__', obj)} is "
            "not allowed: use letters, digits, '_', '.', '+' and '-' (starting with a letter or "
            "digit, at most 100 characters)"
        )


@dataclass(frozen=True)
class Entry:
    """A registered plugin: its canonical name, aliases, class (or function) and origin."""

    name: str
    aliases: tuple[str, ...]
    obj: Callable
    origin: str

    @property
    def description(self) -> str:
        """The first sentence of the plugin's docstring."""
        paragraph = (inspect.getdoc(self.obj) or "").strip().split("\n\n")[0]
        sentence = " ".join(paragraph.split()).split(". ")[0]
        return sentence if sentence.endswith(".") or not sentence else sentence + "."

    @property
    def defined_in(self) -> str:
        """The source file that defines the plugin (module name when the file is unknown)."""
        try:
            return inspect.getsourcefile(inspect.unwrap(self.obj)) or self.obj.__module__
        except TypeError:
            return self.obj.__module__


class Registry(Generic[T]):
    """Maps names and aliases of one kind of plugin ("method", "dataset", "figure") to plugins."""

    def __init__(
        self,
        kind: str,
        entry_point_group: str,
        builtin: Iterable[str],
        contract: str | None = None,
    ):
        """`builtin`: the built-in plugin modules, each a module name or "module:ATTRIBUTE"
        naming a tuple of module names (read on first use). `contract`: "module:function" called
        with (name, plugin) before a plugin is registered, raising UserError when it breaks the
        plugin contract (imported on first use, so that this module imports no plugin API)."""
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.builtin = tuple(builtin)
        self.builtin_modules: tuple[str, ...] = ()
        self.contract = contract
        self._entries: dict[str, Entry] = {}
        self._alias_to_name: dict[str, str] = {}
        self._loaded = False
        self._origin = "builtin"

    def register(self, name: str, aliases: Iterable[str] = ()) -> Callable[[T], T]:
        """Class decorator: register the class under `name` (and `aliases`); return it unchanged."""

        def decorator(obj: T) -> T:
            self.add(name, obj, aliases)
            return obj

        return decorator

    def add(self, name: str, obj: T, aliases: Iterable[str] = ()) -> None:
        """Register `obj` under `name` and `aliases`; raise UserError if any name is taken."""
        aliases = tuple(aliases)
        for key in (name, *aliases):
            check_name(self.kind, key, obj)
        if self.contract is not None:
            module, _, function = self.contract.partition(":")
            getattr(importlib.import_module(module), function)(name, obj)
        for key in (name, *aliases):
            owner = self._alias_to_name.get(key)
            if owner is not None:
                raise UserError(
                    f"{self.kind} name {key!r} of {obj.__module__}.{obj.__qualname__} is already "
                    f"registered by {self._entries[owner].obj.__module__}"
                )
        entry = Entry(name=name, aliases=aliases, obj=obj, origin=self._origin)
        self._entries[name] = entry
        for key in (name, *aliases):
            self._alias_to_name[key] = name
        obj.name = name  # type: ignore[attr-defined]

    def load_builtins(self) -> None:
        """Import the built-in plugin modules and the entry-point group (once)."""
        if self._loaded:
            return
        self._loaded = True
        modules: list[str] = []
        for item in self.builtin:
            module, _, attribute = item.partition(":")
            listed = getattr(importlib.import_module(module), attribute) if attribute else [item]
            modules.extend(listed)
        self.builtin_modules = tuple(modules)
        for module in self.builtin_modules:
            importlib.import_module(module)
        self._origin = "entry point"
        try:
            for ep in entry_points(group=self.entry_point_group):
                loaded = ep.load()
                if callable(loaded) and loaded not in self.classes():
                    self.add(ep.name, loaded)
        finally:
            self._origin = "builtin"

    def get(self, name: str) -> T:
        """The class registered under `name` or an alias; UserError with suggestions if none."""
        return self.entry(name).obj  # type: ignore[return-value]

    def entry(self, name: str) -> Entry:
        """Return the Entry for `name` or an alias; UserError with suggestions if none."""
        self.load_builtins()
        canonical = self._alias_to_name.get(name)
        if canonical is None:
            raise UserError(
                f"unknown {self.kind} {name!r}"
                f"{did_you_mean(name, self._alias_to_name)}; "
                f"see 'laicbench list {self.kind}s'"
            )
        return self._entries[canonical]

    def canonical(self, name: str) -> str:
        """Resolve an alias to the canonical name."""
        return self.entry(name).name

    def names(self) -> list[str]:
        """Canonical names: built-ins in the order of their listed modules, then the others in
        registration order."""
        return [entry.name for entry in self.entries()]

    def entries(self) -> list[Entry]:
        """All entries, ordered as ``names``: the order never depends on what was imported first."""
        self.load_builtins()
        rank = {module: i for i, module in enumerate(self.builtin_modules)}
        order = {name: i for i, name in enumerate(self._entries)}
        return sorted(
            self._entries.values(),
            key=lambda e: (rank.get(e.obj.__module__, len(rank)), order[e.name]),
        )

    def classes(self) -> list[Callable]:
        """The registered classes or functions (without triggering loading)."""
        return [e.obj for e in self._entries.values()]


methods: Registry = Registry(
    "method",
    "laicbench.methods",
    builtin=("laicbench.methods:BUILTIN",),
    contract="laicbench.api.method:check_method_class",
)
datasets: Registry = Registry(
    "dataset", "laicbench.datasets", builtin=("laicbench.datasets:BUILTIN",)
)
# figures of the report: the report's own, then those that method plugins bring
figures: Registry = Registry(
    "figure",
    "laicbench.figures",
    builtin=(
        "laicbench.report.figures",
        "laicbench.report.stat_figures",
        "laicbench.methods:FIGURES",
    ),
    contract="laicbench.report.figures:check_figure",
)

register_method = methods.register
register_dataset = datasets.register
register_figure = figures.register


def load_plugin_folder(folder: str | Path) -> None:
    """Import every ``*.py`` file of `folder` (not starting with '_') as a plugin module.

    A file may register methods, datasets, figures or several; each registry records the folder
    as the origin. Files are imported once per process under a name derived from their full path, so
    equal file names in different folders do not collide.
    """
    for registry in (methods, datasets, figures):
        registry.load_builtins()
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--include-path {folder}: not a directory")
    for registry in (methods, datasets, figures):
        registry._origin = f"include-path {folder}"
    try:
        for path in sorted(folder.glob("*.py")):
            if not path.name.startswith("_"):
                _import_plugin_file(path)
    finally:
        for registry in (methods, datasets, figures):
            registry._origin = "builtin"


def _import_plugin_file(path: Path) -> None:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    module_name = f"laicbench_plugins.{path.stem}_{digest}"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"cannot import plugin file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except UserError:
        del sys.modules[module_name]
        raise
    except Exception as exc:
        del sys.modules[module_name]
        raise UserError(f"plugin file {path} failed to import: {exc!r}") from exc
