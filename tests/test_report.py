"""`laicbench report`: golden main tables, missing cells and averages, left-out records, figures
from a real demo sweep, bad results dirs, atomic output, and that no method is ever run."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.image import imread

from laicbench.api import registry
from laicbench.cli.main import main
from laicbench.report.build import build_report, default_out
from laicbench.report.tables import RUNS_COLUMNS, build_main_table
from laicbench.run.spec import RunSpec

GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("LAICBENCH_UPDATE_GOLDEN") == "1"
VIT = "ViT-B-32:openai"
SEED_OFFSETS = {0: -0.3, 1: 0.0, 2: 0.3}  # std over seeds 0-2 is 0.30 for every metric


def default_params(method: str) -> dict:
    return registry.methods.get(method)().get_params()


def write_record(
    root: Path,
    method: str,
    dataset: str,
    seed: int,
    nmi_acc_ari: tuple[float, float, float] | None,
    *,
    backbone: str = VIT,
    params: dict | None = None,
    status: str = "ok",
    version: str | None = None,
) -> Path:
    """A hand-made record with the fields the report reads, at its run-id path below `root`."""
    registered = method in registry.methods.names()
    params = dict(default_params(method) if params is None and registered else params or {})
    spec = RunSpec(method, dataset, backbone, seed, params)
    cls = registry.methods.get(method) if registered else None
    metrics = None
    if nmi_acc_ari is not None:
        nmi, acc, ari = nmi_acc_ari
        metrics = {"acc": acc, "nmi": nmi, "ari": ari}
    record = {
        "schema_version": 1,
        "run_id": spec.run_id,
        "status": status,
        "spec": spec.to_dict(),
        "method": {
            "name": method,
            "version": version or (cls.version if cls else "1"),
            "params": params,
            "oracle": bool(cls.oracle) if cls else False,
            "needs": [],
        },
        "dataset": {"name": dataset, "n_classes": 10},
        "backbone": backbone,
        "seed": seed,
        "metrics": metrics,
        "scoring": {"version": 2},  # current scoring; internal metrics left empty
        "internal_metrics": {},
        "artefacts": {},
        "diagnostics": {},
        "wall_time_s": 1.5,
        "peak_rss_mb": 512.0,
        "environment": {
            "git_commit": "0123abc",
            "libraries": {"numpy": "2.0.0", "torch": "2.5.0"},
        },
    }
    if status != "ok":
        record["error"] = {"type": "RuntimeError", "message": "boom", "traceback": ""}
    path = root / (spec.run_id + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def write_cell(root: Path, method: str, dataset: str, base, seeds=(0, 1, 2), **kwargs) -> None:
    """Records of `method` on `dataset` for `seeds`: base (NMI, ACC, ARI) + a per-seed offset."""
    for seed in seeds:
        offset = SEED_OFFSETS[seed] if len(seeds) > 1 else 0.0
        write_record(root, method, dataset, seed, tuple(v + offset for v in base), **kwargs)


def golden_results(root: Path) -> Path:
    """The fixed results dir of the golden test: 4 methods x (cifar10, stl10, demo-50)."""
    cells = {
        "clip-kmeans": [(70.1, 74.0, 61.2), (91.9, 94.5, 89.0), (60.87, 31.36, 24.29)],
        "tac": [(83.0, 91.5, 83.4), (95.2, 98.0, 95.8), (83.33, 66.03, 58.13)],
        "ours": [(85.6, 92.4, 85.1), (96.1, 98.0, 96.3), (88.71, 75.72, 69.82)],
    }
    for method, values in cells.items():
        for dataset, base in zip(("cifar10", "stl10", "demo-50"), values, strict=True):
            backbone = "tiny-random" if dataset == "demo-50" else VIT
            params = None
            if method == "tac" and dataset == "demo-50":  # no default-parameter runs: marked †
                params = {**default_params("tac"), "epochs": 5}
            write_cell(root, method, dataset, base, backbone=backbone, params=params)
    # a sweep point of ours that must not reach the main table
    write_cell(root, "ours", "cifar10", (99.9, 99.9, 99.9),
               params={**default_params("ours"), "eta": 0.9})  # fmt: skip
    for dataset, base in (("cifar10", (80.0, 88.0, 77.7)), ("stl10", (93.0, 97.0, 94.0))):
        write_cell(root, "zeroshot", dataset, base, seeds=(0,))
    write_cell(root, "zeroshot", "demo-50", (76.4, 62.88, 45.82), seeds=(0,),
               backbone="tiny-random")  # fmt: skip
    return root


REFERENCE_CSV = """method,dataset,nmi,acc,ari,backbone,source
tac,cifar10,83.3,91.9,83.1,ViT-B/32,"TAC (ICML 2024) Table 1 & 100% of_it"
kmeans,stl10,91.7,94.3,89.1,ViT-B/32,TAC (ICML 2024) Table 1
ours,stl10,,98.5,,ViT-B/32,"arXiv 2603.24275, public results pages"
ours,cifar10,85.2,,,ViT-L/14,another backbone: reported row but no delta
clip-kmeans,dtd,50.0,40.0,30.0,ViT-B/32,not a column of this table
"""


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing; run with LAICBENCH_UPDATE_GOLDEN=1 once and check it"
    assert text == path.read_text(), f"{name} differs from its golden file"


# --------------------------------------------------------------------------------------------
# tables


def test_main_tables_match_golden_files(tmp_path):
    results = golden_results(tmp_path / "results")
    reference = tmp_path / "reported.csv"
    reference.write_text(REFERENCE_CSV)
    warnings: list[str] = []
    report = build_report(results, out=tmp_path / "out", reference=reference, warn=warnings.append)
    assert warnings == []
    markdown = (report.out / "main_table.md").read_text()
    latex = (report.out / "main_table.tex").read_text()
    check_golden("main_table.md", markdown)
    check_golden("main_table.tex", latex)

    # what the golden files must show, checked here so that a regenerated golden can't hide it
    rows = {line.split(" | ")[0].strip("| "): line for line in markdown.splitlines()}
    assert "99.90" not in markdown  # the sweep point stays out of the main table
    assert "| clip-kmeans (reported) [1] | - | - | - | 91.70 |" in markdown  # alias 'kmeans'
    assert "| tac (reported) [2] | 83.30 | 91.90 | 83.10 | - |" in markdown
    assert "| tac: Δ reproduced − reported | -0.30 | -0.40 | +0.30 | - |" in markdown
    assert "| ours: Δ reproduced − reported | - | - | - | - | -0.50 | - |" in markdown
    assert "dtd" not in markdown
    assert "†" in rows["tac"] and "†" not in rows["ours"]
    assert "**98.00 ± 0.30** (3)" in rows["tac"] and "**98.00 ± 0.30** (3)" in rows["ours"]
    assert "<ins>94.50 ± 0.30</ins> (3)" in rows["clip-kmeans"]  # second after a tie
    zeroshot = rows["zeroshot"]
    assert "**" not in zeroshot and "<ins>" not in zeroshot
    assert markdown.index("| zeroshot") > markdown.index("| ours |")
    assert "\\toprule" in latex and "\\midrule" in latex and "\\bottomrule" in latex
    assert "\\textbf{98.00\\,$\\pm$\\,0.30}" in latex
    assert "\\underline{94.50\\,$\\pm$\\,0.30}" in latex
    assert "100\\% of\\_it" in latex and "\\&" in latex and "demo-50" in latex


def test_missing_cell_gives_dash_and_no_average(tmp_path):
    results = tmp_path / "results"
    write_cell(results, "clip-kmeans", "demo-10", (60.0, 50.0, 40.0), backbone="tiny-random")
    write_cell(results, "clip-kmeans", "demo-50", (50.0, 30.0, 20.0), backbone="tiny-random")
    write_cell(results, "tac", "demo-10", (70.0, 65.0, 55.0), backbone="tiny-random")
    report = build_report(results, out=tmp_path / "out", reference=False)
    markdown = (report.out / "main_table.md").read_text()
    tac = next(line for line in markdown.splitlines() if line.startswith("| tac |"))
    assert tac.endswith("| - | - | - |")
    assert "Avg." not in markdown and "Avg." not in (report.out / "main_table.tex").read_text()

    write_cell(results, "tac", "demo-50", (80.0, 75.0, 65.0), backbone="tiny-random")
    report = build_report(results, out=tmp_path / "out", reference=False)
    markdown = (report.out / "main_table.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| method"))
    assert header.endswith("| Avg. NMI | Avg. ACC | Avg. ARI |")
    lines = {line.split(" | ")[0]: line for line in markdown.splitlines()}
    assert lines["| clip-kmeans"].endswith(
        "| <ins>55.00</ins> | <ins>40.00</ins> | <ins>30.00</ins> |"
    )
    assert lines["| tac"].endswith("| **75.00** | **70.00** | **60.00** |")
    table = build_main_table(report.runs)
    assert table.has_average
    clip = next(r for r in table.rows if r.label == "clip-kmeans")
    assert [c.mean for c in clip.cells[-3:]] == pytest.approx([55.0, 40.0, 30.0])


def test_failed_outdated_and_damaged_records_are_left_out_with_one_warning(cli, tmp_path):
    results = tmp_path / "results"
    write_cell(results, "clip-kmeans", "demo-10", (60.0, 50.0, 40.0), backbone="tiny-random")
    write_record(results, "tac", "demo-10", 0, None, backbone="tiny-random", status="error")
    write_record(results, "tac", "demo-10", 1, None, backbone="tiny-random", status="oom")
    write_record(results, "ours", "demo-10", 0, (99.1, 99.2, 99.3), backbone="tiny-random",
                 version="0-old")  # fmt: skip
    damaged = write_record(results, "ours-notrain", "demo-10", 0, (97.1, 97.2, 97.3),
                           backbone="tiny-random")  # fmt: skip
    record = json.loads(damaged.read_text())
    record["predictions"] = {"file": "x.pred.npz", "sha256": "0" * 64}  # the file is gone
    damaged.write_text(json.dumps(record))
    truncated = write_record(results, "tac-notrain", "demo-10", 0, (96.1, 96.2, 96.3),
                             backbone="tiny-random")  # fmt: skip
    truncated.write_text(truncated.read_text()[:100])
    out = tmp_path / "out"
    result = cli("report", "--results-dir", results, "--out", out)
    assert result.status == 0, result.err
    names = [str(p.relative_to(results)) for p in sorted([damaged, truncated])]
    assert result.err_lines == [
        "laicbench: warning: left out 5 records: 2 failed, 1 outdated, 1 damaged, 1 unreadable "
        f"(damaged or unreadable: {', '.join(names)}; rerun to repair); --allow-outdated keeps "
        "the outdated ones, their cells marked"
    ]
    markdown = (out / "main_table.md").read_text()
    assert "99.20" not in markdown and "97.20" not in markdown
    rows = [line.split(" | ")[0] for line in markdown.splitlines() if line.startswith("| ")]
    assert rows == ["| method", "| clip-kmeans"]
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.columns) == RUNS_COLUMNS
    assert sorted(runs["state"]) == ["damaged"] + ["done"] * 3 + ["failed", "failed", "outdated"]
    assert "left out 5 records" in (out / "index.md").read_text()


def test_records_of_a_plugin_that_is_not_importable_are_reported(cli, tmp_path):
    results = tmp_path / "results"
    write_cell(results, "clip-kmeans", "demo-10", (60.0, 50.0, 40.0), backbone="tiny-random")
    for seed in range(2):
        write_record(results, "gone-method", "demo-10", seed, (98.1, 98.2, 98.3),
                     backbone="tiny-random", params={"alpha": 1.0})  # fmt: skip
    out = tmp_path / "out"
    result = cli("report", "--results-dir", results, "--out", out)
    assert result.status == 0, result.err
    assert result.err_lines == []
    markdown = (out / "main_table.md").read_text()
    gone = next(line for line in markdown.splitlines() if line.startswith("| gone-method |"))
    assert "98.20" in gone


def test_report_takes_include_path_for_plugin_methods(cli, method_plugin, tmp_path):
    name, folder = method_plugin()
    results = tmp_path / "results"
    argv = ["run", "--methods", f"{name},clip-kmeans", "--datasets", "demo", "--seeds", "0",
            "--results-dir", results, "--include-path", folder, "--executor", "local"]  # fmt: skip
    assert cli(*argv).status == 0
    out = tmp_path / "out"
    result = cli("report", "--results-dir", results, "--out", out, "--include-path", folder)
    assert result.status == 0, result.err
    rows = [line.split(" | ")[0] for line in (out / "main_table.md").read_text().splitlines()]
    assert f"| {name}" in rows and "| clip-kmeans" in rows


def test_report_of_only_failed_records_is_an_error(cli, tmp_path):
    results = tmp_path / "results"
    write_record(results, "tac", "demo-10", 0, None, backbone="tiny-random", status="error")
    result = cli("report", "--results-dir", results)
    assert result.status == 2
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith("laicbench: error: no usable records")
    assert "1 failed" in result.err_lines[0]
    assert not (results / "report").exists()


@pytest.mark.parametrize("kind", ["empty", "foreign", "missing"])
def test_report_of_a_dir_without_records_fails_and_writes_nothing(cli, tmp_path, kind):
    results = tmp_path / "results"
    if kind != "missing":
        results.mkdir()
    if kind == "foreign":
        (results / "notes.txt").write_text("not a record\n")
        (results / "package.json").write_text('{"name": "something else"}\n')
        (results / "sub").mkdir()
        (results / "sub" / "broken.json").write_text("{not json")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = cli("report", "--results-dir", results)
    assert result.status == 2
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith("laicbench: error:")
    assert str(results) in result.err_lines[0]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_bad_arguments_give_one_line_errors(cli, tmp_path):
    results = tmp_path / "results"
    write_cell(results, "clip-kmeans", "demo-10", (60.0, 50.0, 40.0), backbone="tiny-random")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("mine")
    cases = [
        (["--confusion", "clip-kmeans/demo-10/tiny-random/seed9-x"], "no run"),
        (["--methods", "tac"], "no records of method 'tac'"),
        (["--datasets", "cifar10"], "no records of dataset 'cifar10'"),
        (["--out", busy], "not empty and not an earlier laicbench report"),
        (["--reference", tmp_path / "absent.csv"], "reference file"),
    ]
    for extra, message in cases:
        result = cli("report", "--results-dir", results, *extra)
        assert result.status == 2, extra
        assert len(result.err_lines) == 1, result.err
        assert result.err_lines[0].startswith("laicbench: error:")
        assert message in result.err_lines[0]
    assert (busy / "thesis.tex").read_text() == "mine"
    assert not (results / "report").exists()


def test_failed_report_leaves_no_partial_output(tmp_path, monkeypatch):
    results = tmp_path / "results"
    write_cell(results, "clip-kmeans", "demo-10", (60.0, 50.0, 40.0), backbone="tiny-random")
    out = tmp_path / "out"
    build_report(results, out=out, reference=False)
    earlier = (out / "index.md").read_text()

    import laicbench.report.build as report_module

    def broken(*args, **kwargs):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(report_module, "draw_confusion", broken)
    with pytest.raises(RuntimeError, match="figure failed"):
        build_report(results, out=out, reference=False)
    assert (out / "index.md").read_text() == earlier  # the earlier report is untouched
    with pytest.raises(RuntimeError):
        build_report(results, out=tmp_path / "fresh", reference=False)
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "results"]  # no temp folders


def test_default_out(tmp_path):
    assert default_out(tmp_path / "results" / "runs") == tmp_path / "results" / "report"
    assert default_out(tmp_path / "sweep") == tmp_path / "sweep" / "report"


# --------------------------------------------------------------------------------------------
# figures from a real demo sweep


@contextlib.contextmanager
def _restore_threads(threads: int):
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def demo_sweep(tmp_path_factory) -> tuple[Path, str]:
    """A real results dir: 4 methods on demo, seeds 0-1, a ridge_lambda grid on ours-notrain,
    ours with 5 epochs; (results dir, stdout of `laicbench run`)."""
    root = tmp_path_factory.mktemp("sweep")
    config = root / "cheap.toml"
    config.write_text("[params.ours]\nepochs = 5\n")
    results = root / "runs"
    stdout = io.StringIO()
    # one torch thread: on a loaded machine torch's thread pool can turn a 20 ms k-means into
    # seconds; the records are the same
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with contextlib.redirect_stdout(stdout), _restore_threads(threads):
        status = main(
            [
                "run", "--executor", "local", "--results-dir", str(results),
                "--methods", "clip-kmeans,tac-notrain,ours-notrain,ours",
                "--datasets", "demo", "--seeds", "0-1", "--config", str(config),
                "--grid", "ours-notrain.ridge_lambda=0.1,1.0,10.0",
            ]
        )  # fmt: skip
    assert status == 0, stdout.getvalue()
    return results, stdout.getvalue()


EXPECTED_FIGURES = [
    "training_free",
    "acc_per_seed",
    "neighbour_consistency",
    "pseudo_label_filtering",
    "relations_heatmap",
    "semantic_centers",
    "ridge_selection",
    "sensitivity_ours-notrain_ridge_lambda",
    "confusion",
]


def test_run_prints_how_to_regenerate_the_report(demo_sweep):
    results, stdout = demo_sweep
    assert f"regenerate the report: laicbench report --results-dir {results}" in stdout


def test_every_figure_of_a_demo_sweep_is_a_real_image(cli, demo_sweep, monkeypatch):
    results, _ = demo_sweep

    def no_runs(*args, **kwargs):
        raise AssertionError("the report must not run methods")

    import laicbench.run.runner

    monkeypatch.setattr(laicbench.run.runner, "execute_run", no_runs)
    monkeypatch.setattr(laicbench.run.runner, "load_dataset_features", no_runs)
    result = cli("report", "--results-dir", results)
    assert result.status == 0, result.err
    assert result.err_lines == []
    out = results.parent / "report"  # the sibling of a results dir named 'runs'
    assert str(out / "index.md") in result.out

    figures = out / "figures"
    assert sorted(p.stem for p in figures.glob("*.png")) == sorted(EXPECTED_FIGURES)
    for name in EXPECTED_FIGURES:
        image = imread(figures / f"{name}.png")
        assert image.ndim == 3 and image.shape[2] in (3, 4), name
        assert image.shape[0] > 300 and image.shape[1] > 500, (name, image.shape)
        assert np.ptp(image[..., :3]) > 0.5, name  # not uniform
        assert len(np.unique(image[..., :3].reshape(-1, 3), axis=0)) > 20, name
        assert (figures / f"{name}.pdf").read_bytes().startswith(b"%PDF"), name

    index = (out / "index.md").read_text()
    targets = re.findall(r"\]\(([^)]+)\)", index)
    assert {"main_table.md", "main_table.tex", "runs.csv", "runs.parquet"} <= set(targets)
    for target in targets:
        assert (out / target).is_file(), target
    # one dataset and one backbone: only the critical-difference diagram and the backbone
    # comparison are skipped
    skipped = index.split("### Skipped figures", 1)[1].split("---", 1)[0].strip().splitlines()
    assert len(skipped) == 2, skipped
    assert "`critical_difference`" in skipped[0] and "`backbone_comparison`" in skipped[1]
    assert "generated:" in index and "tiny-random" in index and "torch" in index

    runs = pd.read_parquet(out / "runs.parquet")
    assert list(runs.columns) == RUNS_COLUMNS
    assert len(runs) == 12 and set(runs["state"]) == {"done"}
    assert set(runs["method"]) == {"clip-kmeans", "tac-notrain", "ours-notrain", "ours"}
    assert json.loads(runs["params"].iloc[0])  # a JSON string

    markdown = (out / "main_table.md").read_text()
    assert "ours †" not in markdown and "(2) †" in markdown  # ours ran with 5 epochs


def test_confusion_of_a_chosen_run_and_skipped_figures(cli, demo_sweep, tmp_path):
    results, _ = demo_sweep
    run_id = next(results.glob("clip-kmeans/demo-10/*/seed1-*.json"))
    run_id = str(run_id.relative_to(results)).removesuffix(".json")
    out = tmp_path / "report"
    result = cli(
        "report", "--results-dir", results, "--out", out, "--methods", "clip-kmeans",
        "--confusion", run_id,
    )  # fmt: skip
    assert result.status == 0, result.err
    index = (out / "index.md").read_text()
    assert sorted(p.stem for p in (out / "figures").glob("*.png")) == [
        "acc_per_seed",
        "confusion",
        "training_free",
    ]
    assert "### Skipped figures" in index
    for name in ("neighbour_consistency", "relations_heatmap", "semantic_centers"):
        assert f"(`{name}`)" in index
    assert imread(out / "figures" / "confusion.png").shape[0] > 300


@pytest.mark.parametrize(
    ("values", "scale"), [((0.3, 1.0, 3.0, 10.0), "log"), ((1.0, 2.0, 4.0), "linear")]
)
def test_sensitivity_axis_is_logarithmic_for_values_over_decades(
    tmp_path, monkeypatch, values, scale
):
    import laicbench.report.figures as figures

    results = tmp_path / "results"
    defaults = default_params("ours-notrain")
    for value in values:
        write_cell(results, "ours-notrain", "demo-10", (80.0, 70.0, 60.0),
                   backbone="tiny-random", params={**defaults, "ridge_lambda": value})  # fmt: skip
    scales = {}
    save = figures.save_figure

    def keep_scale(fig, folder, stem):
        scales[stem] = [ax.get_xscale() for ax in fig.axes]
        return save(fig, folder, stem)

    monkeypatch.setattr(figures, "save_figure", keep_scale)
    build_report(results, out=tmp_path / "out", reference=False)
    assert scales["sensitivity_ours-notrain_ridge_lambda"] == [scale] * 3


def test_a_method_and_its_figure_in_one_plugin_file_reach_the_report(cli, tmp_path, write_plugin):
    plugins = write_plugin(
        """
        from dataclasses import dataclass

        import numpy as np

        from laicbench.api.method import Method
        from laicbench.api.outputs import MethodOutputs
        from laicbench.api.registry import register_figure, register_method
        from laicbench.report.figures import FigureResult, new_figure, save_figure

        @register_method("newcomer")
        @dataclass
        class Newcomer(Method):
            '''Thresholds the first feature.'''

            shift: float = 0.0

            def fit_predict(self, features, n_clusters, seed):
                x = np.asarray(features.image_test)
                self.outputs_ = MethodOutputs(representation_test=x[:, :4])
                return (x[:, 0] > self.shift).astype(np.int64)

        @register_figure("newcomer_consistency")
        def draw(context):
            '''Neighbour consistency of the newcomer's representation per dataset.'''
            result = FigureResult("newcomer_consistency", "Newcomer", "its own figure")
            groups = [g for g in context.groups if g.method == "newcomer"]
            if not groups:
                result.skipped = "no newcomer runs"
                return result
            fig = new_figure(4, 3)
            values = [g.runs[0].diagnostics["neighbour_consistency"]["representation"]
                      for g in groups]
            fig.add_subplot().bar(range(len(values)), values)
            result.files = save_figure(fig, context.folder, result.name)
            return result
        """
    )
    runs = tmp_path / "runs"
    result = cli(
        "run", "--include-path", plugins, "--methods", "newcomer", "--datasets", "demo",
        "--seeds", "0", "--results-dir", runs, "--executor", "local",
    )  # fmt: skip
    assert result.status == 0, result.err
    listing = cli("list", "figures", "--include-path", plugins)
    assert "newcomer_consistency" in listing.out and "training_free" in listing.out
    out = tmp_path / "r"
    report = cli("report", "--include-path", plugins, "--results-dir", runs, "--out", out)
    assert report.status == 0, report.err
    index = (tmp_path / "r" / "index.md").read_text()
    assert "figures/newcomer_consistency.png" in index
    assert (tmp_path / "r" / "figures" / "newcomer_consistency.png").stat().st_size > 0
    assert "| newcomer |" in (tmp_path / "r" / "main_table.md").read_text()
