"""Bring your own features: a ``.npz`` file given as a ``--datasets`` entry.

Required keys: ``image_train``, ``image_test`` (float arrays (n, d)), ``labels_train``,
``labels_test`` (integer arrays). Optional: ``noun_features`` (M, d) with ``noun_words`` (M
strings), ``noun_template_features`` (T, M, d: the same nouns in each of T prompt templates;
needs ``noun_features``), ``class_names`` (K strings) and ``backbone`` (one string: the model
that made the features, shown in reports; the run's backbone stays ``features-file``, the file's
own feature space). A method that needs the noun bank or
per-template nouns (without them in the file) or a text encoder (never in a features file) is
refused before any run starts.
"""

from __future__ import annotations

import functools
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from laicbench.api.dataset import Dataset
from laicbench.api.errors import UserError
from laicbench.api.features import DatasetFeatures, Need
from laicbench.api.settings import DataSettings
from laicbench.files import file_sha256

REQUIRED = ("image_train", "image_test", "labels_train", "labels_test")
FEATURES_FILE_BACKBONE = "features-file"


def backbone_label(backbone: str, info: dict[str, Any] | None = None) -> str:
    """How a run's backbone is shown: its name, or for a features file what the features are
    ("features file (made with ViT-B-32:openai)" when the file names its model, else
    "features file (model not stated)"); `info` is the run's dataset info."""
    if backbone != FEATURES_FILE_BACKBONE:
        return backbone
    made_with = (info or {}).get("made_with")
    return f"features file ({f'made with {made_with}' if made_with else 'model not stated'})"


class FeaturesFile(Dataset):
    """Precomputed features and labels read from a .npz file."""

    native_backbone = FEATURES_FILE_BACKBONE

    def __init__(self, path: str | Path):
        # resolved (symlinks, '..'), so that one file spelled several ways is one dataset
        self.path = Path(path).expanduser().resolve()
        self.name = str(self.path)
        if not self.path.is_file():
            what = (
                "is a directory, not a .npz file"
                if self.path.is_dir()
                else "is not a regular file"
                if self.path.exists()
                else "does not exist"
            )
            raise UserError(f"features file {self.path} {what}")
        self.n_classes = len(self._read().class_names)

    @functools.cache  # noqa: B019 - one instance per file and process
    def _read(self) -> DatasetFeatures:
        """Read and check every array once; UserError naming the first problem found."""
        arrays = self._arrays()
        missing = [key for key in REQUIRED if key not in arrays]
        if missing:
            raise self._error(
                f"missing key(s) {', '.join(missing)}; required: {', '.join(REQUIRED)}"
            )
        x_train, x_test = (self._features(arrays, key) for key in ("image_train", "image_test"))
        if x_train.shape[1] != x_test.shape[1]:
            raise self._error(
                f"image_train and image_test differ in dimension ({x_train.shape[1]} vs "
                f"{x_test.shape[1]})"
            )
        y_train, y_test = (self._labels(arrays, key) for key in ("labels_train", "labels_test"))
        for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
            if len(x) != len(y):
                raise self._error(
                    f"image_{split} has {len(x)} rows but labels_{split} {len(y)} values"
                )
        present = np.union1d(y_train, y_test)
        if "class_names" in arrays:
            class_names = [str(c) for c in np.atleast_1d(arrays["class_names"])]
        else:
            class_names = [f"class {c}" for c in range(int(present.max()) + 1)]
        k = len(class_names)
        if present.min() < 0 or present.max() >= k or len(present) != k:
            raise self._error(
                f"labels must be the contiguous class ids 0..K-1 with every class present (K = "
                f"{k}{' from class_names' if 'class_names' in arrays else ''}); found "
                f"{len(present)} distinct values from {present.min()} to {present.max()}"
            )
        if k < 2:
            raise self._error(
                f"{k} class only: clustering into K < 2 clusters is trivially right; a features "
                "file needs at least two classes"
            )
        if len(np.unique(y_test)) < 2:
            raise self._error(
                "labels_test holds one class only: every clustering of it scores 100%; the test "
                "split needs at least two classes"
            )
        if k > len(y_test):
            raise self._error(f"K = {k} classes but only {len(y_test)} test samples")
        words = nouns = None
        if "noun_features" in arrays:
            if "noun_words" not in arrays:
                raise self._error("noun_features without noun_words")
            nouns = self._features(arrays, "noun_features")
            words = [str(w) for w in np.atleast_1d(arrays["noun_words"])]
            if nouns.shape[1] != x_train.shape[1]:
                raise self._error(
                    f"noun_features have dimension {nouns.shape[1]}, the images "
                    f"{x_train.shape[1]}: both must live in one space"
                )
            if len(words) != len(nouns):
                raise self._error(
                    f"noun_words has {len(words)} entries but noun_features {len(nouns)} rows"
                )
            nouns /= np.linalg.norm(nouns, axis=1, keepdims=True)
        templates = self._templates(arrays, words, x_train.shape[1])
        made_with = None
        if "backbone" in arrays:
            made_with = np.atleast_1d(arrays["backbone"])
            if made_with.dtype.kind not in "US" or made_with.size != 1:
                raise self._error("backbone must be one string (the model that made the features)")
            made_with = str(made_with[0])
        return DatasetFeatures(
            image_train=x_train,
            image_test=x_test,
            labels_train=y_train,
            labels_test=y_test,
            class_names=class_names,
            noun_words=words,
            noun_features_loader=None if nouns is None else (lambda: nouns),
            noun_template_features_loader=None if templates is None else (lambda: templates),
            info={
                "kind": "features file",
                "path": str(self.path),
                "sha256": self.sha256,
                "n_train": len(y_train),
                "n_test": len(y_test),
                "has_nouns": nouns is not None,
                "has_noun_templates": templates is not None,
                "made_with": made_with,
            },
        )

    def _error(self, problem: str) -> UserError:
        return UserError(f"features file {self.path}: {problem}")

    def _arrays(self) -> dict[str, np.ndarray]:
        """Every array of the archive, read once (a damaged archive is one UserError)."""
        with open(self.path, "rb") as f:
            magic = f.read(4)
        if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
            what = "an empty file" if not magic else "not a .npz (zip) archive"
            raise self._error(f"{what}; write one with numpy.savez")
        try:
            with np.load(self.path, allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise self._error(f"damaged or truncated .npz ({type(exc).__name__}: {exc})") from exc

    def _features(self, arrays: dict[str, np.ndarray], key: str) -> np.ndarray:
        """Array `key` as float32 (n, d): real numbers, finite, no all-zero row, n > 0."""
        raw = arrays[key]
        if raw.dtype.kind not in "fiu":
            raise self._error(f"{key} must hold numbers, not {raw.dtype}")
        if raw.ndim != 2 or raw.shape[0] == 0 or raw.shape[1] == 0:
            raise self._error(f"{key} must be a non-empty (n, d) array, got shape {raw.shape}")
        x = np.asarray(raw, dtype=np.float32)
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        if bad:
            raise self._error(f"{key} has {bad} row(s) with NaN or inf")
        zero = int((~x.any(axis=1)).sum())
        if zero:
            raise self._error(f"{key} has {zero} all-zero row(s), which cannot be L2-normalised")
        return x

    def _templates(
        self, arrays: dict[str, np.ndarray], words: list[str] | None, dim: int
    ) -> np.ndarray | None:
        """``noun_template_features`` as unit float32 (T, M, d), or None when absent."""
        if "noun_template_features" not in arrays:
            return None
        if words is None:
            raise self._error("noun_template_features without noun_features / noun_words")
        raw = arrays["noun_template_features"]
        if raw.ndim != 3 or 0 in raw.shape:
            raise self._error(
                f"noun_template_features must be a non-empty (T, M, d) array, got shape {raw.shape}"
            )
        key = "noun_template_features"
        stacked = self._features({key: raw.reshape(-1, raw.shape[-1])}, key)
        if raw.shape[1:] != (len(words), dim):
            raise self._error(
                f"noun_template_features have shape {raw.shape}; expected (T, {len(words)}, {dim}) "
                "for the file's nouns and image dimension"
            )
        stacked /= np.linalg.norm(stacked, axis=1, keepdims=True)
        return stacked.reshape(raw.shape)

    def _labels(self, arrays: dict[str, np.ndarray], key: str) -> np.ndarray:
        """Array `key` as int64 (n,): integer class ids (integral floats accepted)."""
        raw = arrays[key]
        if raw.ndim != 1:
            raise self._error(f"{key} must be one-dimensional (n,), got shape {raw.shape}")
        if raw.dtype.kind not in "fiu":
            raise self._error(f"{key} must hold integer class ids, not {raw.dtype}")
        if raw.dtype.kind == "f" and not np.all(np.isfinite(raw) & (raw == np.round(raw))):
            raise self._error(f"{key} holds non-integer values; class ids must be integers")
        return raw.astype(np.int64)

    @functools.cached_property
    def sha256(self) -> str:
        """SHA-256 of the file's bytes (read once per process)."""
        return file_sha256(self.path)

    def fingerprint(
        self, backbone: str, device: str, settings: DataSettings, needs: frozenset[Need]
    ) -> dict[str, Any]:
        """The file's content: a file regenerated at the same path makes its runs outdated."""
        del backbone, device, settings, needs
        return {"sha256": self.sha256}

    def lacks(self, need: Need) -> str | None:
        """A features file never has a text encoder; it has nouns (and per-template nouns) only
        when it stores them."""
        if need is Need.IMAGE_TOWER:
            return "a features file has no images nor image tower"
        if need is Need.TEXT_ENCODER:
            return "a features file has no text encoder (no backbone made it here)"
        if need is Need.NOUNS and self._read().noun_words is None:
            return "this features file stores no noun_features / noun_words"
        if need is Need.NOUN_TEMPLATES and self._read().noun_template_features_loader is None:
            return "this features file stores no noun_template_features"
        return None

    def load(self, backbone: str, device: str, settings: DataSettings) -> DatasetFeatures:
        """The file's features (the backbone is whatever made them)."""
        del backbone, device, settings
        return self._read()
