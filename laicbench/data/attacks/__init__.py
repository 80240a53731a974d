"""The adversarial track: attacks that perturb a dataset's test images before they are encoded.

An attack is a class registered here by name (``ATTACKS``: its module is imported on first use,
so that choosing none imports no attack code). Its parameters are the dataclass fields of the
class, checked like a method's (types from the hints, ``param_constraints``); a number may be
written as a fraction, ``eps=8/255``. ``resolve_attack`` turns ``--attack NAME`` and its
``--attack-param K=V`` items into the canonical ``AttackSpec`` that runs, records and cache keys
hold; ``build_attack`` makes the attack object of a spec.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
import typing
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from laicbench.api.errors import UserError, did_you_mean
from laicbench.api.params import param_problems
from laicbench.api.settings import AttackSpec

# name -> "module:class" of each built-in attack
ATTACKS = {
    "pgd": "laicbench.data.attacks.pgd:PGD",
    "anyattack": "laicbench.data.attacks.anyattack:AnyAttack",
}
NO_ATTACK = "none"
_FRACTION = re.compile(r"^\s*([-+]?[0-9.eE+-]+)\s*/\s*([0-9.eE+-]+)\s*$")


def attack_class(name: str) -> type:
    """The class of attack `name`; UserError naming the known ones when there is none."""
    if name not in ATTACKS:
        raise UserError(
            f"--attack {name}: unknown attack{did_you_mean(name, ATTACKS)}; known: "
            f"{', '.join(ATTACKS)} (or {NO_ATTACK})"
        )
    module, _, cls = ATTACKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def parse_attack_value(text: str) -> Any:
    """An ``--attack-param`` value: a fraction ``8/255`` (a float), else a TOML literal, else
    the plain string (a path)."""
    match = _FRACTION.match(text)
    if match:
        try:
            return float(match.group(1)) / float(match.group(2))
        except (ValueError, ZeroDivisionError):
            pass
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def resolve_attack(name: str | None, params: dict[str, Any] | None = None) -> AttackSpec | None:
    """The AttackSpec of attack `name` with `params` over its defaults (string values parsed by
    ``parse_attack_value``); None for no attack (None or ``none``, which takes no parameters).
    UserError (one line) for an unknown attack, an unknown parameter or a bad value."""
    params = dict(params or {})
    if name is None or name == NO_ATTACK:
        if params:
            raise UserError("--attack-param given without --attack")
        return None
    cls = attack_class(name)
    names = [f.name for f in dataclasses.fields(cls)]
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in params.items():
        if key not in names:
            raise UserError(
                f"--attack {name}: no parameter {key!r}{did_you_mean(key, names)}; its "
                f"parameters: {', '.join(names)}"
            )
        if isinstance(value, str) and hints.get(key) is not str:  # a path stays as written
            value = parse_attack_value(value)
        if hints.get(key) is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        values[key] = value
    problems = param_problems(cls, values)
    if problems:
        raise UserError(f"--attack {name}: {'; '.join(problems)}")
    attack = cls(**values)
    attack.check()
    return AttackSpec(name, tuple(sorted(dataclasses.asdict(attack).items())))


def build_attack(spec: AttackSpec):
    """The attack object of `spec` (an ``Attack``)."""
    return attack_class(spec.name)(**dict(spec.params))
