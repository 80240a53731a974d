"""The fair tuning track: every method gets the same label-free search budget (``laicbench
tune``); the report shows default, tuned and the oracle's headroom."""

from laicbench.tune.objectives import OBJECTIVES, Objective, get_objective
from laicbench.tune.tuning import Tuning, TuningConfig, TuningResult, run_tuning

__all__ = [
    "OBJECTIVES",
    "Objective",
    "Tuning",
    "TuningConfig",
    "TuningResult",
    "get_objective",
    "run_tuning",
]
