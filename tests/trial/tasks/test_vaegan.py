"""common/trial/tasks/vaegan.py: the VAE-GAN (Larsen et al. 2016) losses, optimizer isolation, and its
trial through the loop (deterministic, resumable, every metric logged)."""

from __future__ import annotations

import math

import pytest
import torch
from mlflow.tracking import MlflowClient

from common.base.data import load_dataset, to_unit_range
from common.base.device import seed_everything
from common.base.tracking import get_or_create_experiment, prepare_store
from common.metrics.maths import active_units
from common.trial.config import VAEGANConfig
from common.trial.contract import LocalSession, SweepContext
from common.trial.families import FAMILIES
from common.trial.loop import run_trial
from common.trial.losses import gaussian_kl
from common.trial.models import ConvVAE, Discriminator
from common.trial.tasks.vaegan import VAEGANTask, feature_recon, split_vae_params, vaegan_d_loss, vaegan_g_loss

TIMING = {"epoch_time_s", "train_time_s", "peak_rss_mb", "mlflow_run_id"}  # measured, not computed
TRAIN_METRICS = {
    "g_loss",
    "d_loss",
    "loss_ratio",
    "d_real",
    "d_fake",
    "d_recon",
    "train_loss",
    "train_kl",
    "train_recon",
    "train_feature_recon",
}
EVAL_METRICS = {"val_mse_kl", "val_bpd", "val_recon", "val_kl", "val_active_units", "val_classifier_fd"}
# Tiny widths: the whole file runs in well under a minute on 2 CPU cores.
TINY = dict(
    data="synthetic",
    val_size=128,
    batch_size=64,
    eval_samples=64,
    latent_dim=8,
    base_channels=8,
    hidden_dim=16,
    d_channels=8,
    d_hidden=16,
)


# ---- the VAE-GAN's losses and parameter groups ---------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [0, 1, 2, 3])
def test_feature_recon_is_zero_for_identical_images_and_grads_only_x_hat(layer):
    torch.manual_seed(0)
    d = Discriminator(8, 16)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    same = feature_recon(d, x.clone(), x, layer)
    assert same.shape == (4,) and torch.equal(same, torch.zeros(4))
    x_hat = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1).requires_grad_()
    x_req = x.clone().requires_grad_()
    diff = feature_recon(d, x_hat, x_req, layer)
    assert (diff > 0).all()
    diff.sum().backward()
    assert x_hat.grad is not None and x_hat.grad.abs().sum() > 0
    if layer == 0:  # below D's first BatchNorm, x enters only as the detached target D_l(x)
        assert x_req.grad is None or not x_req.grad.any()


def test_gan_losses_at_chance():
    zeros = torch.zeros(5)
    assert vaegan_d_loss(zeros, zeros, zeros).item() == pytest.approx(3 * math.log(2))
    assert vaegan_g_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))


def test_split_vae_params_covers_every_parameter_once():
    for hidden in (0, 16):
        m = ConvVAE(8, 8, hidden)
        enc, dec = split_vae_params(m)
        ids = [id(p) for p in enc + dec]
        assert len(ids) == len(set(ids)) == len(list(m.parameters()))
        assert {id(p) for p in m.fc_mu.parameters()} <= {id(p) for p in enc}
        assert {id(p) for p in m.decoder.parameters()} <= {id(p) for p in dec}


# ---- task -----------------------------------------------------------------------------------
def _task(workdir, **kw) -> VAEGANTask:
    cfg = VAEGANConfig(**{**TINY, **kw})
    return VAEGANTask(cfg, load_dataset("synthetic"), torch.device("cpu"), seed_everything(cfg.seed))


def _snapshot(task: VAEGANTask) -> dict[str, list[torch.Tensor]]:
    return {
        "enc": [p.detach().clone() for p in task.enc_params],
        "dec": [p.detach().clone() for p in task.dec_params],
        "d": [p.detach().clone() for p in task.d.parameters()],
    }


def test_optimizers_hold_disjoint_groups_and_are_checkpointed(workdir):
    task = _task(workdir)
    groups = {k: {id(p) for g in o.param_groups for p in g["params"]} for k, o in task.optimizers.items()}
    assert set(groups) == {"enc", "dec", "d"}
    assert groups["enc"] == {id(p) for p in task.enc_params} and groups["dec"] == {id(p) for p in task.dec_params}
    assert groups["d"] == {id(p) for p in task.d.parameters()}
    assert groups["enc"] | groups["dec"] == {id(p) for p in task.model.parameters()}
    assert not (groups["enc"] & groups["dec"])
    assert task.optimizers["d"].param_groups[0]["lr"] == pytest.approx(task.cfg.lr_d)
    state = task.state_dict()
    assert set(state["models"]) == {"vae", "d"} and set(state["optimizers"]) == {"enc", "dec", "d"}
    assert set(task.export_state()) == {"vae", "d"}
    assert isinstance(FAMILIES["vaegan"].task.build_sampler(task.cfg, task.export_state()), type(task.model))


@pytest.mark.parametrize("own", ["enc", "dec", "d"])
def test_each_optimizer_updates_only_its_own_parameters(workdir, own):
    task = _task(workdir)
    for name, opt in task.optimizers.items():
        if name != own:
            opt.step = lambda *a, **k: None  # freeze the other two groups
    before = _snapshot(task)
    out = task.train_epoch(0)
    after = _snapshot(task)
    for name in before:
        changed = any(not torch.equal(a, b) for a, b in zip(before[name], after[name]))
        assert changed == (name == own), f"{own} step changed {name}" if changed else f"{own} did not train"
    assert set(out) == TRAIN_METRICS and all(math.isfinite(v) for v in out.values())


def test_the_gan_term_never_reaches_the_encoder(workdir, monkeypatch):
    """Decoder and D frozen: scaling the decoder's GAN term must leave the encoder's update unchanged."""
    import common.trial.tasks.vaegan as mod

    def encoder_after_one_epoch():
        task = _task(workdir)
        task.opt_dec.step = task.opt_d.step = lambda *a, **k: None
        task.train_epoch(0)
        return [p.detach().clone() for p in task.enc_params]

    plain = encoder_after_one_epoch()
    g_loss = mod.vaegan_g_loss
    monkeypatch.setattr(mod, "vaegan_g_loss", lambda r, s: 100.0 * g_loss(r, s))
    scaled = encoder_after_one_epoch()
    assert all(torch.equal(a, b) for a, b in zip(plain, scaled))


def test_training_moves_the_losses_and_evaluation_has_the_vae_metrics(workdir):
    task = _task(workdir)
    out = task.train_epoch(0)
    assert 0 < out["d_real"] < 1 and 0 < out["d_fake"] < 1 and 0 < out["d_recon"] < 1
    assert out["loss_ratio"] == pytest.approx(out["g_loss"] / out["d_loss"])
    ev = task.evaluate(probe=False)  # the probe is covered by the trial test below
    assert EVAL_METRICS <= set(ev) and all(math.isfinite(v) for v in ev.values())
    assert ev["val_mse_kl"] == pytest.approx(ev["val_recon"] + ev["val_kl"])
    with torch.no_grad():  # active units of the posterior means of every validation image, counted here
        mu = task.model.encode(to_unit_range(task.val.x))[0]
    assert ev["val_active_units"] == active_units(mu) and ev["val_kl"] == pytest.approx(
        gaussian_kl(*task.model.encode(to_unit_range(task.val.x))).mean().item(), rel=1e-5
    )


# ---- the trial loop -------------------------------------------------------------------------
def _ctx(uri: str) -> SweepContext:
    prepare_store(uri)
    exp = get_or_create_experiment(MlflowClient(uri), "vaegan-tests", None)
    return SweepContext(tracking_uri=uri, experiment_id=exp, parent_run_id=None, metric="val_classifier_fd", mode="min")


def _deterministic(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMING}


def test_trial_is_deterministic_resumable_and_logs_every_metric(tracking_uri, workdir):
    cfg = VAEGANConfig(**TINY, max_epochs=2, probe_every=1)
    ctx = _ctx(tracking_uri)
    a = LocalSession(workdir / "a")
    run_trial(cfg, ctx, a)
    last = a.results[-1]
    assert TRAIN_METRICS | EVAL_METRICS | {"val_probe_acc", "epoch"} <= set(last)
    assert all(math.isfinite(v) for k, v in last.items() if k != "mlflow_run_id")

    # Same config + seed => identical metrics: a second trial (stopped after epoch 1) repeats
    # epoch 1 exactly; continued from its checkpoint (models, 3 optimizers, RNG states) it
    # repeats epoch 2 exactly too.
    first = LocalSession(workdir / "first")
    run_trial(VAEGANConfig.from_dict({**cfg.to_dict(), "max_epochs": 1}), ctx, first)
    assert _deterministic(first.results[0]) == _deterministic(a.results[0])
    resumed = LocalSession(workdir / "resumed", resume_from=first.latest_checkpoint)
    run_trial(cfg, ctx, resumed)
    assert [r["epoch"] for r in resumed.results] == [2]
    assert _deterministic(resumed.results[-1]) == _deterministic(last)

    other = LocalSession(workdir / "c")
    run_trial(VAEGANConfig.from_dict({**cfg.to_dict(), "seed": 7, "max_epochs": 1}), ctx, other)
    assert other.results[0]["val_classifier_fd"] != a.results[0]["val_classifier_fd"]

    client = MlflowClient(tracking_uri)
    run = client.get_run(last["mlflow_run_id"])
    assert run.data.params["family"] == "vaegan" and run.data.params["gamma"] == str(cfg.gamma)
    assert run.data.tags["family"] == "vaegan" and run.data.tags["trial_status"] == "completed"
    assert {"n_params_vae", "n_params_d"} <= set(run.data.metrics)
    figures = {f.path for f in client.list_artifacts(run.info.run_id, "figures")}
    assert figures == {f"figures/{n}.png" for n in ("reconstructions", "interpolations", "samples", "curves")}
    ckpt_path = client.download_artifacts(run.info.run_id, "checkpoints/best.pt", str(workdir / "dl"))
    best = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    model = ConvVAE(cfg.latent_dim, cfg.base_channels, cfg.hidden_dim)
    model.load_state_dict(best["model"]["vae"])  # what the sweep's best-model logging reconstructs
    assert best["config"]["family"] == "vaegan"
