"""Where data and features live and how features are computed (the CLI's data flags)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class DataSettings:
    """Data root, download permission, feature cache folder and extraction settings.

    ``data_root`` None means ``$LAICBENCH_DATA`` or ``~/.cache/laicbench/data``; ``cache_dir``
    None means ``$LAICBENCH_CACHE`` or ``~/.cache/laicbench/features``; precision "auto" is fp32
    on the CPU and fp16 on CUDA; ``vocabulary`` None means the WordNet noun list, else a text file
    with one noun per line.
    """

    data_root: str | None = None
    download: bool = False
    cache_dir: str | None = None
    precision: str = "auto"
    vocabulary: str | None = None
    batch_size: int = 256
    num_workers: int = 2

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
        return asdict(self)
