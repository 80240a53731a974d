"""Bring your own features: a ``.npz`` file given as a ``--datasets`` entry.

Required keys: ``image_train``, ``image_test`` (float arrays (n, d)), ``labels_train``,
``labels_test`` (integer arrays). Optional: ``noun_features`` (M, d) with ``noun_words`` (M
strings), and ``class_names`` (K strings). A method that needs the noun bank (without nouns in
the file) or a text encoder (never in a features file) is refused before any run starts.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from laicbench.cache import file_sha256
from laicbench.dataset import Dataset
from laicbench.errors import UserError
from laicbench.features import DatasetFeatures, Need
from laicbench.settings import DataSettings

REQUIRED = ("image_train", "image_test", "labels_train", "labels_test")
FEATURES_FILE_BACKBONE = "features-file"


class FeaturesFile(Dataset):
    """Precomputed features and labels read from a .npz file."""

    native_backbone = FEATURES_FILE_BACKBONE

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().absolute()
        self.name = str(self.path)
        if not self.path.is_file():
            raise UserError(f"features file {self.path} does not exist")
        self.n_classes = len(self._read().class_names)

    @functools.cache  # noqa: B019 - one instance per file and process
    def _read(self) -> DatasetFeatures:
        try:
            data = np.load(self.path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UserError(f"features file {self.path}: not a readable .npz ({exc})") from exc
        missing = [key for key in REQUIRED if key not in data]
        if missing:
            raise UserError(
                f"features file {self.path}: missing key(s) {', '.join(missing)}; required: "
                f"{', '.join(REQUIRED)}"
            )
        x_train, x_test = (np.asarray(data[k], dtype=np.float32) for k in REQUIRED[:2])
        y_train, y_test = (np.asarray(data[k]).astype(np.int64) for k in REQUIRED[2:])
        if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
            raise UserError(f"features file {self.path}: image arrays must be (n, d) with equal d")
        if len(x_train) != len(y_train) or len(x_test) != len(y_test):
            raise UserError(f"features file {self.path}: labels and features differ in length")
        classes = np.union1d(y_train, y_test)
        if "class_names" in data:
            class_names = [str(c) for c in data["class_names"]]
        else:
            class_names = [f"class {c}" for c in range(int(classes.max()) + 1)]
        if classes.min() < 0 or classes.max() >= len(class_names):
            raise UserError(f"features file {self.path}: labels must lie in [0, K)")
        words = nouns = None
        if "noun_features" in data:
            if "noun_words" not in data:
                raise UserError(f"features file {self.path}: noun_features without noun_words")
            nouns = np.asarray(data["noun_features"], dtype=np.float32)
            nouns /= np.linalg.norm(nouns, axis=1, keepdims=True)
            words = [str(w) for w in data["noun_words"]]
        return DatasetFeatures(
            image_train=x_train,
            image_test=x_test,
            labels_train=y_train,
            labels_test=y_test,
            class_names=class_names,
            noun_words=words,
            noun_features_loader=None if nouns is None else (lambda: nouns),
            info={
                "kind": "features file",
                "path": str(self.path),
                "sha256": file_sha256(self.path),
                "n_train": len(y_train),
                "n_test": len(y_test),
                "has_nouns": nouns is not None,
            },
        )

    def lacks(self, need: Need) -> str | None:
        """A features file never has a text encoder; it has nouns only when it stores them."""
        if need is Need.TEXT_ENCODER:
            return "a features file has no text encoder (no backbone made it here)"
        if need is Need.NOUNS and self._read().noun_words is None:
            return "this features file stores no noun_features / noun_words"
        return None

    def load(self, backbone: str, device: str, settings: DataSettings) -> DatasetFeatures:
        """The file's features (the backbone is whatever made them)."""
        del backbone, device, settings
        return self._read()
