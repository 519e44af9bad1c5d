"""common/trial/tasks/vae.py: the default epoch is the slides' loop, the mitigations (free bits,
perceptual loss, cyclical ramp fraction) and the lr schedule wired in, the collapse detector, the decoder
likelihoods (CPU, tiny nets, synthetic data)."""

from __future__ import annotations

import math

import pytest
import torch

from common.base.data import load_dataset, to_unit_range
from common.base.device import seed_everything
from common.trial.config import VAEConfig
from common.trial.losses import gaussian_kl, lr_factor, recon_mse, vae_loss
from common.trial.tasks.vae import COLLAPSE_KL, VAETask, collapse_flag

TINY = dict(
    data="synthetic",
    val_size=128,
    latent_dim=8,
    base_channels=8,
    hidden_dim=0,
    batch_size=64,
    eval_samples=32,
    max_epochs=2,
)


def _task(**kw) -> VAETask:
    cfg = VAEConfig(**{**TINY, **kw})
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    return VAETask(cfg, load_dataset("synthetic"), torch.device("cpu"), gen)


FP32 = dict(  # the levers' tests: fp32, so the inlined loop below needs no autocast
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


def _vae(data, **kw) -> VAETask:
    cfg = VAEConfig(**{**FP32, **kw})
    return VAETask(cfg, data, torch.device("cpu"), seed_everything(cfg.seed))


# ---- task wiring ----------------------------------------------------------------------------------
def _seed_train_epoch(task: VAETask, epoch: int) -> dict[str, float]:
    """The slides' training loop, before this issue (to prove the defaults leave it unchanged)."""
    beta = task.beta(epoch)
    task.model.train()
    total = torch.zeros(3)
    n = 0
    for x in task.train.batches(task.cfg.batch_size, task.generator):
        with task.autocast():  # bf16 forward when precision=bf16 (the VAE's default), losses in fp32
            x_hat, mu, logvar = task.model(x)
        x_hat, mu, logvar = x_hat.float(), mu.float(), logvar.float()
        recon, kl = recon_mse(x_hat, x), gaussian_kl(mu, logvar)
        loss = (recon + beta * kl).mean()
        task.opt.zero_grad(set_to_none=True)
        loss.backward()
        task.opt.step()
        total += torch.stack([loss.detach() * len(x), recon.detach().sum(), kl.detach().sum()])
        n += len(x)
    loss, recon, kl = (total / n).tolist()
    return {"train_loss": loss, "train_recon": recon, "train_kl": kl, "beta": beta}


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_default_task_trains_exactly_as_the_slides(precision):
    a, b = _task(precision=precision), _task(precision=precision)
    assert a.perceptual is None and a.tags() == {}
    torch.manual_seed(0)
    new = a.train_epoch(0)
    torch.manual_seed(0)
    assert new == _seed_train_epoch(b, 0)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_task_with_mitigations_trains_and_tags_the_metric_bias():
    t = _task(free_bits=0.5, perceptual_weight=10.0)
    tags = t.tags()
    assert tags["perceptual_net"] == "randconv" and "randconv_fd" in tags["metric_bias"]
    out = t.train_epoch(0)
    assert out["train_perceptual"] > 0 and all(math.isfinite(v) for v in out.values())
    assert not any(p.requires_grad for p in t.perceptual.parameters())
    assert set(t.state_dict()["models"]) == {"vae"}  # the frozen backbone is not checkpointed


def test_task_passes_ramp_fraction_to_the_schedule():
    t = _task(beta_schedule="cyclical", max_epochs=20, cycles=4, ramp_fraction=0.25)
    assert [t.beta(e) for e in range(5)] == pytest.approx([0.0, 0.8, 1.0, 1.0, 1.0])


# ---- collapse detector ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kl, active, dim, expected",
    [
        (0.5, 64, 64, 1.0),  # KL under 1 nat
        (30.0, 6, 64, 1.0),  # 6 < 6.4 active units
        (30.0, 7, 64, 0.0),
        (COLLAPSE_KL, 64, 64, 0.0),
    ],
)
def test_collapse_flag(kl, active, dim, expected):
    assert collapse_flag(kl, active, dim) == expected


def test_evaluate_flags_a_collapsed_posterior(monkeypatch):
    t = _task()
    d = t.cfg.latent_dim
    monkeypatch.setattr(t.model, "encode", lambda x: (torch.zeros(len(x), d), torch.zeros(len(x), d)))
    out = t.evaluate(probe=False)
    assert out["val_kl"] == 0.0 and out["val_active_units"] == 0.0 and out["posterior_collapse"] == 1.0


def test_evaluate_does_not_flag_a_used_latent(monkeypatch):
    t = _task()
    d = t.cfg.latent_dim

    def encode(x):  # posterior means spread over the data, unit variance: every dim active, KL = mu^2/2
        return 3.0 * x.flatten(1)[:, :d], torch.zeros(len(x), d)

    monkeypatch.setattr(t.model, "encode", encode)
    out = t.evaluate(probe=False)
    assert out["val_kl"] > COLLAPSE_KL and out["val_active_units"] == d and out["posterior_collapse"] == 0.0


# ---- decoder likelihoods ---------------------------------------------------------------------
def test_logistic_likelihood_learns_its_scale_and_reports_bits_per_dim():
    from common.trial.losses import discretized_logistic_nll

    t = _task(likelihood="logistic", lr=3e-3)
    assert "log_scale" in dict(t.model.named_parameters())
    start = t.model.log_scale.detach().clone()
    first = t.train_epoch(0)
    for e in range(1, 4):
        last = t.train_epoch(e)
    assert last["train_recon"] < first["train_recon"]  # the trained term is -log p(x|z) of the logistic
    assert (t.model.log_scale.detach() < start).all()  # the scale is learned: it sharpens from MSE's sigma^2 = 1/2
    out = t.evaluate(probe=False)
    assert out["val_bpd"] == pytest.approx((out["val_nll"] + out["val_kl"]) / (3072 * math.log(2)), rel=1e-6)
    assert math.isfinite(out["val_bpd"]) and out["val_bpd"] > 0
    x = to_unit_range(t.val.x[:8])
    with torch.no_grad():
        x_hat = t.model.decode(t.model.encode(x)[0])
    assert torch.allclose(t.recon_nll(x_hat, x), discretized_logistic_nll(x, x_hat, t.model.log_scale.clamp(min=-7.0)))


def test_the_default_likelihood_is_the_slides_mse_with_no_extra_parameter():
    t = _task()
    assert t.cfg.likelihood == "mse" and "log_scale" not in dict(t.model.named_parameters())
    out = t.evaluate(probe=False)
    assert out["val_mse_kl"] == pytest.approx(out["val_recon"] + out["val_kl"])
    assert out["val_bpd"] > 7.0  # sigma^2 = 1/2 on [-1, 1] is a very loose density: honest, not flattering


# ---- the lr schedule and Adam's betas (levers beyond the slides) -------------------------------
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
