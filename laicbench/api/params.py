"""Hyperparameter checks: each value against its ``__init__`` type hint and a declared constraint.

A method declares constraints in ``param_constraints`` (``Interval`` for numbers, ``Options`` for
choices); types come from the annotations of ``__init__``. Values are checked when a sweep is
expanded, so a bad value stops the sweep with one line before any run starts.
"""

from __future__ import annotations

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
