"""The plugin API: what a method or a dataset plugin is written against, in one import.

``from laicbench.api import Method, Need, FeatureBundle, register_method, POSITIVE`` is all a
method plugin needs: Method, Resources, merge_settings, the parameter constraints and search
spaces; Dataset; the features a dataset yields and the bundle a method sees (Need,
DatasetFeatures, FeatureBundle); MethodOutputs; the registries' decorators; DataSettings;
UserError; and the
benchmark-step vocabulary of ``Method.bench_steps`` (PrimitiveStep, synthetic, timed, SIZES).
The submodules hold the same names. Nothing here imports torch.
"""

from laicbench.api.backbone_spec import BackboneSpec
from laicbench.api.bench import (
    CONNECTED_NOISE,
    DIM,
    N_NOUNS,
    SIZES,
    BenchJob,
    BenchStep,
    PrimitiveStep,
    synthetic,
    timed,
)
from laicbench.api.dataset import Dataset
from laicbench.api.errors import UserError
from laicbench.api.features import DatasetFeatures, FeatureBundle, Need
from laicbench.api.method import Method, Resources, merge_settings
from laicbench.api.outputs import MethodOutputs
from laicbench.api.params import (
    AT_LEAST_ONE,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    Choice,
    Constraint,
    FloatRange,
    Interval,
    IntRange,
    Options,
    Scaled,
)
from laicbench.api.registry import register_dataset, register_figure, register_method
from laicbench.api.settings import DataSettings

__all__ = [
    "AT_LEAST_ONE",
    "CONNECTED_NOISE",
    "DIM",
    "FRACTION",
    "NON_NEGATIVE",
    "N_NOUNS",
    "POSITIVE",
    "SIZES",
    "Scaled",
    "BackboneSpec",
    "BenchJob",
    "BenchStep",
    "Choice",
    "Constraint",
    "DataSettings",
    "Dataset",
    "DatasetFeatures",
    "FeatureBundle",
    "FloatRange",
    "IntRange",
    "Interval",
    "Method",
    "MethodOutputs",
    "Need",
    "Options",
    "PrimitiveStep",
    "Resources",
    "UserError",
    "merge_settings",
    "register_dataset",
    "register_figure",
    "register_method",
    "synthetic",
    "timed",
]
