"""The adversarial track: PGD and AnyAttack on the test images, cache keys, records, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import unique_name
from dataset_fixtures import write_imagenet
from laicbench.datasets.imagenet_classes import IMAGENET10_WNIDS
from test_features_file import write_features

from laicbench.api.backbone_spec import BackboneSpec
from laicbench.api.errors import UserError
from laicbench.data.attacks import build_attack, resolve_attack
from laicbench.data.attacks.anyattack import cyclic_permutation
from laicbench.data.attacks.base import AttackContext, Normalizer
from laicbench.data.attacks.decoder import AnyAttackDecoder, EfficientAttention, load_decoder
from laicbench.data.backbone import load_backbone
from laicbench.data.cache import FeatureCache

TINY = "tiny-random"
EPS = 8 / 255
TOL = 1e-6
PLUGIN = '''
from laicbench.datasets.imagenet import ImageNet10
from laicbench.api.registry import register_dataset


@register_dataset({name!r})
class TinyImageNet10(ImageNet10):
    """ImageNet-10 on 2 train / 1 val image per class."""

    expected_counts = {{"train": 20, "test": 10}}
'''


@pytest.fixture(scope="module")
def tiny():
    return load_backbone(BackboneSpec.parse(TINY), "cpu")


def context(backbone, clean_test_features=None) -> AttackContext:
    cfg = backbone.preprocess_cfg
    normalize = Normalizer(cfg["mean"], cfg["std"], "cpu")
    return AttackContext(backbone.model, normalize, "cpu", "fp32", clean_test_features)


def embed(backbone, pixels: torch.Tensor) -> torch.Tensor:
    cfg = backbone.preprocess_cfg
    with torch.no_grad():
        return backbone.model.encode_image(Normalizer(cfg["mean"], cfg["std"], "cpu")(pixels))


def pixels(n: int = 4, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def save_decoder(path: Path, embed_dim: int = 128, image_size: int = 32) -> Path:
    torch.manual_seed(0)
    decoder = AnyAttackDecoder(embed_dim, image_size)
    state = {k: v.half() if v.is_floating_point() else v for k, v in decoder.state_dict().items()}
    torch.save({"decoder_state_dict": state, "epoch": 3}, path)  # half precision: 4.6 MB
    return path


# ---------------------------------------------------------------------------------------------
# PGD on the tiny tower


def test_pgd_stays_in_the_budget_moves_the_embedding_and_is_deterministic(tiny):
    spec = resolve_attack("pgd", {"steps": "3", "eps": "8/255"})
    assert dict(spec.params) == {
        "eps": EPS, "steps": 3, "step_size": 2 / 255, "random_start": True, "seed": 0,
    }  # fmt: skip
    attack = build_attack(spec)
    attack.setup(context(tiny))
    x = pixels(2)
    adv = attack.perturb(x, 0)
    assert (adv - x).abs().max() <= EPS + TOL
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() > EPS / 2
    clean, moved = embed(tiny, x), embed(tiny, adv)
    cosine = F.cosine_similarity(clean, moved, dim=-1)
    assert (cosine < 1 - 1e-4).all()

    # PGD lowers the cosine below its random start alone (steps=1 vs 3 from the same start)
    one = build_attack(resolve_attack("pgd", {"steps": 1}))
    one.setup(context(tiny))
    assert F.cosine_similarity(clean, embed(tiny, one.perturb(x, 0))).mean() > cosine.mean()

    # the same seed gives the same images, whatever the batching; another seed others
    assert torch.equal(torch.cat([attack.perturb(x[:1], 0), attack.perturb(x[1:], 1)]), adv)
    other = build_attack(resolve_attack("pgd", {"steps": 3, "seed": 1}))
    other.setup(context(tiny))
    assert not torch.equal(other.perturb(x, 0), adv)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("pgd", {"eps": "0"}, "eps=0.0 must be > 0"),
        ("pgd", {"epsilon": "1"}, "no parameter 'epsilon' (did you mean 'eps'"),
        ("pgd", {"step_size": "16/255"}, "step_size=0.06275 is larger than eps"),
        ("pgd", {"steps": "many"}, "steps='many' must be an integer"),
        ("pdg", {}, "unknown attack (did you mean 'pgd'?)"),
        ("none", {"eps": "1"}, "--attack-param given without --attack"),
        ("anyattack", {}, "needs --attack-param checkpoint=PATH"),
        ("anyattack", {"checkpoint": "/no/such/decoder.pt"}, "does not exist"),
        ("anyattack", {"checkpoint": "2024/12"}, "2024/12 does not exist"),  # not a fraction
    ],
)
def test_bad_attack_settings_are_one_line_errors(name, params, message):
    with pytest.raises(UserError) as error:
        resolve_attack(name, params)
    assert message in str(error.value) and "\n" not in str(error.value)


# ---------------------------------------------------------------------------------------------
# AnyAttack: the decoder and the label-free targets


def test_efficient_attention_matches_the_per_head_formula():
    torch.manual_seed(0)
    for key_channels, heads, value_channels in ((16, 4, 16), (4, 8, 16)):  # (4, 8): no key channel
        attention = EfficientAttention(16, key_channels, heads, value_channels)
        x = torch.randn(2, 16, 3, 5)
        n, hw = 2, 15
        keys = attention.keys(x).reshape(n, key_channels, hw)
        queries = attention.queries(x).reshape(n, key_channels, hw)
        values = attention.values(x).reshape(n, value_channels, hw)
        dk, dv = key_channels // heads, value_channels // heads
        heads_out = []
        for h in range(heads):  # softmax of keys over positions, of queries over channels
            k = keys[:, h * dk : (h + 1) * dk].softmax(dim=2)
            q = queries[:, h * dk : (h + 1) * dk].softmax(dim=1)
            v = values[:, h * dv : (h + 1) * dv]
            heads_out.append((k @ v.transpose(1, 2)).transpose(1, 2) @ q)
        expected = x + attention.reprojection(torch.cat(heads_out, 1).reshape(n, -1, 3, 5))
        assert torch.allclose(attention(x), expected, atol=1e-6)


def test_decoder_checkpoint_loads_and_anyattack_stays_in_the_budget(tiny, tmp_path):
    path = save_decoder(tmp_path / "decoder.pt")
    decoder = load_decoder(path)
    assert (decoder.embed_dim, decoder.init_size) == (128, 2)
    # a DistributedDataParallel prefix and a bare state dict load too
    state = {f"module.{k}": v for k, v in decoder.state_dict().items()}
    torch.save(state, tmp_path / "bare.pt")
    assert load_decoder(tmp_path / "bare.pt").embed_dim == 128

    spec = resolve_attack("anyattack", {"checkpoint": str(path), "surrogate": TINY})
    assert dict(spec.params)["eps"] == EPS and dict(spec.params)["checkpoint"] == str(path)
    attack = build_attack(spec)
    surrogate = np.random.default_rng(0).normal(size=(4, 128)).astype(np.float32)
    attack.setup(context(tiny, lambda name: surrogate if name == TINY else None))
    x = pixels()
    adv = attack.perturb(x, 0)
    assert EPS / 2 < (adv - x).abs().max() <= EPS + TOL
    assert adv.min() >= 0 and adv.max() <= 1
    # sample i's noise is the decoder's output for its target's embedding
    target = cyclic_permutation(4, 0)[2]
    with torch.no_grad():
        noise = decoder(torch.from_numpy(surrogate[target : target + 1])).clamp(-EPS, EPS)
    assert torch.allclose(adv[2:3], (x[2:3] + noise).clamp(0, 1), atol=1e-6)


def test_cyclic_permutation_has_no_fixed_point_and_uses_no_labels():
    for n in (2, 3, 10, 101):
        order = cyclic_permutation(n, seed=5)
        assert sorted(order) == list(range(n)) and (order != np.arange(n)).all()
    assert (cyclic_permutation(50, 1) == cyclic_permutation(50, 1)).all()
    assert (cyclic_permutation(50, 1) != cyclic_permutation(50, 2)).any()


def test_bad_decoder_checkpoints_are_one_line_errors(tiny, tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    other = tmp_path / "other.pt"
    torch.save({"model_state_dict": {"w": torch.zeros(2)}}, other)
    wrong = tmp_path / "wrong.pt"
    state = AnyAttackDecoder(128, 32).state_dict()
    state["final_conv.weight"] = torch.zeros(5, 16, 3, 3)
    torch.save({"decoder_state_dict": state}, wrong)
    for path, message in (
        (garbage, "cannot be read as a torch checkpoint"),
        (other, "holds no AnyAttack decoder weights"),
        (wrong, "does not fit AnyAttack's decoder"),
        (tmp_path / "absent.pt", "does not exist"),
    ):
        with pytest.raises(UserError) as error:
            load_decoder(path)
        assert message in str(error.value) and "\n" not in str(error.value)

    # a decoder for other embeddings than the surrogate's says so before any image is touched
    path = save_decoder(tmp_path / "decoder64.pt", embed_dim=64)
    attack = build_attack(resolve_attack("anyattack", {"checkpoint": str(path), "surrogate": TINY}))
    with pytest.raises(UserError, match="takes 64-d embeddings but surrogate tiny-random gives"):
        attack.setup(context(tiny, lambda name: np.zeros((4, 128), np.float32)))


# ---------------------------------------------------------------------------------------------
# end to end: a small image dataset, clean and attacked runs, the report


def image_setup(tmp_path: Path, write_plugin) -> tuple[str, Path, list]:
    name = unique_name("advnet")
    plugin = write_plugin(PLUGIN.format(name=name))
    root, cache_dir = tmp_path / "data", tmp_path / "cache"
    write_imagenet(root, IMAGENET10_WNIDS, n_train=2, n_val=1)
    flags = [
        "--backbone", TINY, "--cache-dir", cache_dir, "--data-root", root,
        "--include-path", plugin, "--device", "cpu", "--workers", "0", "--batch-size", "4",
        "--seeds", "0,1",
    ]  # fmt: skip
    return name, cache_dir, flags


def records(results: Path) -> dict[str, dict]:
    """{"0": clean seed 0, "0-adv": attacked seed 0 (or -adv-NAME past the first attack)}."""
    out = {}
    for path in sorted(results.rglob("*.json")):
        record = json.loads(path.read_text())
        name = (record.get("attack") or {}).get("name")
        suffix = "" if name is None else "-adv" if name == "pgd" else f"-adv-{name}"
        out[f"{record['seed']}{suffix}"] = record
    return out


def test_pgd_track_end_to_end(cli, tmp_path, write_plugin):
    name, cache_dir, flags = image_setup(tmp_path, write_plugin)
    results = tmp_path / "runs"
    attack = ["--attack", "pgd", "--attack-param", "steps=2", "--attack-param", "eps=8/255"]
    common = ["--methods", "clip-kmeans", "--datasets", name, "--results-dir", results, *flags]

    clean = cli("run", *common)
    assert clean.status == 0, clean.err
    report = cli("report", "--results-dir", results, "--out", tmp_path / "clean-report")
    assert report.status == 0, report.err  # no attacked run: no robustness table
    assert not (tmp_path / "clean-report" / "robustness.md").exists()
    assert "Adversarial robustness" not in (tmp_path / "clean-report" / "index.md").read_text()
    config = tmp_path / "attack.toml"  # a config file takes the same fields as the flags
    config.write_text('attack = "pgd"\n[attack_params]\nsteps = 2\neps = "8/255"\n')
    attacked = cli("run", *common, "--config", config)
    assert attacked.status == 0, attacked.err
    assert "2 new, 0 skipped" in attacked.out  # the clean runs are not the attacked ones
    assert "test images attacked by pgd(eps=0.03137" in attacked.out

    found = records(results)
    assert set(found) == {"0", "1", "0-adv", "1-adv"}
    ref, adv = found["0"], found["0-adv"]
    assert "attack" not in ref and "attack" not in ref["spec"]
    expected = {"name": "pgd", "params": {"eps": EPS, "steps": 2, "step_size": 2 / 255,
                                          "random_start": True, "seed": 0}}  # fmt: skip
    assert adv["attack"] == adv["spec"]["attack"] == expected
    assert "-adv-pgd-" in adv["run_id"] and adv["run_id"] != ref["run_id"]
    assert adv["inputs"]["attack"]["steps"] == 2 and "attack" not in ref["inputs"]

    # the test split's cache entry differs, the train split's is shared
    keys, adv_keys = ref["dataset"]["info"]["cache_keys"], adv["dataset"]["info"]["cache_keys"]
    assert adv_keys["train"] == keys["train"] and adv_keys["test"] != keys["test"]
    cache = FeatureCache(cache_dir)
    entry = cache.entry(adv_keys["test"]).manifest
    assert entry["fields"]["attack"]["name"] == "pgd" and entry["fields"]["split"] == "test"
    clean_features = cache.load(keys["test"])["features"]
    arrays = cache.load(adv_keys["test"])
    assert arrays["linf"].shape == (10,) and (arrays["linf"] <= EPS + TOL).all()
    assert (arrays["linf"] > 0).all()
    cosine = F.cosine_similarity(
        torch.from_numpy(np.array(clean_features)), torch.from_numpy(np.array(arrays["features"]))
    )
    assert (cosine < 1 - 1e-5).all()
    summary = adv["dataset"]["info"]["attack"]
    assert summary["name"] == "pgd" and summary["max_linf"] <= EPS + TOL
    assert summary["mean_cosine_to_clean"] == pytest.approx(float(cosine.mean()), abs=1e-5)

    # resume and status keep clean and attacked apart; the flags name the config's runs
    again = cli("run", *common, *attack)
    assert again.status == 0 and "0 new, 2 skipped" in again.out
    for extra in ([], attack):
        status = cli("status", *common, *extra)
        assert status.status == 0, status.err
        assert "2 done, 0 failed, 0 outdated, 0 damaged, 0 missing" in status.out
        assert ("attacked by pgd(" in status.out) == bool(extra)
    dry = cli("run", *common, *attack, "--dry-run")
    assert f"{name} (attacked: pgd(eps=0.03137" in dry.out

    # the report: a robustness table; the main table keeps the clean runs only
    report = cli("report", "--results-dir", results, "--out", tmp_path / "report")
    assert report.status == 0, report.err
    out = tmp_path / "report"
    table = (out / "robustness.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| clip-kmeans"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    acc = {s: found[s]["metrics"]["acc"] for s in found}
    clean_acc = (acc["0"] + acc["1"]) / 2
    adv_acc = (acc["0-adv"] + acc["1-adv"]) / 2
    assert cells[:4] == ["clip-kmeans", name, cells[2], "2"] and cells[2].startswith("pgd(")
    assert cells[4:7] == [f"{clean_acc:.2f}", f"{adv_acc:.2f}", f"{adv_acc - clean_acc:+.2f}"]
    assert (out / "robustness.tex").is_file()
    assert "Adversarial robustness" in (out / "index.md").read_text()
    assert "Adversarial robustness" in (out / "index.html").read_text()
    (cell,) = pd.read_csv(out / "cells.csv").to_dict("records")  # the main table: clean runs
    assert cell["n"] == 2 and cell["acc_mean"] == pytest.approx(clean_acc)
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["attack"].fillna("").str.startswith("pgd(")) == [False, False, True, True]

    # AnyAttack through the pipeline: the surrogate's clean test features come from the cache
    decoder = save_decoder(tmp_path / "decoder.pt")
    any_flags = ["--attack", "anyattack", "--attack-param", f"checkpoint={decoder}",
                 "--attack-param", f"surrogate={TINY}"]  # fmt: skip
    anyattack = cli("run", *common, *any_flags)
    assert anyattack.status == 0, anyattack.err
    record = records(results)["0-adv-anyattack"]
    summary = record["dataset"]["info"]["attack"]
    assert EPS / 2 < summary["max_linf"] <= EPS + TOL
    assert summary["params"]["checkpoint"] == str(decoder)
    assert record["inputs"]["attack"]["checkpoint_sha256"]
    test_key = record["dataset"]["info"]["cache_keys"]["test"]
    assert test_key not in (keys["test"], adv_keys["test"])


def test_attack_on_inputs_without_images_is_refused_in_one_line(cli, tmp_path):
    features = write_features(tmp_path / "features.npz")
    for dataset in ("demo", features):
        result = cli("run", "--methods", "clip-kmeans", "--datasets", dataset, "--seeds", "0",
                     "--results-dir", tmp_path / "runs", "--attack", "pgd")  # fmt: skip
        assert result.status == 2
        assert len(result.err_lines) == 1, result.err
        assert "has no images to perturb" in result.err
        assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.json"))
    tune = cli("tune", "--methods", "clip-kmeans", "--datasets", "demo", "--attack", "pgd")
    assert tune.status == 2 and len(tune.err_lines) == 1 and "tuning runs on clean" in tune.err


def test_an_attacked_run_spec_round_trips_through_its_json_form():
    """Records and Ray trial configs carry specs and settings as JSON: the attack survives."""
    from dataclasses import replace

    from laicbench.api.settings import DataSettings
    from laicbench.run.spec import RunSpec

    attack = resolve_attack("pgd", {"steps": 2})
    spec = RunSpec("clip-kmeans", "cifar10", TINY, 0, {"n_init": 2}, attack=attack)
    again = RunSpec(**json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.run_id == spec.run_id and again.attack == attack
    clean = RunSpec("clip-kmeans", "cifar10", TINY, 0, {"n_init": 2})
    assert "attack" not in clean.to_dict() and clean.run_id != spec.run_id
    assert spec.run_id.startswith(clean.run_id + "-adv-pgd-")
    other = RunSpec("clip-kmeans", "cifar10", TINY, 0, {"n_init": 2}, attack=resolve_attack("pgd"))
    assert other.run_id != spec.run_id
    settings = replace(DataSettings(), attack=attack)
    assert DataSettings(**json.loads(json.dumps(settings.to_dict()))) == settings
