"""ImageNet-C: the ImageNet validation images under one corruption at one severity (test only).

``<root>/imagenet-c/<corruption>/<severity>/<wnid>/*.JPEG`` (the released archives extracted into
``<root>/imagenet-c``). The corruption and severity are parameters of the plugin (constructor
arguments ``corruption`` and ``severity``, class attributes of a variant); the registered
``imagenet-c`` is Gaussian noise at severity 1, VLM4Cluster's setting. Other settings are
registered variants named ``imagenet-c-<corruption>-<severity>``, made by ``imagenet_c_variant``
from a plugin file (``--include-path``)::

    from laicbench.datasets.imagenet_c import imagenet_c_variant

    imagenet_c_variant("fog", 3)  # registers "imagenet-c-fog-3"

The images are 224x224 centre crops already, so they are not resized before the centre crop
(``resize_ratio`` 1.0, unlike the other ImageNet sets). Test only, like the other shift sets.
"""

from __future__ import annotations

from pathlib import Path

from laicbench.api.errors import UserError
from laicbench.api.registry import datasets, register_dataset

from .imagenet import N_IMAGENET_CLASSES
from .imagenet_shift import TEST_ONLY_NOTE, ImageNetShiftSet
from .imagenet_shift_classes import IMAGENET_WNIDS

# The 15 corruptions of the benchmark, then the 4 extra ones released with it.
CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
)  # fmt: skip
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)


def check_setting(corruption: str, severity: int) -> None:
    """UserError unless `corruption` is an ImageNet-C corruption and `severity` is 1..5."""
    if corruption not in CORRUPTIONS:
        raise UserError(
            f"imagenet-c: unknown corruption {corruption!r}; one of {', '.join(CORRUPTIONS)}"
        )
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise UserError(f"imagenet-c: severity must be one of 1..5, not {severity!r}")


def layout_of(corruption: str, severity: int) -> str:
    """The expected files of one corruption and severity."""
    return (
        f"<root>/imagenet-c/{corruption}/{severity}/<wnid>/*.JPEG, 1000 wnid folders (the "
        f"ImageNet-C archives extracted into <root>/imagenet-c); {TEST_ONLY_NOTE}"
    )


@register_dataset("imagenet-c")
class ImageNetC(ImageNetShiftSet):
    """ImageNet-C, gaussian_noise at severity 1: 1,000 classes, 50,000 images (test only).

    The corruption and severity are constructor arguments (class attributes of a variant made by
    ``imagenet_c_variant``).
    """

    n_classes = N_IMAGENET_CLASSES
    suites = {"shift": 2, "vlm4cluster": 17}
    expected_counts = {"train": 50_000, "test": 50_000}
    resize_ratio = 1.0  # 224x224 centre crops already
    class_wnids = IMAGENET_WNIDS
    folder_name = "imagenet-c"
    corruption: str = "gaussian_noise"
    severity: int = 1
    layout = layout_of("gaussian_noise", 1)

    def __init__(
        self,
        root: str | Path | None = None,
        download: bool = False,
        expected_counts: dict[str, int] | None = None,
        corruption: str | None = None,
        severity: int | None = None,
    ):
        super().__init__(root=root, download=download, expected_counts=expected_counts)
        self.corruption = type(self).corruption if corruption is None else corruption
        self.severity = type(self).severity if severity is None else severity
        check_setting(self.corruption, self.severity)
        self.layout = layout_of(self.corruption, self.severity)

    @property
    def base(self) -> Path:
        """``<root>/imagenet-c/<corruption>/<severity>``."""
        return self.root / self.folder_name / self.corruption / str(self.severity)


def imagenet_c_variant(corruption: str, severity: int) -> type[ImageNetC]:
    """Register ``imagenet-c-<corruption>-<severity>`` (once) and return its class."""
    check_setting(corruption, severity)
    name = f"imagenet-c-{corruption.replace('_', '-')}-{severity}"
    if name in datasets.names():
        existing = datasets.get(name)
        if issubclass(existing, ImageNetC) and (existing.corruption, existing.severity) == (
            corruption,
            severity,
        ):
            return existing
    variant = type(
        f"ImageNetC_{corruption}_{severity}",
        (ImageNetC,),
        {
            "__doc__": (
                f"ImageNet-C, {corruption} at severity {severity}: 1,000 classes, 50,000 images "
                "(test only)."
            ),
            "__module__": ImageNetC.__module__,
            "corruption": corruption,
            "severity": severity,
            "suites": {},
            "layout": layout_of(corruption, severity),
        },
    )
    datasets.add(name, variant)
    return variant
