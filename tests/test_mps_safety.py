"""Evaluation and training on an accelerator, checked on this CPU: no float64 on a device that
lacks it, one clear error when a device op fails, features cached per device, TF32 off.

Apple's MPS backend has no float64; a ``.double()`` on the device raises ``TypeError`` at the
first evaluation. CI has no Mac, so ``fake_mps.FakeMPS`` tags the tensors that would live on the
device and refuses float64 on them. The trial runs end to end (train, validation scores, probe,
the test-split scores of its best epoch, figures), then the final stage's Inception evaluation.
"""

from __future__ import annotations

import json

import pytest
import torch
from fake_mps import FakeMPS, opaque
from mlflow.tracking import MlflowClient

import common.base.device
import common.metrics.evaluation
from common.base.data import load_dataset
from common.base.device import DeviceError
from common.base.tracking import get_or_create_experiment, prepare_store
from common.trial.checkpoint import BEST_FILE, load_checkpoint
from common.trial.config import DCGANConfig, VAEConfig, VAEGANConfig
from common.trial.contract import LocalSession, SweepContext
from common.trial.families import evaluate_checkpoint
from common.trial.loop import run_trial

SMALL = dict(data="synthetic", val_size=64, max_epochs=1, batch_size=32, eval_samples=32, device="mps")
CONFIGS = {
    "vae": (VAEConfig(**SMALL, probe_every=1), "val_mse_kl"),
    "dcgan": (
        DCGANConfig(**SMALL, g_channels=16, d_channels=16, g_hidden=0, d_hidden=0, probe_every=1),
        "val_classifier_fd",
    ),
    "vaegan": (VAEGANConfig(**SMALL, probe_every=1), "val_classifier_fd"),
}


@pytest.fixture
def fake_mps(monkeypatch):
    monkeypatch.setattr(common.base.device, "mps_available", lambda: True)
    with FakeMPS():
        yield


def test_the_simulated_device_refuses_float64(fake_mps):
    x = torch.ones(4).to("mps")
    with pytest.raises(TypeError, match="float64"):
        x.double()
    x.float().cpu().double()  # the CPU copy may


# The VAE-GAN's trial is the slowest and shares its nets' code with the two others: make test-slow.
@pytest.mark.parametrize("family", ["vae", "dcgan", pytest.param("vaegan", marks=pytest.mark.slow)])
def test_a_trial_on_mps_does_no_float64_work_on_the_device(family, fake_mps, tracking_uri, workdir):
    cfg, metric = CONFIGS[family]
    prepare_store(tracking_uri)
    exp = get_or_create_experiment(MlflowClient(tracking_uri), "mps", None)
    session = LocalSession(workdir / family)
    run_trial(
        cfg,
        SweepContext(tracking_uri=tracking_uri, experiment_id=exp, parent_run_id=None, metric=metric, mode="min"),
        session,
    )
    assert session.results and session.results[-1].get("diverged") is None


def test_the_final_stage_on_mps_does_no_float64_work_on_the_device(fake_mps, tracking_uri, workdir, monkeypatch):
    resample, input_range = common.metrics.evaluation._fid_helper()  # TorchScript: outside the mode
    monkeypatch.setattr(common.metrics.evaluation, "_fid_helper", lambda: (opaque(resample), input_range))
    cfg, metric = CONFIGS["vae"]
    prepare_store(tracking_uri)
    exp = get_or_create_experiment(MlflowClient(tracking_uri), "mps", None)
    session = LocalSession(workdir / "trial")
    run_trial(
        cfg,
        SweepContext(tracking_uri=tracking_uri, experiment_id=exp, parent_run_id=None, metric=metric, mode="min"),
        session,
    )
    best = MlflowClient(tracking_uri).download_artifacts(
        session.results[-1]["mlflow_run_id"], f"checkpoints/{BEST_FILE}", str(workdir)
    )
    out = evaluate_checkpoint(
        load_checkpoint(best),
        load_dataset("synthetic"),
        n=8,
        metrics=("fid", "kid"),
        indices=torch.arange(12),
        device="mps",
        cache_dir=None,
    )
    assert set(out) >= {"fid", "kid", "recon_fid", "recon_kid"}


def test_a_trial_that_fails_on_its_device_says_which_device_and_which_line(
    fake_mps, tracking_uri, workdir, monkeypatch
):
    import common.trial.tasks.vae

    real = common.trial.tasks.vae.recon_mse
    monkeypatch.setattr(common.trial.tasks.vae, "recon_mse", lambda x_hat, x: real(x_hat, x).double())  # a float64 bug
    cfg, metric = CONFIGS["vae"]
    prepare_store(tracking_uri)
    client = MlflowClient(tracking_uri)
    exp = get_or_create_experiment(client, "mps", None)
    with pytest.raises(DeviceError) as err:
        run_trial(
            cfg,
            SweepContext(tracking_uri=tracking_uri, experiment_id=exp, parent_run_id=None, metric=metric, mode="min"),
            LocalSession(workdir / "bad"),
        )
    message = str(err.value)
    assert "\n" not in message and message.startswith("trial failed on mps at epoch 1 in common/trial/tasks/")
    assert "float64" in message
    (run,) = client.search_runs([exp])
    assert run.info.status == "FAILED" and run.data.tags["trial_status"] == "failed"
    assert run.data.tags["failed_reason"] == message


def test_reference_features_are_cached_per_device_never_mixed(tmp_path, monkeypatch):
    from common.metrics.evaluation import Evaluator

    data = load_dataset("synthetic")
    cpu = Evaluator(data, extractor="randconv256", indices=torch.arange(16), device="cpu", cache_dir=tmp_path)
    cpu.real_features()
    monkeypatch.setattr(common.base.device, "mps_available", lambda: True)
    with FakeMPS():
        mps = Evaluator(data, extractor="randconv256", indices=torch.arange(16), device="mps", cache_dir=tmp_path)
        mps.real_features()
    keys = sorted(json.loads(p.read_text())["device"] for p in tmp_path.glob("*.json"))
    assert keys == ["cpu", "mps"]  # two files: the MPS run did not read the CPU's features


def test_every_evaluation_runs_with_tf32_off():
    from common.metrics.evaluation import Evaluator

    seen = []

    class Probe(torch.nn.Module):
        name = "tf32-probe"

        def forward(self, x):
            seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
            return x.flatten(1)[:, :4]

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # as a user may set it
    try:
        Evaluator(load_dataset("synthetic"), extractor=Probe(), indices=torch.arange(4), cache_dir=None).real_features()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
    assert seen and set(seen) == {(False, False)}
