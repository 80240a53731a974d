"""The dataset plugin API and the resolution of ``--datasets`` entries to plugins."""

from __future__ import annotations

from typing import Any, ClassVar

from laicbench.api import registry
from laicbench.api.backbone_spec import BackboneSpec
from laicbench.api.errors import UserError
from laicbench.api.features import DatasetFeatures, Need
from laicbench.api.settings import DataSettings

# The suite that `--datasets all` runs: the eight benchmarks of TAC and the 2026 paper, declared
# by their dataset plugins (``suites = {"all": position}``).
PAPER_SUITE = "all"


class Dataset:
    """Base class of dataset plugins.

    A dataset turns a backbone into DatasetFeatures (train/test image features and labels, class
    names and, when it has one, a noun vocabulary with its features). A dataset whose features are
    defined in one backbone's space (the simulated demo, a features file) names it in
    ``native_backbone``; running it with another backbone is an error.
    """

    name: ClassVar[str]  # set by the registry
    n_classes: ClassVar[int]
    native_backbone: ClassVar[str | None] = None
    # the named suites this dataset belongs to (`--datasets SUITE`), with its position in each
    suites: ClassVar[dict[str, int]] = {}
    # True for a set released as a test split only (the ImageNet shift sets): its "train" split
    # is the same images as its test split, so a method that trains learns on the test images
    # themselves (transductive) unless the run trains it on another dataset
    test_only: ClassVar[bool] = False
    # for a test-only set: the dataset it is a shifted copy of (the ImageNet shift sets:
    # "imagenet"), whose train split ``--train-on`` pairs it with and whose runs the report's
    # shift table compares it to
    shift_source: ClassVar[str | None] = None

    def load(self, backbone: str, device: str, settings: DataSettings) -> DatasetFeatures:
        """Return the features of both splits under `backbone`, computed on `device`."""
        raise NotImplementedError

    def check_available(self) -> None:
        """Raise a UserError naming what is missing when the dataset cannot be read."""

    def fingerprint(
        self, backbone: str, device: str, settings: DataSettings, needs: frozenset[Need]
    ) -> dict[str, Any]:
        """What a run's features depend on beyond the dataset's name and the backbone string,
        for a method with `needs` running on `device` (features files: their content; image
        datasets: sample lists, precision, weights, vocabulary). Stored in every record; a run
        whose stored fingerprint differs from today's is outdated, not done."""
        del backbone, device, settings, needs
        return {}

    def settings_read(self, needs: frozenset[Need]) -> frozenset[str]:
        """The extraction settings (``DataSettings`` fields: "precision", "vocabulary") this
        dataset's features depend on for a method with `needs`; the same settings go into its
        ``fingerprint``. A sweep that sets one that none of its runs reads is refused, so that
        a flag is never silently ignored. Default: none (features that are given, not
        computed)."""
        del needs
        return frozenset()

    def source_classes(self, source: str) -> list[int] | None:
        """For a test-only set whose methods may learn on the train split of dataset `source`
        (``--train-on``): the label in `source` of each of this dataset's classes (index =
        label); None when this dataset cannot be paired with `source`."""
        del source
        return None

    def lacks(self, need: Need) -> str | None:
        """Why this dataset cannot provide `need` (checked before any run), or None when it can.
        Only image datasets have images and an image tower."""
        if need is Need.IMAGE_TOWER:
            return "it has no images (only image datasets do)"
        return None

    def backbone_for(self, requested: str | None, default: str) -> str:
        """The backbone a run of this dataset uses, given the user's `requested` one (or None)."""
        if self.native_backbone is None:
            return str(BackboneSpec.parse(requested or default))
        if requested not in (None, self.native_backbone):
            raise UserError(
                f"dataset {self.name!r} lives in the feature space of backbone "
                f"{self.native_backbone!r}; drop --backbone {requested} or set it to "
                f"{self.native_backbone}"
            )
        return self.native_backbone


def suite_members(name: str) -> list[str] | None:
    """The datasets of suite `name` in suite order, or None when no dataset declares it."""
    members = [
        (entry.obj.suites[name], entry.name)
        for entry in registry.datasets.entries()
        if name in getattr(entry.obj, "suites", {})
    ]
    return [dataset for _, dataset in sorted(members)] if members else None


def dataset_order(name: str) -> tuple[int, str]:
    """Sort key of datasets in tables: the paper suite's in its order, then the others by name."""
    members = suite_members(PAPER_SUITE) or []
    return (members.index(name), "") if name in members else (len(members), name)
