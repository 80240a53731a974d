"""Where data and features live and how features are computed (the CLI's data flags)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class AttackSpec:
    """An adversarial attack on the test images (``--attack NAME --attack-param K=V``): its
    registered name and every parameter (defaults filled in), as sorted (name, value) pairs so
    that the spec is hashable. Built and checked by ``laicbench.data.attacks.resolve_attack``."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttackSpec:
        """The spec of its JSON form ``{"name": ..., "params": {...}}``."""
        return cls(str(data["name"]), tuple(sorted(dict(data.get("params") or {}).items())))

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"name": ..., "params": {...}}``."""
        return {"name": self.name, "params": dict(self.params)}

    @property
    def label(self) -> str:
        """A short label for tables: ``pgd(eps=0.0314, steps=10, ...)``."""
        params = ", ".join(f"{k}={_short(v)}" for k, v in self.params)
        return f"{self.name}({params})"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 24 else "..." + text[-21:]


@dataclass(frozen=True)
class DataSettings:
    """Data root, download permission, feature cache folder and extraction settings.

    ``data_root`` None means ``$LAICBENCH_DATA`` or ``~/.cache/laicbench/data``; ``cache_dir``
    None means ``$LAICBENCH_CACHE`` or ``~/.cache/laicbench/features``; precision "auto" is fp32
    on the CPU and fp16 on CUDA; ``vocabulary`` None means the WordNet noun list, else a text file
    with one noun per line; ``attack`` None means clean images, else the attack that perturbs
    the test split's images before they are encoded (part of that split's cache key).
    """

    data_root: str | None = None
    download: bool = False
    cache_dir: str | None = None
    precision: str = "auto"
    vocabulary: str | None = None
    batch_size: int = 256
    num_workers: int = 2
    attack: AttackSpec | None = None

    def __post_init__(self) -> None:
        if isinstance(self.attack, dict):  # the JSON form (a Ray trial's config)
            object.__setattr__(self, "attack", AttackSpec.from_dict(self.attack))

    def resolved_precision(self, device: str) -> str:
        """The precision actually used on `device`."""
        if self.precision != "auto":
            return self.precision
        return "fp16" if device.startswith("cuda") else "fp32"

    def extracting_on(self, device: str) -> DataSettings:
        """These settings with precision "auto" resolved for `device`, the device that extracts
        the features (a sweep's): the runs of a sweep then read, fingerprint and record the same
        features whatever device each of them runs on (a CPU-only method in a CUDA sweep, a GPU
        trial of a driver without a GPU)."""
        return replace(self, precision=self.resolved_precision(device))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out = asdict(self)
        out["attack"] = None if self.attack is None else self.attack.to_dict()
        return out
