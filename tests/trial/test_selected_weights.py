"""The weights scored are the weights selected: a trial whose best epoch is not its last logs the
test metrics of that epoch's weights, on a fresh trial, a restored one and every family."""

from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient

from common.base.data import load_dataset
from common.base.device import seed_everything
from common.base.tracking import get_or_create_experiment, prepare_store
from common.sweep.best import best_checkpoint
from common.trial.checkpoint import snapshot
from common.trial.config import DCGANConfig, VAEConfig
from common.trial.contract import LocalSession, SweepContext
from common.trial.families import config_class, get
from common.trial.loop import run_trial

VAE = VAEConfig(data="synthetic", val_size=128, max_epochs=3, batch_size=64, eval_samples=64, probe_every=0)
DCGAN = DCGANConfig(
    data="synthetic",
    val_size=128,
    max_epochs=3,
    batch_size=64,
    eval_samples=64,
    g_channels=32,
    d_channels=16,
    g_hidden=0,
    d_hidden=0,
)


def _ctx(uri: str, metric: str) -> SweepContext:
    """mode="max" on a loss: the worst epoch, the first, is the one selected."""
    prepare_store(uri)
    exp = get_or_create_experiment(MlflowClient(uri), "selected-weights", None)
    return SweepContext(tracking_uri=uri, experiment_id=exp, parent_run_id=None, metric=metric, mode="max")


def _fresh_scores(uri: str, run_id: str) -> tuple[int, dict[str, float]]:
    """best.pt, read back from MLflow and scored on the test split by a task built from nothing else."""
    ckpt = best_checkpoint(uri, run_id)
    cfg = config_class(ckpt["config"]["family"]).from_dict(ckpt["config"])
    task = get(cfg.family).task(cfg, load_dataset(cfg.data), torch.device("cpu"), seed_everything(cfg.seed))
    scores = task.evaluate_exported(ckpt["model"], "test")
    return ckpt["epoch"], {k: v for k, v in scores.items() if k.startswith("test_")}


def _assert_logged_equal_fresh(uri: str, run_id: str, epochs: int) -> None:
    run = MlflowClient(uri).get_run(run_id)
    epoch, fresh = _fresh_scores(uri, run_id)
    assert epoch < epochs, "the test needs a selected epoch before the last"
    assert run.data.tags["test.epoch"] == str(epoch) and run.data.tags["test.weights"] == "snapshot"
    logged = {k: v for k, v in run.data.metrics.items() if k in fresh}
    assert logged.keys() == fresh.keys()
    assert logged == pytest.approx(fresh, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("cfg,metric", [(VAE, "val_mse_kl"), (DCGAN, "val_classifier_fd")], ids=["vae", "dcgan"])
def test_a_trial_whose_best_epoch_is_not_the_last_logs_that_epochs_test_scores(cfg, metric, tracking_uri, workdir):
    session = LocalSession(workdir / "t")
    run_trial(cfg, _ctx(tracking_uri, metric), session)
    _assert_logged_equal_fresh(tracking_uri, session.results[0]["mlflow_run_id"], cfg.max_epochs)


class _Killed(LocalSession):
    """Dies in epoch ``die_at``'s report, after its checkpoint: as a killed worker would."""

    def __init__(self, out_dir, die_at: int):
        super().__init__(out_dir)
        self.die_at = die_at

    def report(self, metrics, checkpoint_dir):
        super().report(metrics, checkpoint_dir)
        if metrics["epoch"] == self.die_at:
            raise OSError("killed")


def test_a_trial_restored_after_its_best_epoch_logs_that_epochs_test_scores(tracking_uri, workdir):
    ctx = _ctx(tracking_uri, "val_mse_kl")
    first = _Killed(workdir / "t", die_at=2)  # best at epoch 1; state.pt of epoch 2 carries it
    with pytest.raises(OSError):
        run_trial(VAE, ctx, first)
    run_trial(VAE, ctx, LocalSession(workdir / "t", resume_from=first.latest_checkpoint))
    _assert_logged_equal_fresh(tracking_uri, first.results[0]["mlflow_run_id"], VAE.max_epochs)


def test_a_snapshot_is_a_cpu_copy_that_later_steps_cannot_touch():
    net = torch.nn.Linear(3, 2)
    state = {"g": net.state_dict(), "extra": [torch.ones(2)], "step": 4}
    kept = snapshot(state)
    with torch.no_grad():
        net.weight.add_(1.0)
    assert not torch.equal(kept["g"]["weight"], net.weight)
    assert torch.equal(kept["g"]["weight"] + 1.0, net.weight)
    assert kept["step"] == 4 and kept["extra"][0].data_ptr() != state["extra"][0].data_ptr()
    assert type(kept["g"]) is type(state["g"])
