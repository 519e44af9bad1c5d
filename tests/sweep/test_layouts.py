"""common/sweep/layouts.py: every layout a search space can draw, walked and checked against the
slides' parameter budget before a sweep starts."""

from __future__ import annotations

import textwrap

import optuna
import pytest

from common.base.errors import UserError
from common.sweep.layouts import MAX_LAYOUTS, check_layouts, walk
from common.sweep.space import check_configs, load_space
from common.trial.config import ConfigError, VAEConfig

LAYOUT = frozenset(VAEConfig.layout)


def _conditional(trial):
    trial.suggest_float("lr", 1e-4, 1e-3, log=True)  # not a layout field: one value suffices
    trial.suggest_categorical("batch_size", [32, 64])
    if trial.suggest_categorical("hidden_dim", [0, 256]) == 0:
        trial.suggest_categorical("kernel_size", [4, 5])
        return {"base_channels": 48}
    trial.suggest_int("latent_dim", 64, 128, step=32)
    return None


def test_walk_meets_every_branch_of_a_conditional_space_once():
    found = walk(_conditional, LAYOUT)
    assert found == [
        {"hidden_dim": 0, "kernel_size": 4, "base_channels": 48},
        {"hidden_dim": 0, "kernel_size": 5, "base_channels": 48},
        {"hidden_dim": 256, "latent_dim": 64},
        {"hidden_dim": 256, "latent_dim": 96},
        {"hidden_dim": 256, "latent_dim": 128},
    ]


def test_walk_takes_a_dict_of_distributions_and_refuses_float_layouts_and_huge_spaces():
    dists = {
        "kernel_size": optuna.distributions.CategoricalDistribution([3, 4]),
        "hidden_dim": optuna.distributions.IntDistribution(0, 2),
        "lr": optuna.distributions.FloatDistribution(1e-4, 1e-3),
    }
    assert len(walk(dists, LAYOUT)) == 6
    with pytest.raises(UserError, match="latent_dim is searched with suggest_float"):
        walk(lambda t: t.suggest_float("latent_dim", 8, 64), LAYOUT)
    with pytest.raises(UserError, match=f"more than {MAX_LAYOUTS} layouts"):
        walk(lambda t: {f: t.suggest_int(f, 1, 20) for f in ("latent_dim", "hidden_dim", "base_channels")}, LAYOUT)


def test_check_layouts_refuses_the_first_layout_outside_the_budget_and_names_it():
    budget = VAEConfig()
    check_layouts(budget, "slides", lambda t: t.suggest_categorical("kernel_size", [3, 4]))  # 1.29M and 1.43M
    with pytest.raises(ConfigError, match=r"can draw kernel_size=5: vae layout has 1,6\d\d,\d{3} parameters"):
        check_layouts(budget, "slides", lambda t: t.suggest_categorical("kernel_size", [3, 4, 5]))
    check_layouts(budget, "slides", lambda t: t.suggest_categorical("kernel_size", [5]), pinned={"kernel_size"})
    check_layouts(budget, "", lambda t: t.suggest_categorical("kernel_size", [5]))  # no budget declared


def _space_file(tmp_path, body: str):
    path = tmp_path / "space.py"
    path.write_text(textwrap.dedent(body))
    return load_space(path)


def test_a_space_that_can_draw_an_out_of_budget_layout_is_refused_before_the_sweep(tmp_path):
    space = _space_file(
        tmp_path,
        """
        def space(trial):
            trial.suggest_categorical("hidden_dim", [256, 0])
        family = "vae"
        metric = "val_mse_kl"
        mode = "min"
        defaults = {"param_budget": "slides", "data": "synthetic"}
        """,
    )
    with pytest.raises(ConfigError, match="can draw hidden_dim=0: vae layout has 726,787 parameters"):
        check_configs(space, {}, seed=0)
    assert check_configs(space, {"hidden_dim": 256}, seed=0)[0]["hidden_dim"] == 256  # --set pins it


@pytest.mark.parametrize("name", ["slides", "vae_budget", "gan_budget", "winners", "vae_layouts", "gan_layouts"])
def test_the_shipped_budget_spaces_declare_the_budget_and_every_layout_they_draw_fits(name):
    space = load_space(f"sweeps/{name}.py")
    configs = check_configs(space, {}, seed=0)
    assert configs and all(c["param_budget"] == "slides" for c in configs)
