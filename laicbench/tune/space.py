"""The search space of one study: a method's declared ``param_space`` made concrete for one run
setting (``Scaled`` ranges become numbers, parameters the user fixed are left out), its default
point, and its form for Optuna (the same distributions for both executors)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from laicbench.api.method import Method, float_params
from laicbench.api.params import Choice, Dimension, FloatRange, Interval, IntRange, Scaled

Concrete = IntRange | FloatRange | Choice


def describe_space(space: dict[str, Dimension]) -> dict[str, str]:
    """{parameter: its range in words} of a declared or concrete space."""
    return {name: dim.describe() for name, dim in space.items()}


@dataclass(frozen=True)
class StudySpace:
    """The concrete dimensions of a search and its default point: the values the method's
    default parameters take in the run (``Method.value_in_run``) when every one lies inside the
    space, else None (then the search does not start from the defaults)."""

    dims: dict[str, Concrete]
    default_point: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in study records."""
        return {
            "dims": {name: _dim_dict(dim) for name, dim in self.dims.items()},
            "default_point": self.default_point,
        }

    def distributions(self) -> dict[str, Any]:
        """The Optuna distributions of the dimensions, in declaration order (both executors ask
        Optuna with exactly these)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        out: dict[str, Any] = {}
        for name, dim in self.dims.items():
            if isinstance(dim, IntRange):
                out[name] = IntDistribution(dim.low, dim.high, log=dim.log)
            elif isinstance(dim, FloatRange):
                out[name] = FloatDistribution(dim.low, dim.high, log=dim.log)
            else:
                out[name] = CategoricalDistribution(dim.values)
        return out


def _dim_dict(dim: Concrete) -> dict[str, Any]:
    if isinstance(dim, Choice):
        return {"kind": "choice", "values": list(dim.values)}
    kind = "int" if isinstance(dim, IntRange) else "float"
    return {"kind": kind, "low": dim.low, "high": dim.high, "log": dim.log}


def resolve_space(
    method_cls: type[Method], fixed: set[str], dataset: str, n_train: int, n_clusters: int
) -> StudySpace:
    """The concrete space of `method_cls` for a run on `dataset` (`n_train` train images,
    `n_clusters` clusters), without the parameters in `fixed`. A ``Scaled`` range is the
    parameter's value in the run times its factors, log-scaled, rounded for an integer
    parameter and kept inside the parameter's declared interval."""
    floats = float_params(method_cls)
    dims: dict[str, Concrete] = {}
    default: dict[str, Any] = {}
    for name, dim in method_cls.param_space.items():
        if name in fixed:
            continue
        value = method_cls.value_in_run(name, dataset, n_train, n_clusters)
        if isinstance(dim, Scaled):
            dim = _scaled(method_cls, name, dim, value, name in floats, dataset)
        dims[name] = dim
        default[name] = value
    inside = all(_contains(dims[name], value) for name, value in default.items())
    return StudySpace(dims, default if inside and dims else None)


def _scaled(
    method_cls: type[Method], name: str, dim: Scaled, value: Any, is_float: bool, dataset: str
) -> Concrete:
    from laicbench.api.errors import UserError

    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise UserError(
            f"method {method_cls.name!r}: param_space scales {name!r}, whose value in a run on "
            f"{dataset} is {value!r}, not a positive number"
        )
    low, high = dim.low * value, dim.high * value
    constraint = method_cls.param_constraints.get(name)
    if isinstance(constraint, Interval):
        low = max(low, constraint.low) if constraint.low is not None else low
        high = min(high, constraint.high) if constraint.high is not None else high
    if is_float:
        return FloatRange(float(low), float(high), log=True)
    return IntRange(max(1, round(low)), max(1, round(high)), log=True)


def _contains(dim: Concrete, value: Any) -> bool:
    if isinstance(dim, Choice):
        return value in dim.values
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(dim, IntRange) and not float(value).is_integer():
        return False
    return dim.low <= value <= dim.high
