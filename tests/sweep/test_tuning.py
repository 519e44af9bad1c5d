"""common/sweep/tuning.py's two changes to Ray Tune's stock parts: ASHA waits for a beta schedule to settle,
and the Optuna searcher is told that an early-stopped trial was PRUNED; and what ``gpu="auto"``
decides from a cluster's nodes (no Ray cluster needed: the nodes are given)."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution

import common.sweep.resources
from common.sweep.resources import MAX_PACK, gpu_plan, resolve_gpus
from common.sweep.tuning import PrunedAwareOptunaSearch, ScheduleAwareASHA


class _Trial:  # what ASHA reads of a Tune trial
    def __init__(self, trial_id):
        self.trial_id = trial_id


def _asha():
    asha = ScheduleAwareASHA(
        time_attr="training_iteration",
        metric="val_bpd",
        mode="min",
        max_t=10,
        grace_period=1,
        reduction_factor=2,
        brackets=1,
    )
    trials = [_Trial(f"t{i}") for i in range(3)]
    for t in trials:
        asha.on_trial_add(None, t)
    return asha, trials


def test_asha_never_compares_a_trial_before_its_beta_schedule_settles():
    asha, (good, warming, plain) = _asha()
    assert (
        asha.on_trial_result(None, good, {"training_iteration": 1, "val_bpd": 5.0, "beta_settled": 1.0}) == "CONTINUE"
    )
    # A warm-up trial's early objective is inflated: far worse, but not stopped while beta is still rising ...
    assert (
        asha.on_trial_result(None, good, {"training_iteration": 2, "val_bpd": 4.0, "beta_settled": 1.0}) == "CONTINUE"
    )
    assert (
        asha.on_trial_result(None, warming, {"training_iteration": 1, "val_bpd": 50.0, "beta_settled": 0.0})
        == "CONTINUE"
    )
    # ... and compared once it has settled, at the highest rung it has reached (here 2, against 4.0).
    assert (
        asha.on_trial_result(None, warming, {"training_iteration": 2, "val_bpd": 50.0, "beta_settled": 1.0}) == "STOP"
    )
    # Plain ASHA (no beta_settled key, e.g. a DCGAN) stops a bad trial at its first rung.
    assert asha.on_trial_result(None, plain, {"training_iteration": 1, "val_bpd": 99.0}) == "STOP"


def test_stock_asha_would_have_stopped_the_warming_trial():
    from ray.tune.schedulers import ASHAScheduler

    asha = ASHAScheduler(
        time_attr="training_iteration",
        metric="val_bpd",
        mode="min",
        max_t=10,
        grace_period=1,
        reduction_factor=2,
        brackets=1,
    )
    good, warming = _Trial("a"), _Trial("b")
    asha.on_trial_add(None, good)
    asha.on_trial_add(None, warming)
    asha.on_trial_result(None, good, {"training_iteration": 1, "val_bpd": 5.0})
    assert (
        asha.on_trial_result(None, warming, {"training_iteration": 1, "val_bpd": 50.0, "beta_settled": 0.0}) == "STOP"
    )


@pytest.mark.parametrize(
    "result,state",
    [
        ({"epoch": 2, "val_bpd": 5.0}, "PRUNED"),  # stopped by ASHA after 2 of 4 epochs
        ({"epoch": 4, "val_bpd": 5.0}, "COMPLETE"),
        ({"epoch": 1, "val_bpd": 1e9, "diverged": 1}, "COMPLETE"),  # the finite penalty marks the region bad
    ],
)
def test_early_stopped_trials_reach_optuna_as_pruned(result, state, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = PrunedAwareOptunaSearch(
        4,
        space={"beta": FloatDistribution(0.5, 2.0)},
        metric="val_bpd",
        mode="min",
        seed=0,
        storage=optuna.storages.RDBStorage(storage),
        study_name="s",
    )
    assert "beta" in search.suggest("t1")
    search.on_trial_result("t1", {**result, "training_iteration": result["epoch"]})
    search.on_trial_complete("t1", {**result, "training_iteration": result["epoch"]})
    (trial,) = optuna.load_study(study_name="s", storage=storage).trials
    assert trial.state.name == state
    assert trial.intermediate_values == {result["epoch"]: result["val_bpd"]}  # TPE still sees how far it got


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


def test_the_study_storage_waits_out_a_dropped_database_connection_but_not_bad_data(monkeypatch, tmp_path):
    """A PostgreSQL restart surfaces as Optuna's StorageInternalError caused by SQLAlchemy's
    OperationalError: retried (tests/test_mlflow_server.py restarts a real one under a sweep).
    Any other error is raised at once."""
    import optuna
    import sqlalchemy.exc

    from common.sweep import studies

    monkeypatch.setattr(studies.time, "sleep", lambda s: None)
    calls = []

    def flaky(self):
        calls.append(1)
        if len(calls) < 3:
            try:
                raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("terminating connection"))
            except sqlalchemy.exc.OperationalError as e:
                raise optuna.exceptions.StorageInternalError("commit failed") from e
        return "studies"

    monkeypatch.setattr(studies.ResilientRDBStorage, "get_all_studies", studies._retrying(flaky))
    storage = studies.ResilientRDBStorage(f"sqlite:///{tmp_path / 'o.db'}")
    assert storage.get_all_studies() == "studies" and len(calls) == 3
    with pytest.raises(KeyError):  # not a connection loss: no retry
        studies._retrying(lambda self: {}["x"])(storage)
    assert all(
        hasattr(getattr(studies.ResilientRDBStorage, n), "__wrapped__")
        for n in ("create_new_trial", "set_trial_state_values", "set_trial_intermediate_value", "get_all_trials")
    )
