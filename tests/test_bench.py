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
