"""CLIP zero-shot classification with the ground-truth class names: an oracle reference.

It reads the class names, so it is not a clustering method: reports keep it apart and never rank
it with the methods that see no labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from laicbench.api import FeatureBundle, Method, Need, Options, Resources, register_method


@register_method("zeroshot", aliases=("zero-shot", "clip-zeroshot"))
@dataclass
class ZeroShot(Method):
    """CLIP zero-shot with class names and the 80 OpenAI templates (oracle: uses label names)."""

    templates: str = "openai"
    """Prompt ensemble of the class texts: 'openai' (CLIP's 80 ImageNet templates) or 'simple'
    (TAC's 7); each class is the mean of its normalised template features."""

    version = "1"
    oracle = True
    needs = frozenset({Need.CLASS_NAMES, Need.TEXT_ENCODER})
    resources = Resources(cpus=1, gpus=0.25)
    param_constraints = {"templates": Options(("openai", "simple"))}

    def fit_predict(self, features: FeatureBundle, n_clusters: int, seed: int) -> np.ndarray:
        """Each test image's most similar class text (mean of normalised template features)."""
        import torch
        import torch.nn.functional as F

        from laicbench.cluster.tensors import unit_rows
        from laicbench.data.text_encoder import ensemble_templates

        templates = ensemble_templates(self.templates)
        encoder = features.text_encoder
        names = [name.replace("_", " ") for name in features.class_names]
        classes = []
        for name in names:
            raw = torch.as_tensor(encoder.encode([t.format(name) for t in templates]))
            classes.append(F.normalize(F.normalize(raw, dim=1).mean(dim=0), dim=0))
        text = torch.stack(classes).to(features.device)
        x = unit_rows(features.image_test, features.device)
        return (x @ text.T).argmax(dim=1).cpu().numpy()
