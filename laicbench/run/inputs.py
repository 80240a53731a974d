"""What a run's features are made from: the other backbones a run reads (``run_spaces``) and
the fingerprint of its inputs (``run_inputs``) that every record stores and that resume,
``status`` and ``report`` compare with today's. Nothing here imports torch (the report uses it
for datasets whose fingerprint needs no model: features files, simulated datasets)."""

from __future__ import annotations

import dataclasses
from typing import Any

from laicbench.api import registry
from laicbench.api.errors import UserError
from laicbench.api.features import Need, other_backbones
from laicbench.api.settings import DataSettings
from laicbench.data.resolve import resolve_dataset
from laicbench.run.spec import RunSpec


def attacked_settings(spec: RunSpec, settings: DataSettings) -> DataSettings:
    """The data settings of `spec`'s own dataset: `settings` with the run's attack on its test
    images (the shift track's source dataset is read with `settings` as given: clean)."""
    return settings if spec.attack is None else dataclasses.replace(settings, attack=spec.attack)


def run_spaces(spec: RunSpec, settings: DataSettings) -> list[str]:
    """The backbones besides `spec.backbone` whose image features of the same dataset(s) the run
    reads (its method's ``extra_backbones``, canonical, without repeats): usually none. UserError
    (one line) when a dataset of the run lives in one backbone's space (the simulated demo, a
    features file) and so has no other."""
    method_cls = registry.methods.get(spec.method)
    extra = other_backbones(method_cls.extra_backbones(spec.params), spec.backbone)
    if extra and spec.attack is not None:
        raise UserError(
            f"method {spec.method!r} reads the features of other backbones too, which the "
            "adversarial track does not attack; drop --attack or those backbones"
        )
    for name in spec.datasets if extra else []:
        dataset = resolve_dataset(name, settings)
        for backbone in extra:
            try:
                dataset.backbone_for(backbone, spec.backbone)
            except UserError:
                raise UserError(
                    f"method {spec.method!r} asks for the features of {name} under backbone "
                    f"{backbone!r} too, but {name} lives in the feature space of backbone "
                    f"{dataset.native_backbone!r} only; drop the other backbones from the "
                    f"method's parameters for this dataset"
                ) from None
    return extra


def run_inputs(spec: RunSpec, device: str, settings: DataSettings) -> dict[str, Any]:
    """The fingerprint of what `spec`'s features are made from on `device` (Dataset.fingerprint;
    with ``train_on``, the source's too; with other backbones' image features, ``run_spaces``,
    theirs under ``spaces``), stored in its record and compared when planning."""
    method_cls = registry.methods.get(spec.method)
    out = _inputs_under(spec, spec.backbone, method_cls.needs, device, settings)
    extra = run_spaces(spec, settings)
    if extra:
        spaces = {b: _inputs_under(spec, b, frozenset(), device, settings) for b in extra}
        out = {**out, "spaces": spaces}
    return out


def _inputs_under(
    spec: RunSpec, backbone: str, needs: frozenset[Need], device: str, settings: DataSettings
) -> dict[str, Any]:
    prints = [
        resolve_dataset(name, settings).fingerprint(
            backbone, device, attacked_settings(spec, settings) if i == 0 else settings, needs
        )
        for i, name in enumerate(spec.datasets)
    ]
    if spec.train_on is None:
        return prints[0]
    return {
        **prints[0],
        "train_on": spec.train_on,
        "train_inputs": prints[1],
        "settings_from": spec.settings_dataset,
    }
