"""common/trial/config/base.py's layout fields and the slides' parameter budget (param_budget):
the counts are the built nets', the edge lies at ±10%, the widths are validated."""

from __future__ import annotations

import pytest

from common.trial.config import ConfigError, DCGANConfig, VAEConfig, VAEGANConfig
from common.trial.families import FAMILIES


def test_the_slides_budget_refuses_a_layout_outside_ten_percent_and_names_count_and_budget():
    # the shipped layouts lie within it: VAE 1.43M of 1.38M, G 1.22M of 1.24M, D 2.76M of 2.76M
    assert VAEConfig(param_budget="slides").param_counts() == {"n_params_vae": 1_431_811}
    DCGANConfig(param_budget="slides")
    with pytest.raises(
        ConfigError,
        match=r"726,787 parameters in 'vae', outside the slides' budget of 1,380,000 ± 10% \(1,242,000 to 1,518,000\)",
    ):
        VAEConfig(param_budget="slides", hidden_dim=0)
    with pytest.raises(ConfigError, match=r"parameters in 'd', outside the slides' budget of 2,760,000"):
        DCGANConfig(param_budget="slides", d_hidden=0)
    with pytest.raises(ConfigError, match=r"in 'g'"):
        DCGANConfig(param_budget="slides", g_kernel_size=5, g_channels=192)
    with pytest.raises(ConfigError, match="no parameter count for the vaegan"):
        VAEGANConfig(param_budget="slides")
    VAEConfig(hidden_dim=0)  # no budget declared: any size


def test_the_budget_edge_lies_at_ten_percent(monkeypatch):
    import common.base.slides

    n = VAEConfig().param_counts()["n_params_vae"]
    monkeypatch.setitem(common.base.slides.PARAMS, "n_params_vae", n / 1.0999)
    VAEConfig(param_budget="slides")  # +9.99%
    monkeypatch.setitem(common.base.slides.PARAMS, "n_params_vae", n / 1.1001)
    with pytest.raises(ConfigError, match="outside the slides' budget"):
        VAEConfig(param_budget="slides")


@pytest.mark.parametrize("cls", [VAEConfig, DCGANConfig])
def test_param_counts_are_those_of_the_nets_the_task_builds(cls):
    import torch

    from common.base.data import load_dataset
    from common.base.device import seed_everything
    from common.trial.models import count_params

    cfg = (
        cls(data="synthetic", val_size=64, kernel_size=3)
        if cls is VAEConfig
        else cls(data="synthetic", val_size=64, d_kernel_size=5, g_stage_mults="1,2,1")
    )
    task = FAMILIES[cfg.family].task(cfg, load_dataset("synthetic"), torch.device("cpu"), seed_everything(0))
    assert cfg.param_counts() == {f"n_params_{k}": count_params(m) for k, m in task.models.items()}


@pytest.mark.parametrize("value", ["1,2", "1,2,4,8", "a,b,c", "1,0,2", "1,-2,4", "1,nan,2", ""])
def test_stage_mults_must_be_three_positive_numbers(value):
    with pytest.raises(ConfigError, match="must be three positive numbers"):
        VAEConfig(stage_mults=value)
    with pytest.raises(ConfigError, match="d_stage_mults"):
        DCGANConfig(d_stage_mults=value)
