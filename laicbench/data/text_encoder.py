"""A handle on the frozen text tower of an open_clip model.

Methods that learn prompts (continuous context vectors) or embed words receive a TextEncoder, never
the model itself. Prompts are run through the transformer truncated to the longest real token length
of the batch: with a causal mask, the tokens after the end-of-text token cannot influence it, so the
result equals the full 77-token computation at a fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

# CLIP's 7 "simple ImageNet" templates, as TAC uses them for noun embeddings.
NOUN_TEMPLATES: tuple[str, ...] = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)


class TextEncoder:
    """The frozen text tower of an open_clip CLIP model (argmax/EOT pooling, causal mask)."""

    def __init__(self, model: torch.nn.Module, tokenizer, device: str = "cpu"):
        tower = getattr(model, "text", model)
        self._tower = tower
        self.tokenizer = tokenizer
        self.device = device
        self.token_embedding: torch.nn.Embedding = tower.token_embedding
        self.context_length: int = tower.positional_embedding.shape[0]
        self.width: int = self.token_embedding.embedding_dim
        proj = tower.text_projection
        self.embed_dim: int = proj.shape[1] if isinstance(proj, torch.Tensor) else proj.out_features
        if getattr(tower, "text_pool_type", "argmax") != "argmax":
            raise NotImplementedError("only argmax (EOT) pooled text towers are supported")

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids (n, context_length) of `texts`, truncated to the context length."""
        return self.tokenizer(list(texts)).to(self.device)

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Unnormalised features (n, embed_dim) of token ids, computed on the truncated length."""
        eot = tokens.argmax(dim=-1)
        length = int(eot.max().item()) + 1
        return self.encode_embeddings(self.token_embedding(tokens[:, :length]), eot)

    def encode_embeddings(self, embeddings: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        """Unnormalised text features of token embeddings (n, L, width) pooled at `eot_index` (n,).

        Gradients flow to `embeddings`, which is how prompt learning trains context vectors.
        """
        tower = self._tower
        length = embeddings.shape[1]
        cast = tower.transformer.get_cast_dtype()
        x = embeddings.to(cast) + tower.positional_embedding[:length].to(cast)
        mask = tower.attn_mask[:length, :length] if tower.attn_mask is not None else None
        x = tower.transformer(x, attn_mask=mask)
        x = tower.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot_index]
        proj = tower.text_projection
        return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj

    @torch.no_grad()
    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 1024,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Unnormalised float32 features (n, embed_dim) of `texts`; each distinct string once.

        Prompts are sorted by token length, so that each batch is truncated as far as possible;
        `on_batch(k)` is called after each batch of k distinct strings.
        """
        unique, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
        tokens = self.tokenize(unique.tolist())
        order = torch.argsort(tokens.argmax(dim=-1).cpu(), stable=True)
        out = np.empty((len(unique), self.embed_dim), dtype=np.float32)
        for start in range(0, len(unique), batch_size):
            idx = order[start : start + batch_size]
            features = self.encode_tokens(tokens[idx.to(tokens.device)])
            out[idx.numpy()] = features.float().cpu().numpy()
            if on_batch is not None:
                on_batch(len(idx))
        return out[inverse.reshape(-1)]

    def encode_words(
        self,
        words: Sequence[str],
        templates: Sequence[str] = NOUN_TEMPLATES,
        batch_size: int = 1024,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """L2-normalised features of `words`: the mean of the unnormalised template embeddings.

        This is TAC's noun ensemble (mean of raw embeddings, then normalised).
        """
        total = np.zeros((len(words), self.embed_dim), dtype=np.float64)
        for template in templates:
            prompts = [template.format(w) for w in words]
            total += self.encode(prompts, batch_size=batch_size, on_batch=on_batch)
        mean = torch.from_numpy(total / len(templates)).float()
        return F.normalize(mean, dim=-1).numpy()

    def encode_templates(
        self,
        words: Sequence[str],
        templates: Sequence[str] = NOUN_TEMPLATES,
        batch_size: int = 1024,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """L2-normalised features of `words` in each template, float32 (T, len(words), d): the
        per-prompt embeddings that ``encode_words`` averages."""
        out = np.empty((len(templates), len(words), self.embed_dim), dtype=np.float32)
        for t, template in enumerate(templates):
            prompts = [template.format(w) for w in words]
            features = self.encode(prompts, batch_size=batch_size, on_batch=on_batch)
            out[t] = F.normalize(torch.from_numpy(features), dim=-1).numpy()
        return out


def ensemble_templates(name: str) -> tuple[str, ...]:
    """A prompt ensemble for zero-shot classification: "openai" (CLIP's 80 ImageNet templates,
    from open_clip) or "simple" (TAC's 7)."""
    if name == "simple":
        return NOUN_TEMPLATES
    if name == "openai":
        from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

        return tuple(template("{}") for template in OPENAI_IMAGENET_TEMPLATES)
    raise ValueError(f"templates must be 'openai' or 'simple', not {name!r}")
