"""The tuning track: search spaces, label-free objectives, both executors' searches, resume, the
tuning table and the main table's tuned view."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import table_rows

from laicbench.api import registry
from laicbench.api.errors import UserError
from laicbench.cluster.internal import generalization_score
from laicbench.run.config import SweepConfig
from laicbench.tune import OBJECTIVES, TuningConfig, run_tuning
from laicbench.tune.objectives import ORACLE
from laicbench.tune.space import resolve_space
from laicbench.tune.study import SearchSettings, Study, read_study_record

# spectral's k-NN graph on `blobs_file`: below 25 neighbours each sub-blob is its own component,
# from 100 on clusters merge; in between the clustering is perfect
RIGHT_NEIGHBOURS = range(25, 81)


def blobs_file(path: Path, random_test_labels: bool = False) -> Path:
    """Four clusters of two tight sub-blobs (25 points each) in 16 dimensions, the same points as
    train and test split: spectral clustering is right only when its k-NN graph joins the two
    sub-blobs of a cluster (25 to 80 neighbours). `random_test_labels`: the test labels replaced
    by a random balanced labelling."""
    rng = np.random.default_rng(0)
    k, parts, size, dim = 4, 2, 25, 16
    centers = rng.normal(size=(k, dim)) * 3.0
    x, y = [], []
    for cluster in range(k):
        for _ in range(parts):
            middle = centers[cluster] + rng.normal(size=dim) * 0.8
            x.append(middle + rng.normal(size=(size, dim)) * 0.1)
            y += [cluster] * size
    x = (np.concatenate(x) + 1.5).astype(np.float32)
    y = np.asarray(y)
    test = np.random.default_rng(1).permutation(y) if random_test_labels else y
    np.savez(path, image_train=x, image_test=x, labels_train=y, labels_test=test)
    return path


def tuning_config(dataset: Path, results: Path, **kwargs) -> TuningConfig:
    sweep = kwargs.pop("sweep", {})
    return TuningConfig(
        SweepConfig(
            methods=kwargs.pop("methods", ["spectral"]),
            datasets=[str(dataset)],
            seeds=kwargs.pop("seeds", "0-1"),
            results_dir=str(results),
            executor="local",
            device="cpu",
            **sweep,
        ),
        budget=kwargs.pop("budget", 8),
        **kwargs,
    )


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One tuning of spectral on the blobs (silhouette and oracle, budget 8) and its report."""
    from laicbench.report.build import build_report

    folder = tmp_path_factory.mktemp("tuned")
    registry.methods.load_builtins()
    config = tuning_config(
        blobs_file(folder / "blobs.npz"), folder / "runs", objectives=["silhouette", ORACLE]
    )
    result = run_tuning(config)
    report = build_report(folder / "runs", folder / "report", reference=False)
    return folder, result, report


# ------------------------------------------------------------------------------------------
# search spaces


def test_every_method_but_the_oracles_has_a_space_around_its_defaults():
    for entry in registry.methods.entries():
        cls = entry.obj
        if not cls.tunable():
            # oracles and interactive methods (which learn from labels) are never tuned
            assert cls.oracle or "interactive" in cls.tags, f"{entry.name} declares no param_space"
            continue
        for dataset, n_train in (("cifar10", 50_000), ("demo-50", 5_000)):
            space = resolve_space(cls, set(), dataset, n_train, 10)
            assert set(space.dims) == set(cls.param_space)
            # the defaults lie inside, so every search starts from them
            assert space.default_point is not None, (entry.name, dataset)
            for name, value in space.default_point.items():
                assert value == cls.value_in_run(name, dataset, n_train, 10)


def test_a_scaled_range_follows_the_runs_own_value():
    tac = registry.methods.get("tac-notrain")
    cifar = resolve_space(tac, set(), "cifar10", 50_000, 10).dims["n_semantic_centers"]
    other = resolve_space(tac, set(), "demo-50", 6_000, 50).dims["n_semantic_centers"]
    assert (cifar.low, cifar.high) == (42, 668)  # TAC's 167 for CIFAR-10, x 0.25 to x 4
    assert (other.low, other.high) == (38, 600)  # its rule max(N / 300, 3K) = 150
    assert resolve_space(tac, {"n_semantic_centers"}, "cifar10", 50_000, 10).dims.keys() == {"tau"}


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ('{"nope": IntRange(1, 5)}', "names 'nope', which is not a parameter"),
        ('{"k": IntRange(0, 5)}', "k=0 must be >= 1"),
        ('{"k": IntRange(5, 1)}', "needs low < high"),
        ('{"k": FloatRange(0.5, 2.0)}', "must be an integer"),
        ('{"k": Choice(())}', "has no choices"),
    ],
)
def test_a_broken_space_is_refused_at_registration(cli, write_plugin, space, message):
    folder = write_plugin(
        f"""
        from dataclasses import dataclass
        import numpy as np
        from laicbench.api.method import Method
        from laicbench.api.params import AT_LEAST_ONE, Choice, FloatRange, IntRange
        from laicbench.api.registry import register_method

        @register_method("spaced-{abs(hash(space)) % 10**6}")
        @dataclass
        class Spaced(Method):
            '''A test method.'''
            k: int = 2
            param_constraints = {{"k": AT_LEAST_ONE}}
            param_space = {space}

            def fit_predict(self, features, n_clusters, seed):
                return np.zeros(len(features.image_test), dtype=int)
        """
    )
    result = cli("list", "methods", "--include-path", folder)
    assert result.status == 2
    assert message in result.err and "param_space" in result.err


def test_list_methods_says_what_tune_searches(cli):
    rows = {row[0]: row for row in table_rows(cli("list", "methods").out)}
    assert "n_init" in rows["clip-kmeans"]
    assert "not tunable (oracle)" in rows["zeroshot"]


# ------------------------------------------------------------------------------------------
# objectives


def test_generalization_score_rewards_learnable_labellings_only():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 8)) * 4
    labels = np.arange(500) % 5
    x = centers[labels] + rng.normal(size=(500, 8))
    learnable = generalization_score(x, labels, 0)
    random = generalization_score(x, rng.permutation(labels), 0)
    lopsided = generalization_score(x, (np.arange(500) < 3).astype(int), 0)  # one huge cluster
    assert learnable > 0.95 and abs(random) < 0.1
    assert lopsided < 0.5  # chance-corrected: predicting the big cluster everywhere earns ~0
    assert generalization_score(x, np.zeros(500, dtype=int), 0) is None


def test_only_the_oracle_objective_uses_labels():
    assert [name for name, o in OBJECTIVES.items() if not o.label_free] == [ORACLE]


# ------------------------------------------------------------------------------------------
# searches


def test_a_label_free_objective_recovers_the_right_hyperparameter(tuned):
    _, result, _ = tuned
    (study,) = [s for s in result.studies if s.study.objective.name == "silhouette"]
    assert study.trials[0].sampled == {"n_neighbors": 10}  # the default first
    assert study.best.sampled["n_neighbors"] in RIGHT_NEIGHBOURS
    assert study.best.value > study.trials[0].value + 0.5
    acc = {}
    for spec, record in result.evaluation.finished + result.evaluation.skipped:
        acc.setdefault(spec.params["n_neighbors"], []).append(record.metrics["acc"])
    tuned_acc = acc[study.best.params["n_neighbors"]]
    assert min(tuned_acc) == 100.0 and max(acc[10]) < 100.0  # the default is wrong here


def test_the_study_record_says_how_the_choice_was_made(tuned):
    folder, result, _ = tuned
    (study,) = [s for s in result.studies if s.study.objective.name == "silhouette"]
    record = read_study_record(study.record_path)
    assert record["objective"]["name"] == "silhouette" and record["objective"]["label_free"]
    assert record["selection_seeds"] == [1000] and record["evaluation"]["seeds"] == [0, 1]
    assert record["evaluation"]["seeds_disjoint"] is True
    assert record["search"] == {"algorithm": "tpe", "seed": 0, "batch": 4}
    assert len(record["trials"]) == 8 and record["best"]["number"] == study.best.number
    assert record["space"]["dims"]["n_neighbors"] == {
        "kind": "int",
        "low": 5,
        "high": 100,
        "log": True,
    }
    # every trial is an ordinary run with its record
    for trial in record["trials"]:
        (run,) = trial["runs"]
        assert (folder / "runs" / f"{run['run_id']}.json").is_file()


def test_no_objective_reads_the_test_labels(tmp_path):
    """Random test labels: every label-free objective makes the same trials and choice."""
    objectives = [name for name, o in OBJECTIVES.items() if o.label_free]
    chosen = []
    for random_labels in (False, True):
        path = blobs_file(tmp_path / f"blobs-{random_labels}.npz", random_labels)
        config = tuning_config(path, tmp_path / f"runs-{random_labels}", objectives=objectives)
        config.budget = 6
        result = run_tuning(config)
        chosen.append(
            {
                s.study.objective.name: (s.best.sampled, [t.value for t in s.trials])
                for s in result.studies
            }
        )
    assert chosen[0] == chosen[1]
    assert len({str(v[1]) for v in chosen[0].values()}) == len(objectives)  # they differ


def test_the_ray_searcher_proposes_what_the_in_process_search_proposes():
    """Ray Tune's searcher as the Ray executor builds it, driven batch by batch as Tune drives
    it (values told in a scrambled order), proposes the same parameters as the local search."""
    from laicbench.tune.objectives import get_objective
    from laicbench.tune.search import local_search, ray_searcher
    from laicbench.tune.study import Trial

    cls = registry.methods.get("tac-notrain")
    study = Study(
        "tac-notrain",
        "demo",
        "tiny-random",
        get_objective("generalization"),
        15,
        resolve_space(cls, set(), "demo", 2000, 10),
        {},
        cls().get_params(),
        [1000],
        SearchSettings("tpe", 3, 4),
    )

    def value(sampled) -> float:  # a smooth stand-in for an objective
        return (
            -((math.log(sampled["tau"]) + 4) ** 2) - (sampled["n_semantic_centers"] / 100 - 1) ** 2
        )

    local = local_search(
        study, lambda number, sampled: _scored(Trial(number, sampled, {}), value), lambda t: None
    )
    searcher = ray_searcher(study)
    proposed: list[dict] = []
    while len(proposed) < study.budget:
        batch = []
        while len(proposed) < study.budget and (config := searcher.suggest(f"t{len(proposed)}")):
            batch.append((f"t{len(proposed)}", config))
            proposed.append(config)
        for trial_id, config in reversed(batch):  # trials end in any order
            searcher.on_trial_complete(trial_id, {"objective": value(config)})
    assert proposed == [t.sampled for t in local]
    assert len({json.dumps(p, sort_keys=True) for p in proposed}) > 10


def _scored(trial, value):
    from laicbench.tune.study import TrialRun

    trial.runs.append(TrialRun("r", 0, value(trial.sampled)))
    return trial


def test_an_interrupted_tuning_resumes_without_repeating_finished_trials(tmp_path):
    path = blobs_file(tmp_path / "blobs.npz")
    config = tuning_config(path, tmp_path / "runs", objectives=["silhouette"], budget=6)
    seen = []

    def stop_after_three(study, trial):
        seen.append(trial)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_tuning(config, on_trial=stop_after_three)
    store = tmp_path / "runs"
    finished = {
        run.run_id: json.loads((store / f"{run.run_id}.json").read_text())["finished_at"]
        for trial in seen
        for run in trial.runs
    }
    result = run_tuning(config)
    (study,) = result.studies
    assert [t.sampled for t in study.trials[:3]] == [t.sampled for t in seen]
    assert [t.executed for t in study.trials[:3]] == [0, 0, 0]  # found stored, not run again
    assert sum(t.executed for t in study.trials[3:]) >= 1
    for run_id, stamp in finished.items():
        assert json.loads((store / f"{run_id}.json").read_text())["finished_at"] == stamp


# ------------------------------------------------------------------------------------------
# the report


def test_the_tuning_table_compares_default_tuned_and_oracle(tuned):
    folder, _, report = tuned
    text = (folder / "report" / "tuning.md").read_text()
    (row,) = [line for line in text.splitlines() if line.startswith("| spectral")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "silhouette" and cells[3] == "8"
    assert cells[5].startswith("100.00 ± 0.00 (2)")  # tuned, over the evaluation seeds
    assert cells[6].startswith("100.00")  # oracle-tuned
    assert float(cells[7]) > 0 and cells[9] == "100%"  # all the headroom recovered
    assert "tuning" in [t.name for t in report.statistics]
    assert any(f.name == "tuning" and f.files for f in report.figures)


def test_selection_runs_stay_out_of_the_main_table(tuned):
    folder, _, report = tuned
    assert {r.seed for r in report.runs} == {0, 1}  # not the selection seed 1000
    assert report.selection_runs >= 5  # distinct parameters among the 8 trials
    assert (
        f"{report.selection_runs} runs that tuning searches made"
        in (folder / "report" / "index.md").read_text()
    )
    main = (folder / "report" / "main_table.md").read_text()
    assert "(2)" in main and "(3)" not in main


def _spectral_acc(main_table: Path) -> str:
    (row,) = [line for line in main_table.read_text().splitlines() if line.startswith("| spectral")]
    return row.strip("|").split("|")[2].strip()  # method, NMI, ACC


def test_the_tuned_view_shows_the_chosen_parameters(tuned):
    from laicbench.report.build import build_report

    folder, _, _ = tuned
    assert not _spectral_acc(folder / "report" / "main_table.md").startswith("100.00")
    build_report(folder / "runs", folder / "tuned-report", reference=False, tuned="silhouette")
    view = folder / "tuned-report" / "main_table.md"
    assert _spectral_acc(view).startswith("100.00 ± 0.00 (2)")
    assert "Tuned view" in view.read_text() and "objective silhouette" in view.read_text()
    with pytest.raises(UserError, match="uses the test labels"):
        build_report(folder / "runs", folder / "x", reference=False, tuned=ORACLE)


# ------------------------------------------------------------------------------------------
# the command line


def test_dry_run_prints_the_spaces_and_the_trials(cli, tmp_path):
    result = cli(
        "tune", "--methods", "clip-kmeans,tac-notrain,zeroshot", "--datasets", "demo",
        "--budget", "7", "--objective", "generalization,oracle", "--dry-run",
        "--results-dir", tmp_path,
    )  # fmt: skip
    assert result.status == 0, result.err
    rows = table_rows(result.out)
    assert ["clip-kmeans", "n_init", "1-50 (log)"] in rows
    assert ["tac-notrain", "n_semantic_centers", "0.25x-4x of the run's value (log)"] in rows
    assert ["zeroshot", "-", "oracle: never tuned nor ranked"] in rows
    assert "4 studies of 7 trials each" in result.out
    assert "4 x 7 trials x 1 selection seed(s) (1000) = at most 28 selection runs" in result.out
    assert not (tmp_path / "_tune").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "0"], "--budget must be at least 1"),
        (["--objective", "silhouete"], "did you mean 'silhouette'"),
        (["--selection-seeds", "1"], "selection seeds and evaluation seeds share 1"),
        (["--grid", "clip-kmeans.n_init=1,2"], "--grid does not apply to tune"),
        (["--search", "grid"], "invalid choice"),
    ],
)
def test_bad_tuning_input_is_one_line(cli, tmp_path, args, message):
    result = cli("tune", "--methods", "clip-kmeans", "--dry-run", "--results-dir", tmp_path, *args)
    assert result.status == 2
    assert len(result.err_lines) == 1 and message in result.err


def test_tune_on_the_command_line(cli, tmp_path):
    path = blobs_file(tmp_path / "blobs.npz")
    result = cli(
        "tune", "--methods", "spectral", "--datasets", path, "--budget", "3", "--seeds", "0",
        "--objective", "davies-bouldin", "--results-dir", tmp_path / "runs", "--executor", "local",
    )  # fmt: skip
    assert result.status == 0, result.err
    (row,) = [r for r in table_rows(result.out) if r[0] == "spectral"]
    assert row[2] == "davies-bouldin" and row[3] == "3"
    again = cli(
        "tune", "--methods", "spectral", "--datasets", path, "--budget", "3", "--seeds", "0",
        "--objective", "davies-bouldin", "--results-dir", tmp_path / "runs", "--executor", "local",
    )  # fmt: skip
    (row_again,) = [r for r in table_rows(again.out) if r[0] == "spectral"]
    assert row_again[4] == "0" and row_again[5:] == row[5:]  # nothing run again, same choice
    assert "evaluation: 0 new" in again.out
