"""The fair tuning track: every method gets the same label-free search budget (``laicbench
tune``); the report shows default, tuned and the oracle's headroom.

``run_tuning(TuningConfig(...)) -> TuningResult`` and ``Tuning`` are imported on first use, so
that the report (which reads study records) imports neither torch nor the executors.
"""

from typing import Any

_API = {
    "Tuning": "laicbench.tune.tuning",
    "TuningConfig": "laicbench.tune.tuning",
    "TuningResult": "laicbench.tune.tuning",
    "run_tuning": "laicbench.tune.tuning",
    "OBJECTIVES": "laicbench.tune.objectives",
    "Objective": "laicbench.tune.objectives",
    "get_objective": "laicbench.tune.objectives",
}
__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'laicbench.tune' has no attribute {name!r}")
