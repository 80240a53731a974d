"""What a method may leave for the harness besides its labels: ``MethodOutputs``.

A method never sees labels. After ``fit_predict`` the harness scores these arrays against the
ground truth (``laicbench.run.diagnostics``) and stores the results in the record's
``diagnostics`` (and some arrays beside the predictions), which figures read:

- ``representation_test`` (n_test, d'): the space the method clustered the test split in; the
  record gets its neighbour consistency beside that of the image features.
- ``pseudo_labels_train`` (n_train,) with ``kept_train`` (n_train, bool): pseudo-labels of the
  train split and the samples the method kept to learn from; the record gets their accuracy
  before and after the filter and the share kept.
- ``relations_sample`` (m, q) with ``relations_sample_index`` (m,): explicit rows of a relation
  matrix (m test images against q items, e.g. nouns) and which test images they belong to;
  stored beside the predictions with those images' labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class MethodOutputs:
    """Arrays a method leaves in ``self.outputs_`` during ``fit_predict`` (all optional)."""

    representation_test: np.ndarray | None = None
    pseudo_labels_train: np.ndarray | None = None
    kept_train: np.ndarray | None = None
    relations_sample: np.ndarray | None = None
    relations_sample_index: np.ndarray | None = None

    def check(self, n_train: int, n_test: int) -> None:
        """ValueError when an array does not fit the splits (`n_train`, `n_test` samples) or
        its partner is missing."""
        shapes = {
            "representation_test": (self.representation_test, n_test),
            "pseudo_labels_train": (self.pseudo_labels_train, n_train),
            "kept_train": (self.kept_train, n_train),
        }
        for name, (array, n) in shapes.items():
            if array is not None and len(array) != n:
                raise ValueError(f"outputs_.{name} has {len(array)} rows, expected {n}")
        pairs = (
            ("pseudo_labels_train", "kept_train"),
            ("relations_sample", "relations_sample_index"),
        )
        for a, b in pairs:
            if (getattr(self, a) is None) != (getattr(self, b) is None):
                raise ValueError(f"outputs_.{a} and outputs_.{b} go together")
        if self.relations_sample is not None and len(self.relations_sample) != len(
            self.relations_sample_index
        ):
            raise ValueError("outputs_.relations_sample and its index differ in length")
