"""Hyperparameters: their checks and their documentation.

Checks: each value against its ``__init__`` type hint and a declared constraint. A method declares
constraints in ``param_constraints`` (``Interval`` for numbers, ``Options`` for choices); types
come from the annotations of ``__init__``. Values are checked when a sweep is expanded, so a bad
value stops the sweep with one line before any run starts.

Documentation: every hyperparameter is documented where it is declared, by an attribute
docstring (a string literal on the line after the dataclass field) or a dataclass field's
``metadata={"doc": ...}``; ``param_docs`` reads them from the class source, through the base
classes, and ``param_rows`` gives what ``laicbench list methods --params`` and the docs' parameter
tables print.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Interval:
    """A number in [low, high] (either end None for unbounded; ``open_low``/``open_high``
    exclude that end)."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def problem(self, value: float) -> str | None:
        """Why `value` lies outside the interval, or None."""
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return f"must be {'>' if self.open_low else '>='} {self.low:g}"
        if self.high is not None and (value >= self.high if self.open_high else value > self.high):
            return f"must be {'<' if self.open_high else '<='} {self.high:g}"
        return None


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values."""

    values: tuple[Any, ...]

    def problem(self, value: Any) -> str | None:
        """Why `value` is not one of the options, or None."""
        if value in self.values:
            return None
        return f"must be one of {', '.join(map(repr, self.values))}"


Constraint = Interval | Options

POSITIVE = Interval(0, None, open_low=True)
AT_LEAST_ONE = Interval(1, None)
NON_NEGATIVE = Interval(0, None)
FRACTION = Interval(0, 1)


def _allowed_types(hint: Any) -> tuple[tuple[type, ...], bool] | None:
    """(accepted plain types, None allowed) of a type hint, or None when it is not checkable."""
    if hint in (int, float, str, bool):
        return (hint,), False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        plain = tuple(a for a in args if a is not type(None))
        if all(a in (int, float, str, bool) for a in plain):
            return plain, type(None) in args
    return None


def _type_problem(value: Any, hint: Any) -> str | None:
    allowed = _allowed_types(hint)
    if allowed is None:
        return None
    plain, optional = allowed
    if value is None:
        return None if optional else f"must be {_type_names(plain)}, not None"
    for kind in plain:
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return None
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return None
        if kind in (str, bool) and isinstance(value, kind):
            return None
    return f"must be {_type_names(plain)}{' or None' if optional else ''}, not {value!r}"


def _type_names(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return " or ".join(names[k] for k in kinds)


def param_problems(cls: type, params: dict[str, Any]) -> list[str]:
    """'name=value must ...' for each value of `params` that breaks its type hint or the
    constraint `cls.param_constraints` declares for it."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):  # unresolvable annotations: types are not checked
        hints = {}
    constraints = getattr(cls, "param_constraints", {})
    problems = []
    for name, value in params.items():
        problem = _type_problem(value, hints.get(name))
        constraint = constraints.get(name)
        if problem is None and constraint is not None and value is not None:
            problem = constraint.problem(value)
        if problem:
            problems.append(f"{name}={value!r} {problem}")
    return problems


@functools.cache
def _declared_docs(cls: type) -> dict[str, str]:
    """{attribute: docstring} of the attributes that `cls`'s own body documents with a string
    literal right after their declaration (empty when the source cannot be read)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = next((n.body for n in tree.body if isinstance(n, ast.ClassDef)), [])
    docs = {}
    for stmt, after in zip(body, body[1:], strict=False):
        target = (
            stmt.target
            if isinstance(stmt, ast.AnnAssign)
            else stmt.targets[0]
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
            else None
        )
        if (
            isinstance(target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[target.id] = inspect.cleandoc(after.value.value)
    return docs


def param_docs(cls: type) -> dict[str, str]:
    """{hyperparameter: its documentation} for method class `cls`: a dataclass field's
    ``metadata["doc"]``, else the attribute docstring of the first class in the method
    resolution order that declares one (so a subclass may redocument an inherited field).
    Hyperparameters without documentation are absent."""
    names = cls.param_names()
    out: dict[str, str] = {}
    if dataclasses.is_dataclass(cls):
        for f in dataclasses.fields(cls):
            if f.name in names and f.metadata.get("doc"):
                out[f.name] = inspect.cleandoc(str(f.metadata["doc"]))
    for klass in cls.__mro__:
        for name, doc in _declared_docs(klass).items():
            if name in names and name not in out:
                out[name] = doc
    return out


@dataclass(frozen=True)
class ParamRow:
    """One hyperparameter as documented: name, type, default, allowed values, per-dataset
    values (official values taken when the parameter is left at None) and documentation (on one
    line)."""

    name: str
    type: str
    default: str
    allowed: str
    per_dataset: str
    doc: str


def param_rows(cls: type) -> list[ParamRow]:
    """The documented hyperparameters of method class `cls`, in declaration order."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):
        hints = {}
    docs = param_docs(cls)
    constraints = getattr(cls, "param_constraints", {})
    settings = getattr(cls, "dataset_settings", {})
    rows = []
    for name, default in cls.param_defaults().items():
        per_dataset = [
            f"{dataset} {values[name]!r}" for dataset, values in settings.items() if name in values
        ]
        rows.append(
            ParamRow(
                name=name,
                type=_hint_text(hints.get(name)),
                default="(required)" if default is inspect.Parameter.empty else repr(default),
                allowed=_constraint_text(constraints.get(name)),
                per_dataset=", ".join(per_dataset),
                doc=" ".join(docs.get(name, "").split()),
            )
        )
    return rows


def _hint_text(hint: Any) -> str:
    """A type hint as written ('int | None', 'list[float]'); '' when unknown."""
    if hint is None:
        return ""
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("NoneType", "None")


def _constraint_text(constraint: Constraint | None) -> str:
    """'> 0', '[0, 1]', 'one of 'a', 'b'' or '' for no constraint."""
    if isinstance(constraint, Options):
        return "one of " + ", ".join(map(repr, constraint.values))
    if not isinstance(constraint, Interval):
        return ""
    low, high = constraint.low, constraint.high
    if high is None:
        return "" if low is None else f"{'>' if constraint.open_low else '>='} {low:g}"
    if low is None:
        return f"{'<' if constraint.open_high else '<='} {high:g}"
    left = "(" if constraint.open_low else "["
    right = ")" if constraint.open_high else "]"
    return f"{left}{low:g}, {high:g}{right}"


# ------------------------------------------------------------------------------------------
# search spaces: what ``laicbench tune`` may try for a hyperparameter (``Method.param_space``)


@dataclass(frozen=True)
class IntRange:
    """Integers from `low` to `high` (both included), uniform or, with `log`, log-uniform."""

    low: int
    high: int
    log: bool = False

    def describe(self) -> str:
        """'1-50 (log)'."""
        return f"{self.low}-{self.high}{' (log)' if self.log else ''}"


@dataclass(frozen=True)
class FloatRange:
    """Numbers from `low` to `high`, uniform or, with `log`, log-uniform."""

    low: float
    high: float
    log: bool = False

    def describe(self) -> str:
        """'0.001-0.05 (log)'."""
        return f"{self.low:g}-{self.high:g}{' (log)' if self.log else ''}"


@dataclass(frozen=True)
class Choice:
    """One of `values` (strings, numbers or booleans)."""

    values: tuple[Any, ...]

    def describe(self) -> str:
        """'one of a, b'."""
        return "one of " + ", ".join(map(str, self.values))


@dataclass(frozen=True)
class Scaled:
    """A multiple, log-uniform from `low` x to `high` x, of the value the parameter takes by
    default in the run (its default, per-dataset setting or rule: ``Method.value_in_run``),
    rounded for an integer parameter: for parameters whose scale depends on the dataset (TAC's
    number of semantic centers) or whose official value differs per dataset."""

    low: float
    high: float

    def describe(self) -> str:
        """'0.25x-4x of the run's value (log)'."""
        return f"{self.low:g}x-{self.high:g}x of the run's value (log)"


Dimension = IntRange | FloatRange | Choice | Scaled


def space_problems(cls: type) -> list[str]:
    """Why the ``param_space`` of method class `cls` is not usable (each a short phrase): a name
    that is not a parameter, an empty or reversed range, a log range reaching 0, a choice or a
    range end that breaks the parameter's type or constraint."""
    space = getattr(cls, "param_space", {}) or {}
    names = set(cls.param_names())
    problems = []
    for name, dim in space.items():
        if name not in names:
            problems.append(f"param_space names {name!r}, which is not a parameter")
            continue
        if isinstance(dim, Choice):
            if not dim.values:
                problems.append(f"param_space[{name!r}] has no choices")
            probes = list(dim.values)
        elif isinstance(dim, (IntRange, FloatRange, Scaled)):
            if not dim.low < dim.high:
                problems.append(f"param_space[{name!r}] needs low < high")
            if getattr(dim, "log", True) and dim.low <= 0:
                problems.append(f"param_space[{name!r}] is log-scaled, so low must be > 0")
            probes = [] if isinstance(dim, Scaled) else [dim.low, dim.high]
        else:
            problems.append(
                f"param_space[{name!r}] is not an IntRange, FloatRange, Choice or Scaled"
            )
            continue
        for value in probes:
            problems += [f"param_space[{name!r}]: {p}" for p in param_problems(cls, {name: value})]
    return problems
