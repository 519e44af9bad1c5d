"""common/tuning.py's two changes to Ray Tune's stock parts: ASHA waits for a beta schedule to settle,
and the Optuna searcher is told that an early-stopped trial was PRUNED (no Ray cluster needed)."""
from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution

from common.tuning import PrunedAwareOptunaSearch, ScheduleAwareASHA


class _Trial:  # what ASHA reads of a Tune trial
    def __init__(self, trial_id):
        self.trial_id = trial_id


def _asha():
    asha = ScheduleAwareASHA(time_attr="training_iteration", metric="val_bpd", mode="min", max_t=10,
                             grace_period=1, reduction_factor=2, brackets=1)
    trials = [_Trial(f"t{i}") for i in range(3)]
    for t in trials:
        asha.on_trial_add(None, t)
    return asha, trials


def test_asha_never_compares_a_trial_before_its_beta_schedule_settles():
    asha, (good, warming, plain) = _asha()
    assert asha.on_trial_result(None, good, {"training_iteration": 1, "val_bpd": 5.0, "beta_settled": 1.0}) == "CONTINUE"
    # A warm-up trial's early objective is inflated: far worse, but not stopped while beta is still rising ...
    assert asha.on_trial_result(None, good, {"training_iteration": 2, "val_bpd": 4.0, "beta_settled": 1.0}) == "CONTINUE"
    assert asha.on_trial_result(None, warming, {"training_iteration": 1, "val_bpd": 50.0,
                                                "beta_settled": 0.0}) == "CONTINUE"
    # ... and compared once it has settled, at the highest rung it has reached (here 2, against 4.0).
    assert asha.on_trial_result(None, warming, {"training_iteration": 2, "val_bpd": 50.0, "beta_settled": 1.0}) == "STOP"
    # Plain ASHA (no beta_settled key, e.g. a DCGAN) stops a bad trial at its first rung.
    assert asha.on_trial_result(None, plain, {"training_iteration": 1, "val_bpd": 99.0}) == "STOP"


def test_stock_asha_would_have_stopped_the_warming_trial():
    from ray.tune.schedulers import ASHAScheduler

    asha = ASHAScheduler(time_attr="training_iteration", metric="val_bpd", mode="min", max_t=10, grace_period=1,
                         reduction_factor=2, brackets=1)
    good, warming = _Trial("a"), _Trial("b")
    asha.on_trial_add(None, good)
    asha.on_trial_add(None, warming)
    asha.on_trial_result(None, good, {"training_iteration": 1, "val_bpd": 5.0})
    assert asha.on_trial_result(None, warming, {"training_iteration": 1, "val_bpd": 50.0, "beta_settled": 0.0}) == "STOP"


@pytest.mark.parametrize("result,state", [
    ({"epoch": 2, "val_bpd": 5.0}, "PRUNED"),  # stopped by ASHA after 2 of 4 epochs
    ({"epoch": 4, "val_bpd": 5.0}, "COMPLETE"),
    ({"epoch": 1, "val_bpd": 1e9, "diverged": 1}, "COMPLETE"),  # the finite penalty marks the region bad
])
def test_early_stopped_trials_reach_optuna_as_pruned(result, state, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = PrunedAwareOptunaSearch(4, space={"beta": FloatDistribution(0.5, 2.0)}, metric="val_bpd", mode="min",
                                     seed=0, storage=optuna.storages.RDBStorage(storage), study_name="s")
    assert "beta" in search.suggest("t1")
    search.on_trial_result("t1", {**result, "training_iteration": result["epoch"]})
    search.on_trial_complete("t1", {**result, "training_iteration": result["epoch"]})
    (trial,) = optuna.load_study(study_name="s", storage=storage).trials
    assert trial.state.name == state
    assert trial.intermediate_values == {result["epoch"]: result["val_bpd"]}  # TPE still sees how far it got
