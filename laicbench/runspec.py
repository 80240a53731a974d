"""Run specifications: one run is (method + params, dataset, backbone, seed)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def short_hash(value: Any, length: int = 10) -> str:
    """The first `length` hex digits of the SHA-256 of `value`'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class RunSpec:
    """One run: canonical method and dataset names, full method params, backbone and seed."""

    method: str
    dataset: str
    backbone: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    @property
    def params_hash(self) -> str:
        """Hash of the method parameters (distinguishes points of a hyperparameter sweep)."""
        return short_hash(self.params)

    @property
    def run_id(self) -> str:
        """A stable identifier, also the record's path below the results dir (without suffix)."""
        dataset, backbone = (
            re.sub(r"[^A-Za-z0-9._-]+", "_", s) for s in (self.dataset, self.backbone)
        )
        return f"{self.method}/{dataset.strip('_')}/{backbone}/seed{self.seed}-{self.params_hash}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in records."""
        return {
            "method": self.method,
            "dataset": self.dataset,
            "backbone": self.backbone,
            "seed": self.seed,
            "params": self.params,
        }


_SEED_PART = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_seeds(text: str) -> list[int]:
    """Parse ``"0-2"``, ``"0,3,5"`` or ``"0-2,7"`` into sorted unique seeds (ValueError if bad)."""
    seeds: set[int] = set()
    for part in str(text).split(","):
        match = _SEED_PART.match(part)
        if not match:
            raise ValueError(
                f"seeds {text!r}: {part.strip()!r} is not N or N-M (e.g. 0-2 or 0,1,5)"
            )
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"seeds {text!r}: range {lo}-{hi} is empty")
        seeds.update(range(lo, hi + 1))
    return sorted(seeds)
