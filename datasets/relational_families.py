"""Feature generators for the relational methods (ours, ours-notrain) that vary what makes the
ridge penalty matter: nuisance strength, how many class nouns there are and how loose they are,
nouns that name the nuisance, many Zipf-imbalanced classes, fewer random nouns, no class nouns.

Not a registered dataset: in-memory ``DatasetFeatures`` for tests and for
``scripts/relational_families.py``, which runs the methods on every family. The model, with all
randomness from ``seed``, in ``dim`` dimensions:

- Classes: K random unit directions u_k. Styles: S random unit directions v_s (nuisance shared by
  all classes: every image draws one style whatever its class).
- Images: x_i = normalise(u_{y_i} + nuisance * v_{s_i} + noise * e_i / sqrt(d)), e_i standard
  Gaussian; labels uniform or, with ``zipf`` > 0, with class probabilities proportional to
  1 / rank^zipf (at least one image per class and split).
- Nouns: ``n_random_nouns`` random unit vectors; ``named_per_class`` nouns per class at
  normalise(u_k + looseness * g / sqrt(d)) (g standard Gaussian); ``named_per_style`` nouns per
  style built the same way around v_s. Rows are shuffled, words are ``noun{i}``.

Image-only k-means splits by style once ``nuisance`` is near 1; the class nouns are what lets a
noun-based method recover the classes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from laicbench.api.features import DatasetFeatures


@dataclass(frozen=True)
class RelationalFamily:
    """One generator setting (see the module docstring for the model)."""

    n_classes: int = 10
    n_train: int = 4000
    n_test: int = 2000
    dim: int = 512
    n_styles: int = 4
    nuisance: float = 1.3
    noise: float = 1.0
    zipf: float = 0.0
    n_random_nouns: int = 5000
    named_per_class: int = 3
    looseness: float = 1.0
    named_per_style: int = 0
    seed: int = 0

    @property
    def has_class_nouns(self) -> bool:
        """Whether some nouns name a class (the targets differ with and without them)."""
        return self.named_per_class > 0

    def draw(self) -> DatasetFeatures:
        """The features, labels and noun bank of this setting."""
        rng = np.random.default_rng(self.seed)
        classes = _unit(rng.standard_normal((self.n_classes, self.dim)))
        styles = _unit(rng.standard_normal((self.n_styles, self.dim)))
        weights = 1.0 / np.arange(1, self.n_classes + 1) ** self.zipf
        weights /= weights.sum()

        def images(n: int) -> tuple[np.ndarray, np.ndarray]:
            drawn = rng.choice(self.n_classes, n - self.n_classes, p=weights)
            labels = np.concatenate([np.arange(self.n_classes), drawn])
            rng.shuffle(labels)
            style = styles[rng.integers(self.n_styles, size=n)]
            noise = rng.standard_normal((n, self.dim)) / np.sqrt(self.dim)
            x = classes[labels] + self.nuisance * style + self.noise * noise
            return _unit(x).astype(np.float32), labels

        x_train, y_train = images(self.n_train)
        x_test, y_test = images(self.n_test)
        nouns = np.concatenate(
            [
                rng.standard_normal((self.n_random_nouns, self.dim)),
                self._around(classes, self.named_per_class, rng),
                self._around(styles, self.named_per_style, rng),
            ]
        )
        nouns = _unit(nouns[rng.permutation(len(nouns))]).astype(np.float32)
        return DatasetFeatures(
            image_train=x_train,
            image_test=x_test,
            labels_train=y_train,
            labels_test=y_test,
            class_names=[f"class{k}" for k in range(self.n_classes)],
            noun_words=[f"noun{i}" for i in range(len(nouns))],
            noun_features_loader=lambda: nouns,
            info={"generator": "relational_families", **asdict(self)},
        )

    def _around(self, centers: np.ndarray, per_center: int, rng) -> np.ndarray:
        """`per_center` nouns near each row of `centers` (looseness x Gaussian / sqrt(d))."""
        jitter = rng.standard_normal((len(centers), per_center, self.dim)) / np.sqrt(self.dim)
        return (centers[:, None, :] + self.looseness * jitter).reshape(-1, self.dim)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


BASE = RelationalFamily()
# name -> setting: each varies one thing of BASE (nuisance 1.3, 3 class nouns at looseness 1)
FAMILIES: dict[str, RelationalFamily] = {
    "nuisance-0.97": replace(BASE, nuisance=0.97),
    "nuisance-1.3": BASE,
    "nuisance-1.6": replace(BASE, nuisance=1.6),
    "loose-2-nouns": replace(BASE, named_per_class=2, looseness=3.0),
    "one-noun": replace(BASE, named_per_class=1),
    "style-nouns": replace(BASE, named_per_style=3),
    "zipf-50": replace(BASE, n_classes=50, zipf=1.0, nuisance=0.97),
    "few-random-nouns": replace(BASE, n_random_nouns=500),
    "no-class-nouns": replace(BASE, named_per_class=0, nuisance=0.97),
    "no-class-nouns-1.3": replace(BASE, named_per_class=0),
    "no-class-style-nouns": replace(BASE, named_per_class=0, named_per_style=3, nuisance=0.97),
}


def family(name: str, **changes) -> RelationalFamily:
    """The named setting of ``FAMILIES`` with `changes` (e.g. seed, sizes) applied."""
    return replace(FAMILIES[name], **changes)
