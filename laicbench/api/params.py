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
