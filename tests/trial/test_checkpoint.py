"""common/trial/checkpoint.py: the two checkpoint files and their weights_only loading."""

from __future__ import annotations

import pickle

import pytest
import torch

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
from common.trial.data import load_dataset
from common.trial.device import seed_everything
from common.trial.families import get


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
