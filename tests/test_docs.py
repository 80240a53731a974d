"""The documentation: every page is in the site's navigation, and the plugin page's example
(a method with documented hyperparameters and its figure, in one file) works as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import squash, unique_name

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_page_is_in_the_navigation():
    nav = (DOCS.parent / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w-]+\.md)\s*$", nav, flags=re.MULTILINE))
    assert listed == {p.name for p in DOCS.glob("*.md")}


@pytest.mark.slow  # a run and a whole report with its figures
def test_the_plugin_example_runs_lists_its_parameters_and_draws_its_figure(cli, tmp_path):
    source = re.search(r"```python\n(# my_plugins/.*?)```", (DOCS / "plugins.md").read_text(), re.S)
    assert source, "the plugin page lost its example"
    name = unique_name("nnk")  # a name of its own, so the registry takes it in this session
    code = source.group(1).replace('"nearest-noun-kmeans"', repr(name))
    code = code.replace('("nnk",)', "()").replace("nearest_noun_consistency", f"{name}_figure")
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "nearest_noun.py").write_text(code)
    results = tmp_path / "runs"
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16))
    labels = {split: np.repeat(np.arange(3), n) for split, n in (("train", 40), ("test", 20))}
    np.savez(
        tmp_path / "feats.npz",
        **{
            f"image_{s}": centers[y] + 0.3 * rng.normal(size=(len(y), 16))
            for s, y in labels.items()
        },
        **{f"labels_{s}": y for s, y in labels.items()},
        noun_features=np.vstack([centers, rng.normal(size=(12, 16))]),
        noun_words=np.array([f"noun{i}" for i in range(15)]),
    )

    listing = cli("list", "methods", "--include-path", folder, "--params")
    assert listing.status == 0, listing.err
    assert squash("Weight of the nearest noun's feature beside the image's.") in squash(listing.out)
    run = cli("run", "--include-path", folder, "--methods", f"{name},clip-kmeans",
              "--datasets", tmp_path / "feats.npz", "--seeds", "0", "--executor", "local",
              "--results-dir", results)  # fmt: skip
    assert run.status == 0, run.err
    report = cli("report", "--include-path", folder, "--results-dir", results)
    assert report.status == 0, report.err
    assert (tmp_path / "report" / "figures" / f"{name}_figure.png").is_file()
