"""`laicbench bench methods`: the steps each method declares, and its bad input."""

from __future__ import annotations

from laicbench.api.bench import PrimitiveStep
from laicbench.bench.methods import cifar10_jobs, imagenet_jobs


def test_imagenet_steps_are_the_union_of_what_the_methods_declare():
    labels = [label for label, _ in imagenet_jobs(["clip-kmeans", "tac", "ours"], "cpu")]
    assert labels == [
        PrimitiveStep.LABELS["kmeans_pseudo"],
        PrimitiveStep.LABELS["kmeans_select"],
        PrimitiveStep.LABELS["noun_assignment"],
        PrimitiveStep.LABELS["counterparts"],
        PrimitiveStep.LABELS["knn"],
        "tac: cluster-head training",
        "ours: prompt learning",
    ]
    assert [label for label, _ in imagenet_jobs(["clip-kmeans"], "cpu")] == [
        PrimitiveStep.LABELS["kmeans_pseudo"]
    ]


def test_a_plugin_method_brings_its_own_bench_step(cli, write_plugin):
    plugins = write_plugin(
        """
        from laicbench.api.method import Method
        from laicbench.api.registry import register_method

        def job():
            return 1.0, 2.0, "declared by the plugin"

        @register_method("bench-plugin")
        class BenchPlugin(Method):
            @classmethod
            def bench_steps(cls, size, device):
                return [("bench-plugin: its step", job)] if size == "cifar10" else []

            def fit_predict(self, features, n_clusters, seed):
                return features.image_test[:, 0] > 0
        """
    )
    from laicbench.api import registry

    registry.load_plugin_folder(plugins)
    jobs = cifar10_jobs(["bench-plugin"], "cpu", {})
    assert [label for label, _ in jobs] == ["bench-plugin", "bench-plugin: its step"]
    assert jobs[1][1]() == (1.0, 2.0, "declared by the plugin")


def test_scale_needs_a_positive_value_of_a_numeric_parameter(cli):
    for bad in ("ours.epochs=abc", "ours.epochs=0", "ours.optimizer=2", "ours=5"):
        result = cli("bench", "methods", "--methods", "ours", "--scale", bad)
        assert result.status == 2, bad
        assert result.err.count("\n") == 1 and f"--scale {bad}" in result.err


def test_every_baseline_declares_its_imagenet_size_steps():
    baselines = ["turtle", "temi", "scan", "spectral", "umap-ward"]
    baselines += ["gradnorm-notrain", "gradnorm", "sic", "ntk-sc"]
    for name in baselines:
        assert imagenet_jobs([name], "cpu"), name
    spectral = [label for label, _ in imagenet_jobs(["spectral"], "cpu")]
    ntk = [label for label, _ in imagenet_jobs(["ntk-sc"], "cpu")]
    assert spectral == ["spectral clustering, 10-NN graph of 50,000, K = 1,000"]
    # NTK-SC's spectral step runs on a graph as wide as its diffused affinity
    assert "spectral clustering, 100-NN graph of 50,000, K = 1,000" in ntk


def test_on_cuda_each_method_and_its_steps_run_where_sweeps_run_them():
    from laicbench.api import registry

    devices = {label: job.device for label, job in cifar10_jobs(["clip-kmeans", "tac"], "cuda")}
    assert devices["clip-kmeans"] == "cpu"  # no GPU share: sweeps run it on the CPU
    assert devices["tac"] == "cuda"
    jobs = imagenet_jobs(["clip-kmeans", "tac"], "cuda")
    kmeans = PrimitiveStep.LABELS["kmeans_pseudo"]
    assert [job.device for label, job in jobs if label == kmeans] == ["cpu"]
    assert {job.device for label, job in jobs if label != kmeans} == {"cuda"}
    for _, job in jobs:  # the step itself was declared for that device
        assert getattr(job.job, "device", job.device) == job.device
    assert registry.methods.get("clip-kmeans").resources.gpus == 0


def test_a_gpu_step_is_warmed_up_and_its_own_peak_gpu_memory_measured(monkeypatch):
    import torch

    import laicbench.bench.methods as bench_methods
    from laicbench.bench.methods import DeviceJob, run_job

    events = []
    monkeypatch.setattr(bench_methods, "warm_up", lambda device: events.append(("warm", device)))
    monkeypatch.setattr(
        torch.cuda, "reset_peak_memory_stats", lambda device: events.append(("reset", device))
    )

    def peak(device):
        events.append(("peak", device))
        return 512 * 2**20

    monkeypatch.setattr(torch.cuda, "max_memory_allocated", peak)

    def step():
        events.append(("step",))
        return 1.0, 10.0, "how"

    assert run_job(DeviceJob(step, "cuda:1")) == (1.0, 10.0, "how", 512.0)
    assert events == [("warm", "cuda:1"), ("reset", "cuda:1"), ("step",), ("peak", "cuda:1")]
    events.clear()
    assert run_job(DeviceJob(step, "cpu")) == (1.0, 10.0, "how", None)
    assert events == [("step",)]


def test_timed_waits_for_the_gpus_once_cuda_is_in_use(monkeypatch):
    import torch

    from laicbench.api.bench import timed

    events = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda index: events.append(f"sync {index}"))
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    timed(lambda: events.append("step"))
    assert events == ["sync 0", "sync 1", "step", "sync 0", "sync 1"]
    events.clear()
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)  # a CPU-only process
    timed(lambda: events.append("step"))
    assert events == ["step"]


def test_scale_extrapolates_to_epochs_a_method_resolves_by_its_own_rule():
    # SAC leaves epochs at None and picks 30 below 512 clusters in its training_config
    from laicbench.api import registry
    from laicbench.bench.methods import scaled_default

    assert scaled_default(registry.methods.get("sac"), "epochs") == 30
    assert scaled_default(registry.methods.get("sac"), "batch_size") == 512
    assert scaled_default(registry.methods.get("tac"), "epochs") == 20  # TAC's own rule
    run = cifar10_jobs(["sac"], "cpu", {"sac": ("epochs", 3)})[0][1].job
    assert (run.params, run.factor) == ({"epochs": 3}, 10.0)
