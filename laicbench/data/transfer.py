"""Features of a run that learns on one dataset and labels another (the shift track): the train
split of a source dataset (ImageNet) with the test split of a test-only set (ImageNet-R, ...)."""

from __future__ import annotations

import dataclasses

import numpy as np

from laicbench.api.features import DatasetFeatures


def transfer_features(
    source: DatasetFeatures, target: DatasetFeatures, classes: list[int] | None
) -> DatasetFeatures:
    """`target`'s features with its train split replaced by `source`'s train split: only the
    source images of `classes` (the source label of each target class), relabelled to the target's
    labels, or every source image with its source label when `classes` is None. Nouns, text
    encoder and class names stay the target's; ``info`` records both and the source classes
    learned on (``train_classes``: "all" or their number)."""
    image_train, labels_train = source.image_train, np.asarray(source.labels_train)
    if classes is not None:
        position = np.full(max(int(labels_train.max()), max(classes)) + 1, -1)
        position[np.asarray(classes)] = np.arange(len(classes))
        keep = position[labels_train] >= 0
        image_train, labels_train = image_train[keep], position[labels_train[keep]]
    return dataclasses.replace(
        target,
        image_train=image_train,
        labels_train=labels_train,
        info={
            **target.info,
            "n_train": int(len(labels_train)),
            "train_source": source.info,
            "train_classes": "all" if classes is None else len(classes),
        },
    )
