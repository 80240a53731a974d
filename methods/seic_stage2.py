"""SEIC's stage 2: LoRA self-training of the image tower on stage 1's confident pseudo-labels.

A copy of the backbone's image tower gets LoRA adapters (laicbench.cluster.lora) on its linear
layers; the adapters and stage 1's image branch are trained with cross-entropy on the pseudo-
labels of the most confident share of each cluster's train images, read through the extraction
transform; the adapted tower then re-encodes the test images, which the branch labels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def confident_rows(confidence: np.ndarray, pseudo: np.ndarray, fraction: float) -> np.ndarray:
    """Indices (increasing) of the ceil(`fraction` x size) rows of highest `confidence` within
    each cluster of `pseudo` (ties: the lower index first)."""
    keep = []
    for cluster in np.unique(pseudo):
        members = np.flatnonzero(pseudo == cluster)
        order = members[np.argsort(-confidence[members], kind="stable")]
        keep.append(order[: math.ceil(fraction * len(members))])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def pixel_batch(tower, images, rows, device: str):
    """The normalised input tensor (len(rows), 3, H, W) of `images[rows]` on `device`."""
    import torch

    return torch.stack([tower.transform(images[int(i)]) for i in rows]).to(device)


def self_train_image_tower(tower, head, x_train, method, seed: int, device: str):
    """Stage 2 of SEIC. `tower`: the run's ImageTower; `head`: stage 1's image branch (a module
    mapping unit features to (z, p)), trained further here; `x_train`: the unit train features
    stage 1 saw (rows in the order of ``tower.train_images``). Returns (test labels, a record
    of what ran)."""
    import torch
    import torch.nn.functional as F

    from laicbench.cluster.lora import add_lora
    from laicbench.cluster.training import train_epochs
    from laicbench.data.extract import progress_bar

    if len(tower.train_images) != len(x_train):
        raise ValueError(
            f"the image tower's train split has {len(tower.train_images)} images, the features "
            f"{len(x_train)}"
        )
    with torch.no_grad():
        confidence, pseudo = head(x_train)[1].max(dim=1)
    chosen = confident_rows(confidence.cpu().numpy(), pseudo.cpu().numpy(), method.stage2_fraction)
    targets = pseudo[torch.as_tensor(chosen, device=device)]
    torch.manual_seed(seed)
    visual = tower.new_tower().to(device)
    adapters = add_lora(visual, method.stage2_rank, method.stage2_alpha)
    optimiser = torch.optim.AdamW([*adapters, *head.parameters()], lr=method.stage2_lr)
    batch = min(method.stage2_batch_size, len(chosen))
    history: list[dict[str, float]] = []
    if batch > 0:
        with progress_bar(transient=True) as progress:
            task = progress.add_task(
                "seic stage 2", total=method.stage2_epochs * (len(chosen) // batch), rate=""
            )

            def step(index: torch.Tensor, _epoch: int) -> dict[str, torch.Tensor]:
                pixels = pixel_batch(tower, tower.train_images, chosen[index.cpu().numpy()], device)
                probabilities = head(F.normalize(visual(pixels).float(), dim=1))[1]
                loss = F.nll_loss(probabilities.clamp_min(1e-8).log(), targets[index])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                progress.advance(task)
                return {"loss": loss.detach()}

            visual.train()
            head.train()
            generator = torch.Generator().manual_seed(seed)
            history = train_epochs(
                step, len(chosen), batch, method.stage2_epochs, generator, device
            )
    visual.eval()
    head.eval()
    labels = predict_images(tower, visual, head, device)
    record: dict[str, Any] = {
        "epochs": method.stage2_epochs,
        "lora_rank": method.stage2_rank,
        "lora_alpha": method.stage2_alpha,
        "lr": method.stage2_lr,
        "batch_size": batch,
        "n_lora_parameters": int(sum(p.numel() for p in adapters)),
        "n_pseudo_labels": int(len(chosen)),
        "n_train": int(len(x_train)),
        "precision": "fp32",
        "loss_history": history,
    }
    return labels, record


def predict_images(tower, visual, head, device: str) -> np.ndarray:
    """Each test image's cluster under the adapted tower and the branch, in batches."""
    import torch
    import torch.nn.functional as F

    from laicbench.data.extract import progress_bar

    images = tower.test_images
    labels = []
    with torch.no_grad(), progress_bar(transient=True) as progress:
        task = progress.add_task("seic stage 2: test images", total=len(images), rate="")
        for start in range(0, len(images), tower.batch_size):
            rows = np.arange(start, min(start + tower.batch_size, len(images)))
            features = F.normalize(visual(pixel_batch(tower, images, rows, device)).float(), dim=1)
            labels.append(head(features)[1].argmax(dim=1).cpu())
            progress.advance(task, len(rows))
    if not labels:
        return np.zeros(0, dtype=np.int64)
    return torch.cat(labels).numpy()
