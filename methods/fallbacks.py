"""A method whose parameters left at None take, in a run, the per-dataset setting or else a
fallback value of the method's (the official code's default), for the methods of the subspace
family (ssc-omp, ensc, cpp, pro-dsc)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from laicbench.api import FeatureBundle, Method


@dataclass
class WithFallbacks(Method):
    """Base (not registered): ``fallbacks`` gives the value of a parameter left at None where
    ``dataset_settings`` has none."""

    fallbacks: ClassVar[dict[str, Any]] = {}

    @classmethod
    def value_in_run(cls, name: str, dataset: str, n_train: int, n_clusters: int) -> Any:
        """The parameter's value at the defaults: given, per-dataset, else the fallback."""
        del n_train, n_clusters
        return cls().resolved(name, dataset, cls.fallbacks.get(name))

    def value(self, name: str, features: FeatureBundle) -> Any:
        """The value parameter `name` takes in this run (given, per-dataset, fallback)."""
        return self.resolved(name, features.dataset, self.fallbacks.get(name))
