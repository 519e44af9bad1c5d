"""common/trial/checkpoint.py: the two checkpoint files and their weights_only loading."""

from __future__ import annotations

import pickle

import pytest
import torch

from common.base.data import load_dataset
from common.base.device import seed_everything
from common.trial.checkpoint import (
    BEST_FILE,
    CHECKPOINT_PREFIX,
    STATE_FILE,
    CheckpointError,
    candidates,
    load_checkpoint,
    save_best,
    save_state,
)
from common.trial.config import VAEConfig
from common.trial.families import FAMILIES, get


class Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def _task():
    cfg = VAEConfig(data="synthetic", latent_dim=8, base_channels=8, hidden_dim=16, val_size=64, max_epochs=1)
    return cfg, get("vae").task(cfg, load_dataset("synthetic"), torch.device("cpu"), seed_everything(0))


def test_best_and_state_round_trip(tmp_path):
    cfg, task = _task()
    save_best(tmp_path / BEST_FILE, cfg, {"epoch": 3, "model": task.export_state()})
    best = load_checkpoint(tmp_path / BEST_FILE)
    assert best["config"] == cfg.to_dict() and best["epoch"] == 3 and set(best["model"]) == {"vae"}
    gen = torch.Generator().manual_seed(5)
    save_state(tmp_path, 2, task, gen, run_id="r", trial_id="t", best=1.5, history={"x": [(1, 2.0)]})
    state = load_checkpoint(tmp_path / STATE_FILE)
    assert state["epoch"] == 2 and state["run_id"] == "r" and state["best"] == 1.5 and state["cuda_rng"] is None
    assert torch.equal(state["data_rng"], gen.get_state()) and set(state["task"]) >= {"models", "optimizers"}


def test_loading_refuses_pickled_code_and_names_truncated_or_missing_files(tmp_path, capsys):
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_checkpoint(tmp_path / "evil.pt")
    assert "pickled code ran" not in capsys.readouterr().out
    torch.save({"x": torch.zeros(1000)}, tmp_path / "cut.pt")
    data = (tmp_path / "cut.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="is missing"):
        load_checkpoint(tmp_path / "nope.pt")


def test_candidates_are_the_folder_then_the_older_ones_newest_first(tmp_path):
    for n in (1, 2, 3):
        (tmp_path / f"{CHECKPOINT_PREFIX}{n:06d}").mkdir()
    newest = tmp_path / f"{CHECKPOINT_PREFIX}000003"
    assert [p.name[-1] for p in candidates(newest)] == ["3", "2", "1"]
    assert candidates(tmp_path / "elsewhere") == [tmp_path / "elsewhere"]


# A value other than the default for every layout field (TrialConfig.layout), on each family's tiny nets.
TINY = {f.name: f.tiny for f in FAMILIES.values() if f.config.layout}
OTHER = {
    "latent_dim": 6,
    "base_channels": 6,
    "stage_mults": "2,1,3",
    "kernel_size": 3,
    "hidden_dim": 12,
    "g_channels": 6,
    "g_stage_mults": "1,2,1",
    "g_kernel_size": 5,
    "g_hidden": 12,
    "d_channels": 6,
    "d_stage_mults": "1,1,2",
    "d_kernel_size": 3,
    "d_hidden": 12,
    "minibatch_disc": 3,
    "minibatch_dim": 2,
}
LAYOUT_CASES = [(family, name) for family in TINY for name in get(family).config.layout]


def test_every_layout_field_has_a_case():
    assert {name for _, name in LAYOUT_CASES} <= set(OTHER), "add a value for the new layout field to OTHER"


@pytest.mark.parametrize("family,name", LAYOUT_CASES)
def test_each_layout_field_builds_trains_a_step_and_round_trips_a_checkpoint(tmp_path, family, name):
    spec = get(family)
    cfg = spec.config(
        data="synthetic",
        val_size=64,
        max_epochs=1,
        batch_size=64,
        train_subset=128,
        **{**TINY[family], name: OTHER[name]},
    )
    data = load_dataset("synthetic")
    task = spec.task(cfg, data, torch.device("cpu"), seed_everything(0))
    before = {k: v.clone() for k, v in task.state_dict()["models"][next(iter(task.models))].items()}
    task.train_epoch(0)
    trained = task.state_dict()["models"]
    assert any(not torch.equal(before[k], v) for k, v in trained[next(iter(task.models))].items())
    # the trial checkpoint restores every net of a fresh task of the same config exactly
    save_state(tmp_path, 1, task, torch.Generator().manual_seed(0), run_id="r", trial_id="t", best=0.0, history={})
    fresh = spec.task(cfg, data, torch.device("cpu"), seed_everything(1))
    fresh.load_state_dict(load_checkpoint(tmp_path / STATE_FILE)["task"])
    for net, state in fresh.state_dict()["models"].items():
        assert all(torch.equal(trained[net][k], v) for k, v in state.items()), net
    # and best.pt rebuilds the sampler from the saved config alone
    save_best(tmp_path / BEST_FILE, cfg, {"epoch": 1, "model": task.export_state()})
    best = load_checkpoint(tmp_path / BEST_FILE)
    z = torch.randn(2, cfg.latent_dim, generator=torch.Generator().manual_seed(2))
    sampler = spec.task.build_sampler(spec.config.from_dict(best["config"]), best["model"]).eval()
    in_memory = spec.task.build_sampler(cfg, task.export_state()).eval()
    assert torch.equal(sampler.from_latent(z), in_memory.from_latent(z))
