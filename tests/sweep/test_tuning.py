"""common/sweep/tuning.py's changes to Ray Tune's stock parts: ASHA waits for a beta schedule to settle,
the Optuna searcher is told that an early-stopped trial was PRUNED; the space picks Optuna's sampler;
PBT and PB2 sweeps clone the weaker trials and tag each clone on its own run."""

from __future__ import annotations

import re

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.distributions import FloatDistribution
from real_sweeps import ROOT

from common.base import compat
from common.sweep.driver import SweepOptions
from common.sweep.tuning import PrunedAwareOptunaSearch, ScheduleAwareASHA, next_sync, population_based
from trainables.sweep import run


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


# ---- in real sweeps: the searcher's sampler, and the population-based schedulers ------------------
@pytest.mark.parametrize("sampler,expected", [("random", "RandomSampler"), ("tpe", "TPESampler")])
def test_the_space_picks_optunas_sampler(sampler, expected, ray_session, workdir, tracking_uri, monkeypatch):
    """``sampler = "random"`` is the baseline bench/search.py compares TPE (+ ASHA) with."""
    from ray.tune.search.optuna import OptunaSearch

    seen = []
    real_setup = OptunaSearch._setup_study

    def spy(self, *a, **kw):
        real_setup(self, *a, **kw)
        seen.append(type(compat.optuna_search_study(self).sampler).__name__)
        raise KeyboardInterrupt  # stop here: the sampler is all this test is about

    monkeypatch.setattr(OptunaSearch, "_setup_study", spy)
    space = workdir / "space.py"
    space.write_text((ROOT / "sweeps" / "vae_beta.py").read_text() + f"\nsampler = {sampler!r}\n")
    with pytest.raises(KeyboardInterrupt):
        run(
            SweepOptions(
                space=str(space),
                data="synthetic",
                tracking_uri=tracking_uri,
                num_samples=1,
                storage=str(workdir / "rr"),
                report=False,
                eval_n=0,
                overrides=(("val_size", "128"),),
            )
        )
    assert seen == [expected]


PBT_SPACE = """
family = "dcgan"
metric = "val_classifier_fd"
mode = "min"
num_samples = 4
max_epochs = 4
defaults = {"g_channels": 16, "d_channels": 16, "g_hidden": 0, "d_hidden": 0, "batch_size": 64, "eval_samples": 64,
            "probe_every": 0}
scheduler = {"kind": "pbt", "perturbation_interval": 1, "quantile_fraction": 0.5, "synch": True,
             "mutations": {"lr_g": ("log", 1e-4, 5e-4), "lr_ratio": ("uniform", 1.0, 4.0), "beta1": [0.0, 0.5]}}
resources = {"cpu": 1}
"""


# PB2 takes ranges only (its GP models them linearly): the same space with beta1 as a range.
PB2_SPACE = (
    PBT_SPACE.replace('"kind": "pbt"', '"kind": "pb2"')
    .replace('"lr_g": ("log", 1e-4, 5e-4)', '"lr_g": ("uniform", 1e-4, 5e-4)')
    .replace('"beta1": [0.0, 0.5]', '"beta1": ("uniform", 0.0, 0.5)')
)


@pytest.mark.parametrize("kind", ["pbt", "pb2"])
@pytest.mark.parametrize("synch", [True, False, None])
def test_population_schedulers_are_asynchronous_unless_the_space_asks_for_synch(kind, synch):
    scheduler = {"kind": kind, "perturbation_interval": 2, "mutations": {"lr_g": ("uniform", 1e-4, 5e-4)}}
    if synch is not None:
        scheduler["synch"] = synch
    tune_scheduler, space = population_based(scheduler)
    assert getattr(tune_scheduler, compat.PBT_SYNCH_ATTR) is bool(synch) and set(space) == {"lr_g"}


def test_synchronous_pbt_moves_its_next_sync_past_a_population_that_is_already_there():
    # Ray sets the next sync to the latest trial's time; a resumed population all at epoch 4 with
    # the next sync at 4 has no trial behind it, so none would be chosen to run: one interval on.
    assert next_sync(4, [4, 4, 4], interval=1) == 5
    assert next_sync(6, [4, 5, 6], interval=2) == 6  # trials behind it: Ray's value stands
    assert next_sync(3, [], interval=1) == 3


# A whole PBT sweep takes a minute: both kinds are slow (make test-slow); make test keeps the clone's
# trial-level checks (tests/trial/test_loop.py), and test_resume_pbt.py resumes PBT under faults.
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pbt", "pb2"])
def test_a_pbt_sweep_clones_the_weaker_trials_and_tags_each_clone_on_its_own_run(
    ray_session, workdir, tracking_uri, kind
):
    assert PB2_SPACE.count("uniform") == 3 and '"pb2"' in PB2_SPACE  # the replacements above all applied
    (workdir / "pbt.py").write_text(PBT_SPACE if kind == "pbt" else PB2_SPACE)
    summary = run(
        SweepOptions(
            space=str(workdir / "pbt.py"),
            data="synthetic",
            tracking_uri=tracking_uri,
            storage=str(workdir / "ray_results"),
            report=False,
            eval_n=0,
            overrides=(("val_size", "128"),),
        )
    )
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("pbt").experiment_id
    trials = client.search_runs([exp], "tags.`sweep.role` = 'trial'")
    assert len(trials) == 4 and summary.best["dcgan"].mlflow_run_id in {t.info.run_id for t in trials}
    clones = [(t, v) for t in trials for k, v in t.data.tags.items() if re.fullmatch(r"pbt\.clone\.\d+", k)]
    assert clones, "with 4 trials, quantile 0.5 and a perturbation every epoch, some trial must be cloned"
    ids = {t.data.tags["trial_id"] for t in trials}
    for t, lineage in clones:
        donor = re.fullmatch(r"from trial (\S+) at epoch (\d); config now (.*)", lineage)
        assert donor and donor[1] in ids - {t.data.tags["trial_id"]} and "lr_g=" in donor[3], lineage
        now = dict(kv.split("=") for kv in donor[3].split(", "))
        if kind == "pb2":  # the bandit's choice stays inside the bounds
            assert 1e-4 <= float(now["lr_g"]) <= 5e-4 and 1.0 <= float(now["lr_ratio"]) <= 4.0, lineage
            assert 0.0 <= float(now["beta1"]) <= 0.5, lineage
        steps = sorted(m.step for m in client.get_metric_history(t.info.run_id, "val_classifier_fd"))
        assert steps == [1, 2, 3, 4]  # its own run goes on to the last epoch, one point per step; no second run
    assert all(t.data.tags["trial_status"] == "completed" for t in trials)


def test_the_searchers_sampler_states_its_settings():
    import optuna

    from common.sweep.tuning import TPE, optuna_sampler

    tpe, said = optuna_sampler(None, 7)
    assert isinstance(tpe, optuna.samplers.TPESampler) and said.startswith("TPESampler(seed=7, ")
    assert all(f"{k}={v}" in said for k, v in TPE.items())
    rnd, said = optuna_sampler("random", 7)
    assert isinstance(rnd, optuna.samplers.RandomSampler) and said == "RandomSampler(seed=7)"


def test_the_parent_records_the_versions_that_shape_a_sweep():
    import importlib.metadata
    import platform

    from common.base.run_context import VERSIONED, version_tags

    tags = version_tags()
    assert tags["versions.python"] == platform.python_version()
    assert {f"versions.{n}": importlib.metadata.version(n) for n in VERSIONED}.items() <= tags.items()
