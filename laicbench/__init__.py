"""laicbench: a benchmark harness for language-assisted image clustering (LAIC).

Methods (CLIP K-means, TAC, the 2026 relational method, ...) are plugins behind one registry; they
receive identical cached features from an open_clip backbone and return cluster labels, which
laicbench scores and stores as one typed record per run.

The Python API: ``run_sweep(SweepConfig(...)) -> SweepResult`` runs a sweep as ``laicbench run``
does, ``run_tuning(TuningConfig(...)) -> TuningResult`` tunes as ``laicbench tune`` does, and
``build_report(results_dir)`` writes the report as ``laicbench report`` does. They are imported
on first use, so ``import laicbench`` stays light.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("laicbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_API = {
    "run_sweep": "laicbench.run.sweep",
    "Sweep": "laicbench.run.sweep",
    "SweepResult": "laicbench.run.sweep",
    "SweepConfig": "laicbench.run.config",
    "load_config": "laicbench.run.config",
    "build_report": "laicbench.report.build",
    "run_tuning": "laicbench.tune.tuning",
    "TuningConfig": "laicbench.tune.tuning",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'laicbench' has no attribute {name!r}")
