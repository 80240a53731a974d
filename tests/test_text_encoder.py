"""The frozen text tower handle (laicbench.data.text_encoder.TextEncoder), tiny-random model."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch

from laicbench.api.backbone_spec import BackboneSpec
from laicbench.data.backbone import create_model
from laicbench.data.text_encoder import NOUN_TEMPLATES, TextEncoder

TEXTS = [
    "a photo of a cat.",
    "dog",
    "a photo of a very small dog sitting on a big red chair in the garden.",
    "word " * 120,  # longer than the 77-token context: truncated, end-of-text at the last slot
    "",
]


@pytest.fixture(scope="module")
def model():
    return create_model(BackboneSpec.parse("tiny-random"))


@pytest.fixture(scope="module")
def tokenizer():
    create_model(BackboneSpec.parse("tiny-random"))  # registers the laicbench-tiny config
    return open_clip.get_tokenizer("laicbench-tiny")


@pytest.fixture(scope="module")
def encoder(model, tokenizer):
    return TextEncoder(model, tokenizer)


def test_tiny_random_model_is_seeded_frozen_and_leaves_the_rng_alone(model):
    state = torch.random.get_rng_state()
    other = create_model(BackboneSpec.parse("tiny-random"))
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, a), (_, b) in zip(
        model.state_dict().items(), other.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert not other.training
    assert not any(p.requires_grad for p in other.parameters())


def test_encoder_dimensions(encoder):
    assert encoder.context_length == 77
    assert encoder.width == 64
    assert encoder.embed_dim == 128


def test_truncated_encoding_equals_full_context(model, tokenizer, encoder):
    tokens = tokenizer(TEXTS)
    assert tokens.shape == (len(TEXTS), 77)
    assert int(tokens.argmax(dim=-1).max()) == 76  # the long text fills the context
    with torch.no_grad():
        full = model.encode_text(tokens)
        ours = encoder.encode_tokens(tokens)
    assert ours.shape == (len(TEXTS), 128)
    torch.testing.assert_close(ours, full, atol=1e-5, rtol=0)


def test_truncation_to_a_short_batch(model, tokenizer, encoder):
    # without the long text the batch is run on only a few positions: still the same result
    tokens = tokenizer(TEXTS[:2])
    assert int(tokens.argmax(dim=-1).max()) < 10
    with torch.no_grad():
        torch.testing.assert_close(
            encoder.encode_tokens(tokens), model.encode_text(tokens), atol=1e-5, rtol=0
        )


def test_encode_matches_model_and_keeps_input_order(model, tokenizer, encoder):
    texts = ["zebra", "a cat", "a dog", "a cat", "zebra", "apple"]
    out = encoder.encode(texts)
    assert out.shape == (len(texts), 128)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[1], out[3])
    np.testing.assert_array_equal(out[0], out[4])
    with torch.no_grad():
        expected = model.encode_text(tokenizer(texts)).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert not np.allclose(out[0], out[1])


def test_encode_batch_size_does_not_matter(encoder):
    texts = [f"thing number {i}" for i in range(7)] + ["thing number 3"]
    np.testing.assert_allclose(
        encoder.encode(texts, batch_size=3), encoder.encode(texts), atol=1e-5
    )


def test_encode_words_is_the_normalised_template_mean(encoder):
    words = ["cat", "tree", "cat"]
    out = encoder.encode_words(words)
    raw = np.mean([encoder.encode([t.format(w) for w in words]) for t in NOUN_TEMPLATES], axis=0)
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(out[0], out[2])


def test_gradients_flow_to_input_embeddings(encoder, tokenizer):
    tokens = tokenizer(["a photo of a cat.", "dog"])
    eot = tokens.argmax(dim=-1)
    length = int(eot.max()) + 1
    embeddings = encoder.token_embedding(tokens[:, :length]).detach().clone().requires_grad_(True)
    out = encoder.encode_embeddings(embeddings, eot)
    assert out.shape == (2, 128)
    assert out.requires_grad
    out.square().sum().backward()
    grad = embeddings.grad
    assert grad is not None
    assert torch.isfinite(grad).all()
    for row, end in enumerate(eot.tolist()):
        assert grad[row, : end + 1].abs().sum() > 0
        # causal mask: positions after the end-of-text token cannot influence its feature
        assert torch.equal(grad[row, end + 1 :], torch.zeros_like(grad[row, end + 1 :]))
    # the tower itself stays frozen
    assert encoder.token_embedding.weight.grad is None
