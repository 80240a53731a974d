"""A features-file generator independent of the demo's model, where the ridge penalty matters.

Nouns fill the whole d-dimensional space with a decaying spectrum (strong leading, weak trailing
directions); a few nouns per class name it. Images are their class direction (in the leading
directions) plus a strong nuisance in the weak trailing directions, which confounds image-only
k-means, plus noise. A ridge penalty that is small next to the spectrum of the selected nouns
whitens them and so amplifies the nuisance; one relative to it does not.

Methods that read each noun once per prompt template get ``noun_template_features``: each noun
plus a small independent perturbation per template (``template_noise`` per coordinate, times
1/sqrt(d)), renormalised, drawn from a generator of its own so that the other arrays do not
depend on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_confounded_features(
    path: Path,
    *,
    seed: int = 0,
    dim: int = 64,
    n_classes: int = 10,
    n_nouns: int = 3000,
    n_train_per_class: int = 400,
    n_test_per_class: int = 100,
    named_per_class: int = 3,
    n_nuisances: int = 4,
    nuisance: float = 1.5,
    weak_directions: int = 16,
    n_templates: int = 7,
    template_noise: float = 0.1,
) -> Path:
    """Write the features file (image, label, noun arrays) to `path` and return it."""
    rng = np.random.default_rng(seed)
    strong = dim - weak_directions
    nouns = rng.standard_normal((n_nouns, dim)) * np.geomspace(1.0, 0.05, dim)
    classes = np.zeros((n_classes, dim))
    classes[:, :strong] = rng.standard_normal((n_classes, strong))
    classes /= np.linalg.norm(classes, axis=1, keepdims=True)
    naming = rng.choice(n_nouns, (n_classes, named_per_class), replace=False)
    jitter = rng.standard_normal((n_classes, named_per_class, dim)) / np.sqrt(dim)
    nouns[naming] = classes[:, None, :] + 0.3 * jitter
    nouns /= np.linalg.norm(nouns, axis=1, keepdims=True)
    nuisances = np.zeros((n_nuisances, dim))
    nuisances[:, strong:] = rng.standard_normal((n_nuisances, weak_directions))
    nuisances /= np.linalg.norm(nuisances, axis=1, keepdims=True)

    def draw(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(n_classes), per_class)
        rng.shuffle(labels)
        shift = nuisances[rng.integers(n_nuisances, size=len(labels))]
        noise = rng.standard_normal((len(labels), dim)) / np.sqrt(dim)
        x = classes[labels] + nuisance * shift + 0.8 * noise
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels

    x_train, y_train = draw(n_train_per_class)
    x_test, y_test = draw(n_test_per_class)
    template_rng = np.random.default_rng([seed, 1])
    templates = nouns[None] + template_noise * template_rng.standard_normal(
        (n_templates, *nouns.shape)
    ) / np.sqrt(dim)
    templates /= np.linalg.norm(templates, axis=-1, keepdims=True)
    np.savez(
        path,
        image_train=x_train,
        image_test=x_test,
        labels_train=y_train,
        labels_test=y_test,
        noun_features=nouns.astype(np.float32),
        noun_words=np.array([f"noun{i}" for i in range(n_nouns)]),
        noun_template_features=templates.astype(np.float32),
    )
    return path
