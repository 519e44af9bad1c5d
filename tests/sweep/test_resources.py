"""common/sweep/resources.py: what ``gpu="auto"`` decides from a cluster's nodes (no Ray cluster needed:
the nodes are given), and the default concurrency of a real sweep (the scarcest of CPUs and memory)."""

from __future__ import annotations

import pytest
from real_sweeps import sweep_options, sweep_runs

import common.sweep.resources
from common.sweep.resources import MAX_PACK, gpu_plan, resolve_gpus
from trainables.sweep import run


# ---- gpu="auto" ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "memory,need,cpus_per_gpu,cpus,expected",
    [
        (81_559, 2_200, 16, 1, MAX_PACK),  # an 80 GB GPU and 16 CPUs: memory holds 33, the cap is 16
        (81_559, 2_200, 8, 1, 8),  # CPU-bound: 8 CPUs feed 8 one-CPU trials
        (81_559, 2_200, 8, 2, 4),
        (16_000, 4_100, 32, 1, 3),  # memory-bound: 0.9 * 16,000 / 4,100 = 3.5
        (3_000, 4_100, 32, 1, 1),  # a trial bigger than the GPU still gets all of it
        (None, 2_200, 16, 1, 1),  # memory unknown: one trial per GPU
    ],
)
def test_gpu_plan_packs_as_many_trials_as_memory_and_cpus_allow(memory, need, cpus_per_gpu, cpus, expected):
    assert gpu_plan(memory, need, cpus_per_gpu, cpus) == expected


def _nodes(monkeypatch, nodes, gpu_memory_mb=81_559.0):
    import ray

    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": n} for n in nodes])
    monkeypatch.setattr(common.sweep.resources, "_probe_gpu_memory_mb", lambda: gpu_memory_mb)


def test_auto_on_a_cpu_only_cluster_is_no_gpu_exactly_as_before(monkeypatch):
    _nodes(monkeypatch, [{"CPU": 2.0}, {"CPU": 8.0, "mps": 1.0}])
    asked = {"cpu": 1, "gpu": "auto", "memory_mb": 1800}
    assert resolve_gpus(asked, 2400) == {"cpu": 1, "gpu": 0.0, "memory_mb": 1800}


def test_auto_on_gpu_nodes_gives_each_trial_a_share_sized_by_the_smallest_node(monkeypatch):
    _nodes(monkeypatch, [{"CPU": 2.0}, {"CPU": 16.0, "GPU": 1.0}, {"CPU": 16.0, "GPU": 2.0}])
    got = resolve_gpus({"cpu": 1, "gpu": "auto", "memory_mb": 1800}, 2400)
    assert got["gpu"] == 0.125  # the 2-GPU node has 8 CPUs per GPU: 8 trials a GPU
    got = resolve_gpus({"cpu": 1, "gpu": "auto", "memory_mb": 1800}, 30_000)
    assert got["gpu"] == 0.5  # 0.9 * 81,559 / 30,000 = 2.4: two a GPU
    _nodes(monkeypatch, [{"CPU": 16.0, "GPU": 1.0}])
    assert resolve_gpus({"cpu": 1, "gpu": "auto", "memory_mb": 1}, 2400)["gpu"] == 0.0625  # 1/16, MAX_PACK
    _nodes(monkeypatch, [{"CPU": 16.0, "GPU": 1.0}])
    assert resolve_gpus({"cpu": 3, "gpu": "auto", "memory_mb": 1}, 2400)["gpu"] == 0.2  # 16 // 3 = 5


def test_an_explicit_gpu_count_is_kept_and_zero_forces_the_cpu(monkeypatch):
    _nodes(monkeypatch, [{"CPU": 16.0, "GPU": 1.0}])
    for asked in (0.0, 0.25, 1.0):
        assert resolve_gpus({"cpu": 1, "gpu": asked, "memory_mb": 1}, 2400)["gpu"] == asked


# ---- in a real sweep (four trials, half a minute: make test-slow) -----------------------------------
@pytest.mark.slow
def test_default_concurrency_is_the_scarcest_of_cpus_and_memory(ray_session, workdir, tracking_uri):
    import ray

    from common.sweep.resources import check_fits, slots
    from common.trial.config import ConfigError

    mib = ray.cluster_resources()["memory"] / 2**20  # what Ray offers this node (2 CPUs)
    assert slots({"cpu": 1, "gpu": 0, "memory_mb": 100}) == 2  # CPU-bound
    assert slots({"cpu": 0.1, "gpu": 0, "memory_mb": mib / 3 - 1}) == 3  # memory-bound
    assert slots({"cpu": 0.1, "gpu": 0, "memory_mb": mib * 2}) == 1
    check_fits({"cpu": 2, "gpu": 0, "memory_mb": mib})
    for need, flag in (
        ({"cpu": 3, "gpu": 0, "memory_mb": 1}, "--cpus-per-trial"),
        ({"cpu": 1, "gpu": 1, "memory_mb": 1}, "--gpus-per-trial"),
        ({"cpu": 1, "gpu": 0, "memory_mb": mib + 1}, "--memory-per-trial"),
    ):
        with pytest.raises(ConfigError, match=flag):
            check_fits(need)
    # A sweep asks Ray for each family's measured peak: with a third of the node's memory per
    # trial, at most 3 of 4 trials ever run at once, however many CPUs they could share.
    from common.trial.config import VAEConfig

    assert VAEConfig(data="synthetic").memory_mb() < VAEConfig().memory_mb() == VAEConfig.peak_rss_mb
    run(
        sweep_options(
            workdir,
            tracking_uri,
            "vae_beta.py",
            num_samples=4,
            max_epochs=1,
            cpus_per_trial=0.1,
            memory_per_trial=mib / 3 - 1,
            report=False,
            overrides=(("eval_samples", "64"), ("batch_size", "64")),
        )
    )
    client, _, children = sweep_runs(tracking_uri, "vae_beta")
    # A trial's span, both ends stamped by its worker: its run's creation and its last epoch's
    # objective. The run's end time is not used: the driver sets it, later under load.
    last = [max(m.timestamp for m in client.get_metric_history(c.info.run_id, "val_bpd")) for c in children]
    spans = [(c.info.start_time, e) for c, e in zip(children, last)]
    overlap = max(sum(s <= t < e for s, e in spans) for t, _ in spans)
    assert len(children) == 4 and overlap <= 3
    # Worker processes are reused (common.sweep.tuning.REUSE_ACTORS): a trial does not pay ~4 s of imports.
    assert len({c.data.tags["pid"] for c in children}) < 4
