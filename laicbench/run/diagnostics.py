"""Label-based diagnostics of a finished run, computed by the harness for the reports.

Methods never see labels. A method may leave arrays in ``outputs_`` (a MethodOutputs: its
representation of the test split, train pseudo-labels and the filter's kept mask, a sample of
explicit relation rows); after prediction the harness scores them against the ground truth here.
Nothing here can change a prediction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from laicbench.api.features import DatasetFeatures
from laicbench.api.outputs import MethodOutputs
from laicbench.cluster.knn import cosine_knn
from laicbench.cluster.metrics import cluster_accuracy, hungarian_match

CONSISTENCY_SAMPLE = 2000
CONSISTENCY_K = 10


def neighbour_consistency(
    x: np.ndarray, labels: np.ndarray, k: int = CONSISTENCY_K, device: str = "cpu"
) -> float:
    """Mean share of each sample's k nearest (cosine) neighbours that have its label, x100."""
    neighbours, _ = cosine_knn(x, min(k, len(x) - 1), device=device)
    return 100.0 * float((labels[neighbours] == labels[:, None]).mean())


def label_diagnostics(
    outputs: MethodOutputs,
    data: DatasetFeatures,
    y_pred: np.ndarray,
    seed: int,
    device: str = "cpu",
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(JSON-able figures data, arrays to store beside the record) of one run."""
    out: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    names = list(data.class_names)
    mapping = hungarian_match(data.labels_test, y_pred)
    out["cluster_to_class"] = {str(c): names[k] for c, k in sorted(mapping.items())}

    if outputs.representation_test is not None:
        rng = np.random.default_rng(seed)
        n = len(data.labels_test)
        sample = np.sort(rng.choice(n, min(CONSISTENCY_SAMPLE, n), replace=False))
        labels = np.asarray(data.labels_test)[sample]
        out["neighbour_consistency"] = {
            "k": CONSISTENCY_K,
            "n": int(len(sample)),
            "image": neighbour_consistency(
                np.asarray(data.image_test)[sample], labels, device=device
            ),
            "representation": neighbour_consistency(
                np.asarray(outputs.representation_test)[sample], labels, device=device
            ),
        }
    if outputs.pseudo_labels_train is not None:
        pseudo = np.asarray(outputs.pseudo_labels_train)
        kept = np.asarray(outputs.kept_train, dtype=bool)
        truth = np.asarray(data.labels_train)
        out["pseudo_labels"] = {
            "acc_before": 100.0 * cluster_accuracy(truth, pseudo),
            "acc_after": 100.0 * cluster_accuracy(truth[kept], pseudo[kept])
            if kept.any()
            else None,
            "kept_fraction": float(kept.mean()),
        }
    if outputs.relations_sample is not None:
        index = np.asarray(outputs.relations_sample_index)
        arrays["relations_sample"] = np.asarray(outputs.relations_sample, dtype=np.float32)
        arrays["relations_sample_labels"] = np.asarray(data.labels_test)[index]
    return out, arrays
