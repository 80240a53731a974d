"""Backbone specs, model creation (tags, files, random weights), weights identity, preprocessing."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from laicbench.api.errors import UserError
from laicbench.data.backbone import (
    Backbone,
    BackboneSpec,
    create_model,
    load_backbone,
    weights_identity,
)
from laicbench.data.text_encoder import TextEncoder

TINY = "tiny-random"
PROMPTS = ["a photo of a cat.", "a photo of a dog.", "itap of a truck."]


@pytest.fixture
def tiny_model():
    return create_model(BackboneSpec.parse(TINY))


@pytest.fixture
def memo_in_tmp(tmp_path, monkeypatch):
    """Keep the weights checksum memo (in the default feature cache) out of the real home."""
    monkeypatch.setenv("LAICBENCH_CACHE", str(tmp_path / "home-cache" / "features"))
    return tmp_path / "home-cache" / "features"


def text_features(model: torch.nn.Module, arch: str = "laicbench-tiny") -> np.ndarray:
    import open_clip

    return TextEncoder(model, open_clip.get_tokenizer(arch)).encode(PROMPTS)


def same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------------------------
# BackboneSpec.parse


def test_parse_tiny_random():
    spec = BackboneSpec.parse(TINY)
    assert spec == BackboneSpec("laicbench-tiny", None)
    assert spec.is_tiny_random and spec.is_random
    assert str(spec) == TINY
    assert str(BackboneSpec.parse("laicbench-tiny:random")) == TINY  # the same weights


@pytest.mark.parametrize(
    ("text", "arch", "pretrained"),
    [
        ("ViT-B-32:openai", "ViT-B-32", "openai"),
        ("ViT-B-32:random", "ViT-B-32", None),
        ("ViT-B-32:laion2b_s34b_b79k", "ViT-B-32", "laion2b_s34b_b79k"),
        ("ViT-B-32:/models/file.pt", "ViT-B-32", "/models/file.pt"),
    ],
)
def test_parse_arch_and_weights_round_trips(text, arch, pretrained):
    spec = BackboneSpec.parse(text)
    assert (spec.arch, spec.pretrained) == (arch, pretrained)
    assert spec.is_random == (pretrained is None)
    assert not spec.is_tiny_random
    assert str(spec) == text
    assert BackboneSpec.parse(str(spec)) == spec


@pytest.mark.parametrize("text", ["ViT-B-32", ":x", "ViT-B-32:", "", ":"])
def test_parse_rejects_malformed_specs(text):
    with pytest.raises(UserError, match="expected ARCH:PRETRAINED"):
        BackboneSpec.parse(text)


# ---------------------------------------------------------------------------------------------
# create_model errors


def test_unknown_architecture_suggests_the_closest():
    with pytest.raises(UserError, match="unknown open_clip architecture 'ViT-B-322'") as info:
        create_model(BackboneSpec.parse("ViT-B-322:openai"))
    assert "did you mean" in str(info.value) and "'ViT-B-32'" in str(info.value)


def test_missing_checkpoint_file_is_named():
    with pytest.raises(UserError) as info:
        create_model(BackboneSpec.parse("ViT-B-32:/no/such/file.pt"))
    message = str(info.value)
    assert "/no/such/file.pt" in message
    assert "does not exist" in message
    assert "openai" in message  # the tags that would work


def test_unknown_tag_suggests_the_closest():
    with pytest.raises(UserError, match="neither a file nor an open_clip pretrained tag") as info:
        create_model(BackboneSpec.parse("ViT-B-32:opnai"))
    assert "did you mean 'openai'" in str(info.value)


def test_unreadable_checkpoint_file_is_a_user_error(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint" * 8)
    with pytest.raises(UserError, match="weights could not be loaded"):
        create_model(BackboneSpec.parse(f"laicbench-tiny:{path}"))


# ---------------------------------------------------------------------------------------------
# checkpoint files and random weights


def test_local_checkpoint_of_the_tiny_architecture(tmp_path, tiny_model, memo_in_tmp):
    path = tmp_path / "tiny.pt"
    torch.save(tiny_model.state_dict(), path)
    spec = BackboneSpec.parse(f"laicbench-tiny:{path}")
    assert not spec.is_random
    model = create_model(spec)
    assert same_parameters(model, tiny_model)
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    np.testing.assert_array_equal(text_features(model), text_features(tiny_model))

    identity = weights_identity(spec)
    assert identity == {
        "file": str(path.resolve()),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    assert (memo_in_tmp / "weights_sha256.json").is_file()

    # the loaded weights are the file's: other contents, other text features
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    state["text_projection"] *= 2
    other = tmp_path / "other.pt"
    torch.save(state, other)
    doubled = create_model(BackboneSpec.parse(f"laicbench-tiny:{other}"))
    np.testing.assert_allclose(text_features(doubled), 2 * text_features(tiny_model), rtol=1e-5)
    assert (
        weights_identity(BackboneSpec.parse(f"laicbench-tiny:{other}"))["sha256"]
        != (identity["sha256"])
    )


def test_weights_identity_of_random_and_tagged_weights(tiny_model):
    # (tiny_model: built first; a fresh process is test_pipeline's fresh-process key test)
    tiny = weights_identity(BackboneSpec.parse(TINY))
    assert tiny["random_seed"] == 0
    assert tiny["config"]["vision_cfg"]["image_size"] == 32
    assert tiny["config"]["embed_dim"] == 128
    tagged = weights_identity(BackboneSpec.parse("ViT-B-32:openai"))
    assert tagged["tag"] == "openai"
    assert tagged["pretrained_cfg"]  # open_clip's description of the tag (no download)
    assert weights_identity(BackboneSpec.parse("ViT-B-32:random"))["config"] != tiny["config"]


def test_tiny_random_is_deterministic_and_keeps_the_global_rng(tiny_model):
    torch.manual_seed(1234)
    expected = torch.rand(5)
    torch.manual_seed(1234)
    again = create_model(BackboneSpec.parse(TINY))
    after = torch.rand(5)
    assert torch.equal(after, expected)
    assert same_parameters(again, tiny_model)
    assert not again.training
    assert not any(p.requires_grad for p in again.parameters())


def test_load_backbone_is_shared_and_lazy():
    spec = BackboneSpec.parse(TINY)
    backbone = load_backbone(spec, "cpu")
    assert load_backbone(spec, "cpu") is backbone
    assert backbone.model is backbone.model
    assert backbone.text_encoder.embed_dim == 128


# ---------------------------------------------------------------------------------------------
# preprocessing


def test_image_transform_resizes_by_the_ratio_then_crops():
    backbone = Backbone(BackboneSpec.parse(TINY), "cpu")
    cfg = backbone.preprocess_cfg
    assert cfg["image_size"] == 32
    transform = backbone.image_transform(256 / 224)
    resize, crop = transform.transforms[:2]
    assert round(32 * 256 / 224) == 37
    assert resize.size == 37
    assert resize.interpolation == T.InterpolationMode.BICUBIC
    assert list(crop.size) == [32, 32]

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, size=(50, 70, 3), dtype=np.uint8))  # 70x50
    out = transform(image)
    assert out.shape == (3, 32, 32)
    manual = T.Compose(
        [
            T.Resize(37, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(32),
            T.ToTensor(),
            T.Normalize(cfg["mean"], cfg["std"]),
        ]
    )
    assert torch.allclose(out, manual(image), atol=1e-6)
    # ratio 1 resizes straight to the input size: a different crop of the image
    plain = backbone.image_transform(1.0)
    assert plain.transforms[0].size == 32
    assert not torch.allclose(plain(image), out, atol=1e-3)


def test_image_transform_converts_to_rgb():
    backbone = Backbone(BackboneSpec.parse(TINY), "cpu")
    gray = Image.new("L", (40, 40), 128)
    out = backbone.image_transform(1.0)(gray)
    assert out.shape == (3, 32, 32)
    rgb = backbone.image_transform(1.0)(gray.convert("RGB"))
    assert torch.equal(out, rgb)
