"""The two ways a study's search runs, which choose the same parameters.

In-process (``--executor local``): Optuna's ask-and-tell interface, trial after trial. On Ray
(``--executor ray``): a Ray Tune search (``ray.tune.search.optuna.OptunaSearch``) whose trials
run where Ray puts them, on one machine or a cluster. Both build the Optuna study the same way
(the same sampler and seed, the same distributions, the default point enqueued first) and
propose ``batch`` trials at a time, the next batch only once the whole batch has reported
(Tune's ``ConcurrencyLimiter`` with ``batch=True``): the proposals depend only on the values of
earlier batches, not on the order trials finish in, so both executors propose the same
parameters and choose the same configuration.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from laicbench.api import registry
from laicbench.api.settings import DataSettings
from laicbench.run.records import ResultStore, RunRecord
from laicbench.tune.study import Known, Study, Trial, evaluate_trial

OnTrial = Callable[[Trial], None]


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def optuna_study(study: Study):
    """The Optuna study of `study` as Ray's OptunaSearch builds it: in memory, no pruning, the
    search's sampler, named "optuna", with the default point enqueued."""
    import optuna

    _quiet_optuna()
    search = optuna.create_study(
        sampler=study.search.sampler(),
        pruner=optuna.pruners.NopPruner(),
        study_name="optuna",
        direction="maximize" if study.objective.mode == "max" else "minimize",
    )
    if study.space.default_point is not None:
        search.enqueue_trial(study.space.default_point)
    return search


def local_search(
    study: Study, evaluate: Callable[[int, dict[str, Any]], Trial], on_trial: OnTrial
) -> list[Trial]:
    """Run the `study`'s search in this process: ask a batch of proposals, evaluate them one
    after another (`evaluate(number, sampled)`), tell their values; `on_trial` gets each trial
    as it ends. Returns the trials in proposal order."""
    search = optuna_study(study)
    distributions = study.space.distributions()
    trials: list[Trial] = []
    while len(trials) < study.budget:
        size = min(study.search.batch, study.budget - len(trials))
        proposals = [search.ask(fixed_distributions=distributions) for _ in range(size)]
        batch = []
        for proposal in proposals:
            trial = evaluate(proposal.number, proposal.params)
            batch.append(trial)
            on_trial(trial)
        for proposal, trial in zip(proposals, batch, strict=True):
            search.tell(proposal, math.nan if trial.value is None else trial.value)
        trials += batch
    return trials


def ray_searcher(study: Study):
    """The Ray Tune search algorithm of `study`: Optuna through ``OptunaSearch`` (its study built
    as ``optuna_study`` builds it), proposing batches (``ConcurrencyLimiter``, ``batch=True``);
    trials report their value as ``objective``."""
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    _quiet_optuna()
    searcher = OptunaSearch(
        space=study.space.distributions(),
        metric="objective",
        mode=study.objective.mode,
        sampler=study.search.sampler(),
        points_to_evaluate=None
        if study.space.default_point is None
        else [dict(study.space.default_point)],
    )
    return ConcurrencyLimiter(searcher, max_concurrent=study.search.batch, batch=True)


def ray_search(
    study: Study,
    gpus: float,
    store: ResultStore,
    settings: DataSettings,
    include_paths: tuple[str, ...],
    known: Known,
    on_trial: OnTrial,
) -> list[Trial]:
    """Run the `study`'s search as a Ray Tune search on the Ray this process is connected to
    (started by the Ray executor's ``prepare``), `gpus` being what trials may ask for. Each
    trial evaluates its parameters (``evaluate_trial``) in a Ray worker and reports its runs;
    a trial whose worker died gets error records for its runs and no value. Returns the trials
    in proposal order."""
    from ray import tune

    from laicbench.run.executors.ray import run_config, trial_resources

    request = trial_resources(study.method, gpus)
    trainable = tune.with_resources(_search_trial, tune.PlacementGroupFactory([request]))
    progress = _SearchProgress(study, store, on_trial)
    tuner = tune.Tuner(
        trainable,
        param_space={
            "_study": study.to_dict(),
            "_results_dir": str(store.root),
            "_settings": settings.to_dict(),
            "_include_paths": list(include_paths),
            "_known": {run_id: list(value) for run_id, value in known.items()},
        },
        tune_config=tune.TuneConfig(
            search_alg=ray_searcher(study),
            num_samples=study.budget,
            reuse_actors=True,
        ),
        run_config=run_config(f"tune-{study.method}-{study.study_id}", store, progress.callback()),
    )
    tuner.fit()
    return sorted(progress.trials.values(), key=lambda t: t.number)


def _search_trial(config: dict[str, Any]) -> None:
    """One Tune trial of a search: evaluate the proposed parameters, report the value (NaN when
    undefined or failed) and the trial's runs."""
    import ray
    from ray import tune

    for folder in config["_include_paths"]:
        registry.load_plugin_folder(folder)
    study = Study.from_dict(config["_study"])
    sampled = {name: config[name] for name in study.space.dims}
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    known = {run_id: (sha, value) for run_id, (sha, value) in config["_known"].items()}
    trial = evaluate_trial(
        study,
        -1,  # the driver numbers the trials in the order Tune created them
        sampled,
        ResultStore(config["_results_dir"]),
        device,
        DataSettings(**config["_settings"]),
        known,
    )
    value = math.nan if trial.value is None else trial.value
    tune.report({"objective": value, "trial": json.dumps(trial.to_dict())})


class _SearchProgress:
    """The driver's view of a Ray search: numbers each trial by its creation order (the order
    the searcher proposed it in) and passes it on as it reports or dies."""

    def __init__(self, study: Study, store: ResultStore, on_trial: OnTrial):
        self.study = study
        self.store = store
        self.on_trial = on_trial
        self.trials: dict[int, Trial] = {}

    def reported(self, number: int, trial: Trial) -> None:
        trial.number = number
        self.trials[number] = trial
        self.on_trial(trial)

    def died(self, number: int, config: dict[str, Any], error: BaseException) -> None:
        """A trial whose worker died before reporting: error records for its runs that have no
        record, and a trial without value."""
        from laicbench.run.executors.ray import lost_trial_record

        sampled = {name: config[name] for name in self.study.space.dims}
        params = self.study.run_params(sampled)
        trial = Trial(number, sampled, params)
        for spec in self.study.specs(params, self.study.selection_seeds):
            record: RunRecord | None = self.store.read(spec)
            if record is None or not record.ok:
                self.store.write_failure(spec, lost_trial_record(spec, error))
        self.reported(number, trial)

    def callback(self):
        """The Tune callback that feeds this progress (Tune calls it in the driver)."""
        from ray.tune import Callback

        class TrialProgress(Callback):
            def __init__(self, progress: _SearchProgress):
                self.progress = progress

            def __getstate__(self):  # Tune pickles its run config; the driver's state stays out
                return {"progress": None}

            def on_trial_result(self, iteration, trials, trial, result, **info):
                number = trials.index(trial)
                if number not in self.progress.trials and "trial" in result:
                    done = Trial.from_dict(json.loads(result["trial"]))
                    self.progress.reported(number, done)

            def on_trial_error(self, iteration, trials, trial, **info):
                number = trials.index(trial)
                if number not in self.progress.trials:
                    error = RuntimeError(f"the trial's worker died: {trial.error_file or ''}")
                    self.progress.died(number, trial.config, error)

        return TrialProgress(self)
