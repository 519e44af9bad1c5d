"""Issue 16's levers beyond the slides, on tiny nets: G's EMA, R1, the VAE's lr schedule and Adam
betas. Each is off by default, and off is the slides' computation (tests/test_gan_mitigations.py
checks the DCGAN step bit for bit against the original loop; the VAE's is checked here)."""

from __future__ import annotations

import math

import pytest
import torch

from common.trial.config import ConfigError, DCGANConfig, VAEConfig
from common.trial.data import load_dataset, to_unit_range
from common.trial.device import seed_everything
from common.trial.losses import lr_factor, r1_penalty, vae_loss
from common.trial.tasks.dcgan import DCGANTask
from common.trial.tasks.vae import VAETask

GAN = dict(
    data="synthetic",
    val_size=128,
    batch_size=64,
    eval_samples=64,
    g_channels=16,
    d_channels=8,
    g_hidden=0,
    d_hidden=16,
    latent_dim=8,
)
VAE = dict(
    data="synthetic",
    val_size=128,
    batch_size=64,
    eval_samples=64,
    base_channels=8,
    hidden_dim=0,
    latent_dim=8,
    precision="fp32",
)


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic")


def _gan(data, **kw) -> DCGANTask:
    cfg = DCGANConfig(**{**GAN, **kw})
    return DCGANTask(cfg, data, torch.device("cpu"), seed_everything(cfg.seed))


def _vae(data, **kw) -> VAETask:
    cfg = VAEConfig(**{**VAE, **kw})
    return VAETask(cfg, data, torch.device("cpu"), seed_everything(cfg.seed))


# ---- EMA of G ------------------------------------------------------------------------------------
def test_the_ema_equals_a_manual_exponential_average_of_gs_weights(data):
    decay = 0.9
    task = _gan(data, ema_decay=decay)
    manual, snapshots = None, []
    step = task.opt_g.step

    def recording_step(*args, **kwargs):  # G's weights after each of its steps
        out = step(*args, **kwargs)
        snapshots.append({k: v.detach().clone() for k, v in task.g.state_dict().items()})
        return out

    task.opt_g.step = recording_step
    task.train_epoch(0)
    for snap in snapshots:  # AveragedModel's first update copies; then ema = d * ema + (1 - d) * w
        manual = (
            snap
            if manual is None
            else {
                k: (decay * manual[k] + (1 - decay) * snap[k] if snap[k].is_floating_point() else snap[k]) for k in snap
            }
        )
    ema = task.sampler.state_dict()
    assert len(snapshots) == task.train.num_batches(task.cfg.batch_size)
    floats = [k for k, v in manual.items() if v.is_floating_point()]  # weights and BatchNorm statistics
    for k in floats:
        torch.testing.assert_close(ema[k], manual[k], rtol=1e-5, atol=1e-6, msg=k)
    last = task.g.state_dict()
    assert any(not torch.equal(ema[k], last[k]) for k in floats)  # the average is not the last iterate


def test_with_ema_the_samples_scores_and_export_come_from_the_average(data):
    task = _gan(data, ema_decay=0.5)
    task.train_epoch(0)
    z = torch.randn(4, task.cfg.latent_dim)
    task.g_ema.module.eval()
    assert torch.equal(task.generate(z), task.g_ema.module(z))
    assert task.sampler is task.g_ema.module
    exported = task.export_state()["g"]
    assert all(torch.equal(exported[k], v) for k, v in task.g_ema.module.state_dict().items())
    sampler = type(task).build_sampler(task.cfg, task.export_state()).eval()  # what best.pt gives the final stage
    assert torch.equal(sampler(z), task.g_ema.module(z))
    restored = _gan(data, ema_decay=0.5)  # a checkpoint restore continues the same average
    restored.load_state_dict(task.state_dict())
    assert int(restored.g_ema.n_averaged) == int(task.g_ema.n_averaged) > 0
    off = _gan(data)
    assert off.g_ema is None and off.sampler is off.g  # off: no copy at all


# ---- R1 -------------------------------------------------------------------------------------------
def test_r1_of_a_linear_critic_is_its_squared_weight_norm():
    w = torch.randn(3 * 4 * 4)
    critic = lambda x: x.flatten(1) @ w  # noqa: E731 - grad_x D = w for every sample
    assert r1_penalty(critic, torch.randn(5, 3, 4, 4)).item() == pytest.approx(w.square().sum().item(), rel=1e-5)


def test_r1_adds_gamma_over_two_times_the_penalty_to_ds_loss(data):
    plain, with_r1 = _gan(data), _gan(data, r1_weight=4.0)
    real = to_unit_range(plain.train.x[:8])
    fake = torch.rand_like(real) * 2 - 1
    rl, fl = plain.d(real), plain.d(fake)
    base, _ = plain.d_objective(real, fake, rl, fl)
    with_r1.d.load_state_dict(plain.d.state_dict())
    total, _ = with_r1.d_objective(real, fake, with_r1.d(real), with_r1.d(fake))
    assert total.item() == pytest.approx(base.item() + 2.0 * r1_penalty(plain.d, real).item(), rel=1e-4)
    with pytest.raises(ConfigError, match="r1_weight"):
        DCGANConfig(gan_loss="wgan-gp", r1_weight=1.0)


# ---- the VAE's lr schedule and betas ---------------------------------------------------------------
def test_lr_factor_warms_up_linearly_then_decays_by_a_half_cosine():
    assert [lr_factor(s, 100, 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(50, 100, 0, "constant") == 1.0
    assert lr_factor(0, 100, 0, "cosine") == 1.0 and lr_factor(100, 100, 0, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(52, 100, 4, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    with pytest.raises(ValueError):
        lr_factor(0, 10, 0, "step")


def test_the_vae_follows_its_lr_schedule_per_step_and_restores_it(data):
    task = _vae(data, lr_schedule="cosine", lr_warmup_epochs=0.5, max_epochs=2)
    per_epoch = task.train.num_batches(task.cfg.batch_size)
    task.train_epoch(0)
    expected = task.cfg.lr * lr_factor(per_epoch, 2 * per_epoch, round(0.5 * per_epoch), "cosine")
    assert task.opt.param_groups[0]["lr"] == pytest.approx(expected)
    restored = _vae(data, lr_schedule="cosine", lr_warmup_epochs=0.5, max_epochs=2)
    restored.load_state_dict(task.state_dict())
    assert restored.opt.param_groups[0]["lr"] == pytest.approx(expected) and restored.lr_steps.last_epoch == per_epoch


def test_the_vae_defaults_train_exactly_as_the_slides_loop(data):
    """Constant lr, Adam's own betas: the default epoch equals the original loop inlined here."""
    new = _vae(data)
    m = new.train_epoch(0)
    old = _vae(data)  # re-seeds the global RNG (the posterior noise) as the trial did
    assert new.lr_steps is None and new.opt.param_groups[0]["betas"] == (0.9, 0.999)
    opt = torch.optim.Adam(old.model.parameters(), lr=old.cfg.lr)
    opt.load_state_dict(old.opt.state_dict())
    for x in old.train.batches(old.cfg.batch_size, old.generator):
        x_hat, mu, logvar = old.model(x)
        loss, _, _ = vae_loss(x_hat, x, mu, logvar, 1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sa, sb = new.model.state_dict(), old.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and math.isfinite(m["train_loss"])
