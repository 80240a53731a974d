"""The method plugin API, in the style of scikit-learn estimators.

A method stores its hyperparameters unchanged in ``__init__`` (so ``get_params()`` is the exact
configuration that is hashed and recorded), gets all randomness from the ``seed`` of
``fit_predict``, and declares a ``version``, its ``needs``, its ``resources``, its parameter
constraints, its per-dataset settings and its tags. A dataclass is the shortest way to write
such an ``__init__``; a group of parameters shared by several methods is then a base dataclass.

What a method leaves for the harness: ``artefacts_`` (a JSON-serialisable dict stored in the
record) and ``outputs_`` (a ``MethodOutputs``: arrays the harness scores against the labels).
"""

from __future__ import annotations

import hashlib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from laicbench.api.errors import UserError, did_you_mean
from laicbench.api.features import FeatureBundle, Need
from laicbench.api.params import Constraint, Dimension, param_problems, space_problems


@dataclass(frozen=True)
class Resources:
    """What one run of a method asks a scheduler for: CPUs and a (fractional) GPU share."""

    cpus: float = 1.0
    gpus: float = 0.0

    def device_for(self, requested: str) -> str:
        """The device a run uses given the sweep's resolved `requested` device (cpu, cuda[:N]).

        Only methods that ask for a GPU share run on the GPU; the others run on the CPU with
        either executor (a Ray trial without a GPU share has none), so records do not depend on
        the executor.
        """
        return requested if self.gpus > 0 else "cpu"


class Method:
    """Base class of method plugins.

    Subclasses define ``__init__`` with explicit keyword hyperparameters stored under the same
    attribute names, and ``fit_predict``. Optional per-run artefacts (selected nouns, diagnostics)
    go in ``self.artefacts_`` (a JSON-serialisable dict) during ``fit_predict``.
    """

    name: ClassVar[str]  # set by the registry
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[Need]] = frozenset()
    resources: ClassVar[Resources] = Resources()
    # uses ground truth in any form (class names, or labels that simulate a user's feedback):
    # reported apart, never ranked nor tuned
    oracle: ClassVar[bool] = False
    # "training-free" (no learning beyond k-means: the report's training-free figure),
    # "featured" (the default subject of run-level figures such as the confusion matrix),
    # "heavy" (minutes per demo run on a CPU: left out of the default sweep; `--methods all`
    # runs it), "adapted" (runs on other inputs than its paper's, e.g. noun-bank text in place
    # of generated captions: the report marks it and keeps it apart from the faithful
    # reimplementations), "interactive" (learns from simulated user feedback drawn from the
    # labels: an oracle, marked and shown apart in its own block)
    tags: ClassVar[frozenset[str]] = frozenset()
    # parameters that keep a run on the demo short, for the conformance tests (never a default)
    quick_params: ClassVar[dict[str, Any]] = {}
    # allowed values per hyperparameter, checked (with the __init__ type hints) before runs start
    param_constraints: ClassVar[dict[str, Constraint]] = {}
    # what ``laicbench tune`` searches: the few hyperparameters the method's paper or code says
    # matter, each with its range (IntRange, FloatRange, Choice, Scaled); empty: not tunable
    param_space: ClassVar[dict[str, Dimension]] = {}
    # official per-dataset values of parameters left at None: {dataset: {parameter: value}}
    dataset_settings: ClassVar[dict[str, dict[str, Any]]] = {}

    def resolved(self, name: str, dataset: str, fallback: Any = None) -> Any:
        """The value parameter `name` takes in a run on `dataset`: the value given, else the
        method's ``dataset_settings`` for `dataset`, else `fallback`."""
        value = getattr(self, name)
        if value is not None:
            return value
        return self.dataset_settings.get(dataset, {}).get(name, fallback)

    @classmethod
    def tunable(cls) -> bool:
        """Whether ``laicbench tune`` searches this method: it declares a ``param_space`` and is
        not an oracle (an oracle is never tuned nor ranked)."""
        return bool(cls.param_space) and not cls.oracle

    @classmethod
    def value_in_run(cls, name: str, dataset: str, n_train: int, n_clusters: int) -> Any:
        """The value parameter `name` takes, at the method's defaults, in a run on `dataset` with
        `n_train` train images and `n_clusters` clusters: its default, else its
        ``dataset_settings`` value, else None. A method whose runs resolve a parameter left at
        None by a rule of their own (a fallback value, a formula) overrides this for the
        parameters of its ``param_space``; ``Scaled`` ranges are multiples of this value."""
        del n_train, n_clusters
        return cls().resolved(name, dataset)

    @classmethod
    def param_names(cls) -> list[str]:
        """The hyperparameter names: the keyword arguments of ``__init__``."""
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters as given to ``__init__``."""
        return {name: getattr(self, name) for name in self.param_names()}

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        """The default value of each hyperparameter (``inspect.Parameter.empty`` when none)."""
        sig = inspect.signature(cls.__init__)
        return {name: sig.parameters[name].default for name in cls.param_names()}

    @classmethod
    def run_needs(cls, params: dict[str, Any]) -> frozenset[Need]:
        """The inputs a run with `params` reads: ``needs``, plus what an option that is off by
        default asks for (a method overrides this then)."""
        del params
        return cls.needs

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Method:
        """Instantiate with `params` over the defaults; UserError naming any unknown parameter.

        An integer given for a parameter declared a float (``float``, ``float | None``,
        ``list[float]``: by its type hint, else by a float default) becomes that float, so that
        ``ridge_lambda=3`` and the default ``3.0`` are one run (one hash), not two.
        """
        defaults = cls.param_defaults()
        for key in params:
            if key not in defaults:
                known = list(defaults)
                raise UserError(
                    f"method {cls.name!r} has no parameter {key!r}{did_you_mean(key, known)}; "
                    f"its parameters: {', '.join(known) or '(none)'}"
                )
        floats = float_params(cls)
        values = {key: _canonical(value, key in floats) for key, value in params.items()}
        problems = param_problems(cls, values)
        if problems:
            raise UserError(f"method {cls.name!r}: {'; '.join(problems)}")
        return cls(**values)

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Cluster the test split: return integer labels of shape (len(features.image_test),)."""
        raise NotImplementedError

    @classmethod
    def extra_backbones(cls, params: dict[str, Any]) -> list[str]:
        """The backbones besides the run's whose image features of the same dataset a run with
        `params` reads (``FeatureBundle.image_spaces``). The harness drops names equal to the
        run's backbone, grants the run Need.IMAGE_SPACES for the others, extracts them before
        the runs, puts them in the run's inputs fingerprint and refuses them (one line, before
        any run) on a dataset that lives in one backbone's space. None by default."""
        del params
        return []

    @classmethod
    def bench_steps(cls, size: str, device: str) -> list[tuple[str, Callable]]:
        """The steps ``laicbench bench methods`` times for this method at `size` ("cifar10":
        beside the end-to-end run; "imagenet": the steps that dominate it at full size), as
        (label, job): a picklable callable returning (seconds measured, seconds estimated at
        full size, how the estimate was made). Steps shared by several methods use the same
        label and are timed once. None by default."""
        del size, device
        return []


def float_params(cls: type) -> set[str]:
    """The parameters of `cls` that hold floats (or lists of floats) and no integers: by the
    ``__init__`` type hints where they resolve, else those with a float default."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):
        hints = {}
    out = set()
    for name, default in cls.param_defaults().items():
        hint = hints.get(name)
        if hint is None:
            if isinstance(default, float):
                out.add(name)
            continue
        kinds = set()
        for kind in typing.get_args(hint) if typing.get_origin(hint) is not list else [hint]:
            kinds.update(typing.get_args(kind) if typing.get_origin(kind) is list else [kind])
        kinds = kinds or {hint}
        if float in kinds and int not in kinds:
            out.add(name)
    return out


def _canonical(value: Any, is_float: bool) -> Any:
    """`value` (or each item of a list) as a float when the parameter holds floats and it is an
    integer (not a bool)."""
    if not is_float:
        return value
    if isinstance(value, list):
        return [_canonical(v, True) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def check_method_class(name: str, cls: Any) -> None:
    """UserError (one line) unless `cls` can be registered as method `name`: a subclass of
    Method that overrides ``fit_predict`` and gives every ``__init__`` parameter a default (a
    method is built with no arguments, and its parameters are what is hashed and recorded)."""
    where = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)!s}"
    if not (inspect.isclass(cls) and issubclass(cls, Method)):
        raise UserError(
            f"method {name!r} ({where}) is not a subclass of laicbench.api.method.Method"
        )
    if cls.fit_predict is Method.fit_predict:
        raise UserError(f"method {name!r} ({where}) does not define fit_predict")
    defaults = cls.param_defaults()
    missing = [p for p, default in defaults.items() if default is inspect.Parameter.empty]
    if missing:
        raise UserError(
            f"method {name!r} ({where}): __init__ parameter(s) {', '.join(missing)} have no "
            "default; every hyperparameter needs one"
        )
    unknown = sorted({p for table in cls.dataset_settings.values() for p in table} - set(defaults))
    if unknown:
        raise UserError(
            f"method {name!r} ({where}): dataset_settings name {', '.join(unknown)}, which "
            "are not parameters of the method"
        )
    problems = space_problems(cls)
    if cls.param_space and cls.oracle:
        problems.append("an oracle method is never tuned, so it declares no param_space")
    labelled = sorted(n.value for n in cls.needs & LABELLED_NEEDS)
    if labelled and not cls.oracle:
        problems.append(
            f"it declares {', '.join(labelled)}, which only an oracle method (oracle = True; "
            "shown apart, never ranked) may read"
        )
    if "interactive" in cls.tags and not cls.oracle:
        problems.append(
            "an interactive method learns from labels (simulated feedback), so it sets "
            "oracle = True"
        )
    if problems:
        raise UserError(f"method {name!r} ({where}): {'; '.join(problems)}")
    # the code as imported now, before its file can change under a running process
    cls._source_sha256 = _source_sha256(cls)


def method_source_sha256(cls: type) -> str | None:
    """SHA-256 of the source of method class `cls`: of the module file that defines it (a
    plugin file, or the built-in method's module), taken when the class was registered; of the
    class's own source when the file cannot be found; None when neither can. Stored in every
    record (``method.source_sha256``): a record made from other source is outdated (see
    docs/reliability.md; a change elsewhere, in a module the method imports, needs a new
    ``version``)."""
    if "_source_sha256" in vars(cls):
        return cls._source_sha256
    return _source_sha256(cls)


def _source_sha256(cls: type) -> str | None:
    try:
        path = inspect.getsourcefile(cls)
        if path:
            with open(path, "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()
    except (TypeError, OSError):
        pass
    try:
        return hashlib.sha256(inspect.getsource(cls).encode()).hexdigest()
    except (TypeError, OSError):
        return None


# the inputs that carry ground truth: only oracle methods (interactive ones included) read them
LABELLED_NEEDS = frozenset({Need.CLASS_NAMES, Need.FEEDBACK})


def merge_settings(*tables: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-dataset settings tables ({dataset: {parameter: value}}) merged dataset by dataset, the
    later tables winning: how a subclass extends its base's ``dataset_settings``."""
    out: dict[str, dict[str, Any]] = {}
    for table in tables:
        for dataset, values in table.items():
            out.setdefault(dataset, {}).update(values)
    return out
