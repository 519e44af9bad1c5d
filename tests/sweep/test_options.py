"""common/sweep/options.py: ``plan`` and ``fixed_values`` (validation only: nothing starts)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from common.sweep.space import load_space
from common.trial.config import ConfigError

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"


@pytest.fixture(scope="module")
def sweep():
    import common.sweep.options  # imports mlflow: only the tests below pay for it

    return common.sweep.options


def test_fixed_values_cli_flags_and_smoke_test(sweep):
    space = load_space(SWEEPS / "gan_ttur.py")
    opts = sweep.SweepOptions(space="x", overrides=(("lr_ratio", "4"),), seed=3, data="synthetic")
    assert sweep.fixed_values(space, opts) == {"lr_ratio": "4", "seed": 3, "data": "synthetic"}
    smoke = sweep.fixed_values(space, sweep.SweepOptions(space="x", smoke_test=True))
    assert smoke["data"] == "synthetic" and smoke["max_epochs"] == 1
    # an explicit flag or --set wins over --smoke-test's defaults (the max_epochs param says what ran)
    given = sweep.SweepOptions(
        space="x", smoke_test=True, max_epochs=2, data="cifar10", overrides=(("val_size", "64"),)
    )
    assert sweep.fixed_values(space, given) == {
        "data": "cifar10",
        "max_epochs": 2,
        "eval_samples": 64,
        "val_size": "64",
    }


def test_a_relative_data_path_becomes_absolute(sweep, tmp_path, monkeypatch):
    """Tune runs each trial in its own folder: a path relative to where the user typed it
    would not be found there (a real failure: every trial errored with 'does not exist')."""
    monkeypatch.chdir(tmp_path)
    space = load_space(SWEEPS / "gan_ttur.py")
    for given in ("data/cifar.tar.gz", "./data/cifar.tar.gz", "../" + tmp_path.name + "/data/cifar.tar.gz"):
        assert sweep.fixed_values(space, sweep.SweepOptions(space="x", data=given))["data"] == str(
            tmp_path / "data" / "cifar.tar.gz"
        )
    fixed = sweep.fixed_values(space, sweep.SweepOptions(space="x", overrides=(("data", "d.tar.gz"),)))
    assert fixed["data"] == str(tmp_path / "d.tar.gz")
    assert sweep.fixed_values(space, sweep.SweepOptions(space="x", data="cifar10"))["data"] == "cifar10"


def test_plan_uses_space_max_epochs_unless_given(sweep):
    path = str(SWEEPS / "gan_ttur.py")
    planned = sweep.plan(sweep.SweepOptions(space=path, data="synthetic"))
    (cfg,), fixed = planned.configs, planned.fixed
    assert cfg["max_epochs"] == 10 and fixed["max_epochs"] == 10
    (cfg,) = sweep.plan(sweep.SweepOptions(space=path, data="synthetic", max_epochs=3)).configs
    assert cfg["max_epochs"] == 3


def test_plan_set_overrides_win(sweep):
    path = str(SWEEPS / "gan_ttur.py")
    (cfg,) = sweep.plan(sweep.SweepOptions(space=path, overrides=(("latent_dim", "64"), ("lr_ratio", "4")))).configs
    assert cfg["latent_dim"] == 64  # the space's defaults say 100
    assert cfg["lr_ratio"] == 4.0  # the search would have sampled it
    assert cfg["seed"] == 42


def test_plan_slides_preset_keeps_per_run_epochs(sweep):
    configs = sweep.plan(sweep.SweepOptions(space=str(SWEEPS / "slides.py"))).configs
    assert [c["max_epochs"] for c in configs] == [20, 40]


@pytest.mark.parametrize("seed", ["abc", "1.5"])
def test_plan_bad_set_seed_raises_config_error(sweep, seed):
    with pytest.raises(ConfigError, match="seed"):
        sweep.plan(sweep.SweepOptions(space=str(SWEEPS / "gan_ttur.py"), overrides=(("seed", seed),)))


def test_an_explicit_num_samples_wins_over_the_smoke_tests_two(sweep):
    space = str(SWEEPS / "gan_ttur.py")
    assert sweep.plan(sweep.SweepOptions(space=space, smoke_test=True)).num_samples == 2
    assert sweep.plan(sweep.SweepOptions(space=space, smoke_test=True, num_samples=3)).num_samples == 3


def test_the_plan_resolves_the_experiment_and_the_per_trial_resources_once(sweep):
    space = str(SWEEPS / "gan_ttur.py")
    planned = sweep.plan(sweep.SweepOptions(space=space))
    assert (planned.experiment, planned.cpus_per_trial) == ("gan_ttur", load_space(space).resources["cpu"])
    flags = sweep.plan(sweep.SweepOptions(space=space, experiment="mine", cpus_per_trial=2, gpus_per_trial=0.5))
    assert (flags.experiment, flags.cpus_per_trial, flags.gpus_per_trial) == ("mine", 2, 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        planned.experiment = "other"
