"""A second simulated benchmark, independent of the demo's model: many nouns, few of which name
the classes, and nuisance directions that language barely describes.

It exists so that defaults are not chosen on one generator alone (the demo's nouns span only
the text subspace, which hides how a method treats directions the nouns cover weakly). With
the tiny-random text tower (as the demo, so that prompt learning runs), all randomness from
``NuisanceConfig.seed``:

1. Nouns: M pseudo-words embedded with TAC's 7 templates. The centred noun cloud has a spectrum
   of principal directions; its ``weak_directions`` weakest (still inside the nouns' span) host
   the nuisance.
2. Classes: K nouns drawn at random name the classes (concept u_c = the centred class noun);
   the ``named_per_class`` nouns nearest to u_c relate to class c. No sibling pairs.
3. Images: x_i = normalise(gap * g + normalise(u_y + facet * f_i) + nuisance * v_{m(i)}
   + noise * e_i / sqrt(D)), with f_i one of the class's related nouns (centred), v_1..v_S unit
   nuisance directions in the span of the weak noun directions (shared by all classes, much
   stronger than the class signal's spread), g the modality gap outside the nouns' span, e_i
   standard Gaussian. Image-only k-means splits by nuisance; a relational representation that
   whitens the noun directions amplifies the nuisance too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from laicbench.datasets.demo import (
    ImageModel,
    SimulatedDataset,
    complement_basis,
    normalise_rows,
    pseudo_words,
    tiny_text_encoder_cpu,
    unit_in,
)

from laicbench.api.features import DatasetFeatures
from laicbench.api.registry import register_dataset


@dataclass(frozen=True)
class NuisanceConfig:
    """Parameters of the nuisance benchmark (see the module docstring for the model)."""

    generator: ClassVar[str] = "demo-nuisance"
    version: ClassVar[str] = "1"

    n_classes: int = 10
    n_train_per_class: int = 3000
    n_test_per_class: int = 500
    n_nouns: int = 5000
    named_per_class: int = 3
    facet: float = 0.5
    n_nuisances: int = 4
    nuisance: float = 1.5
    weak_directions: int = 24
    gap: float = 1.0
    noise: float = 1.0
    seed: int = 0

    def draw(self) -> DatasetFeatures:
        """Draw this benchmark (use ``laicbench.datasets.demo.simulate``, which caches it)."""
        rng = np.random.default_rng(self.seed)
        encoder = tiny_text_encoder_cpu()
        words = pseudo_words(self.n_nouns, rng)
        nouns = encoder.encode_words(words).astype(np.float64)
        dim = nouns.shape[1]
        centred_cloud = nouns - nouns.mean(axis=0)
        _, s, vt = np.linalg.svd(centred_cloud, full_matrices=False)
        rank = int((s > s[0] * 1e-5).sum())
        nuisances = unit_in(vt[rank - self.weak_directions : rank], self.n_nuisances, rng)
        centred = normalise_rows(centred_cloud)
        class_idx = rng.choice(self.n_nouns, self.n_classes, replace=False)
        concepts = centred[class_idx]
        related = np.argsort(-(concepts @ centred.T), axis=1)[:, : self.named_per_class]
        gap = unit_in(complement_basis(nouns, dim, rng), 1, rng)[0]

        model = ImageModel(
            concepts, related, centred, nuisances, gap, self.facet, self.nuisance, self.gap,
            self.noise,
        )  # fmt: skip
        return model.features(self, rng, [words[i] for i in class_idx], words, nouns, encoder)


@register_dataset("demo-nuisance")
class DemoNuisance(SimulatedDataset):
    """Simulated features, 2nd generator: 10 classes, 30,000 / 5,000, 5,000 nouns, nuisance."""

    n_classes = 10
    config = NuisanceConfig()
