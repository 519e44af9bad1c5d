"""GAN failure-mode options and detectors: losses vs closed forms, SN, minibatch discrimination,
the slides' training step bit for bit, gradient norms, class coverage (CPU, tiny nets, synthetic data)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.trial.config import ConfigError, DCGANConfig
from common.trial.data import load_dataset, to_unit_range
from common.trial.device import seed_everything
from common.trial.diagnostics import grad_total_norm, mode_collapse_flag
from common.trial.losses import (
    d_loss_bce,
    d_loss_hinge,
    d_loss_wgan,
    g_loss_hinge,
    g_loss_nonsaturating,
    g_loss_wgan,
    gradient_penalty,
)
from common.trial.models import Discriminator
from common.trial.models.dcgan import MinibatchDiscrimination
from common.trial.tasks.dcgan import DCGANTask

TINY = dict(
    data="synthetic",
    batch_size=64,
    eval_samples=64,
    g_channels=16,
    d_channels=8,
    g_hidden=0,
    d_hidden=16,
    latent_dim=8,
    val_size=128,
)


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic")


def _task(data, **kw) -> DCGANTask:
    cfg = DCGANConfig(**{**TINY, **kw})
    gen = seed_everything(cfg.seed)
    return DCGANTask(cfg, data, torch.device("cpu"), gen)


# ---- config ---------------------------------------------------------------------------------
def test_defaults_are_the_slides():
    c = DCGANConfig()
    assert (c.gan_loss, c.n_critic, c.label_smoothing, c.spectral_norm, c.minibatch_disc) == ("bce", 1, 0.0, False, 0)
    assert c.d_norm == "auto" and c.d_batchnorm and c.gp_weight == 10.0 and c.minibatch_dim == 8


def test_config_coercion_and_ranges():
    c = DCGANConfig.from_dict({"spectral_norm": "true", "gan_loss": "hinge", "n_critic": "5", "minibatch_disc": "16"})
    assert c.spectral_norm is True and c.n_critic == 5 and c.minibatch_disc == 16 and c.d_batchnorm
    assert not DCGANConfig(gan_loss="wgan-gp").d_batchnorm
    assert DCGANConfig(gan_loss="wgan-gp", d_norm="batch").d_batchnorm
    assert not DCGANConfig(d_norm="none").d_batchnorm
    assert DCGANConfig(label_smoothing=0.2).label_smoothing == 0.2
    for bad in (
        {"gan_loss": "lsgan"},
        {"n_critic": 0},
        {"gp_weight": -1.0},
        {"label_smoothing": 0.5},
        {"label_smoothing": -0.1},
        {"minibatch_disc": -1},
        {"minibatch_dim": 0},
        {"d_norm": "layer"},
        {"label_smoothing": 0.1, "gan_loss": "hinge"},
        {"spectral_norm": "maybe"},
        {"gan_loss": "wgan-gp", "minibatch_disc": 8},
    ):  # a batch-coupled D breaks the per-sample penalty
        with pytest.raises(ConfigError):
            DCGANConfig.from_dict(bad)
    assert DCGANConfig.from_dict(DCGANConfig(gan_loss="wgan-gp", n_critic=5).to_dict()).n_critic == 5


# ---- losses ---------------------------------------------------------------------------------
def test_label_smoothing_matches_bce_with_smoothed_target():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(32, generator=g), torch.randn(32, generator=g)
    ref = F.binary_cross_entropy_with_logits(real, torch.full_like(real, 0.9)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )
    assert torch.allclose(d_loss_bce(real, fake, label_smoothing=0.1), ref, atol=1e-7)
    assert torch.equal(d_loss_bce(real, fake, label_smoothing=0.0), d_loss_bce(real, fake))
    with pytest.raises(ValueError):
        d_loss_bce(real, fake, label_smoothing=0.5)


def test_hinge_and_wgan_losses_closed_form():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 1.0])
    # relu(1 - real) = [0, 0.5, 2] -> 2.5/3; relu(1 + fake) = [0, 1, 2] -> 1
    assert d_loss_hinge(real, fake).item() == pytest.approx(2.5 / 3 + 1.0)
    assert d_loss_hinge(torch.full((4,), 1.5), torch.full((4,), -1.5)).item() == 0.0
    assert g_loss_hinge(fake).item() == pytest.approx(1 / 3)
    assert d_loss_wgan(real, fake).item() == pytest.approx(-1 / 3 - 0.5)
    assert g_loss_wgan(fake).item() == pytest.approx(1 / 3)


class _LinearCritic(nn.Module):
    """f(x) = scale * <w, x> with a unit-norm w: Lipschitz constant = scale."""

    def __init__(self, dim: int, scale: float):
        super().__init__()
        w = torch.randn(dim, generator=torch.Generator().manual_seed(3))
        self.w = nn.Parameter(scale * w / w.norm())

    def forward(self, x):
        return x.flatten(1) @ self.w


def test_gradient_penalty_zero_for_1_lipschitz_and_positive_for_steeper():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(8, 3, 4, 4, generator=g), torch.randn(8, 3, 4, 4, generator=g)
    unit = gradient_penalty(_LinearCritic(48, 1.0), real, fake, generator=torch.Generator().manual_seed(0))
    assert unit.item() == pytest.approx(0.0, abs=1e-10)
    steep = _LinearCritic(48, 3.0)
    gp = gradient_penalty(steep, real, fake, generator=torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx(4.0, rel=1e-5)  # (3 - 1)^2
    gp.backward()  # create_graph: the penalty trains the critic
    assert steep.w.grad is not None and steep.w.grad.norm() > 0
    assert real.grad is None and fake.grad is None


@pytest.mark.parametrize("kw", [dict(), dict(spectral_norm=True, minibatch_disc=3)], ids=["plain", "sn-mbd"])
def test_gradient_penalty_through_discriminator_backprops(kw):
    torch.manual_seed(0)
    d = Discriminator(d_channels=4, d_hidden=8, batchnorm=False, **kw)
    x, y = torch.rand(4, 3, 32, 32) * 2 - 1, torch.rand(4, 3, 32, 32) * 2 - 1
    gp = gradient_penalty(d, x, y)
    assert gp.ndim == 0 and gp.item() > 0
    gp.backward()
    # every parameter but the logit's bias (which does not change grad_x D) gets a gradient
    assert all(p.grad is not None for n, p in d.named_parameters() if n != "out.bias")


def test_minibatch_discrimination_is_twice_differentiable():
    # WGAN-GP back-propagates through grad_x D, so the layer needs a correct double backward.
    torch.manual_seed(0)
    mbd = MinibatchDiscrimination(5, num_kernels=3, kernel_dim=2).double()
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    t = mbd.T.detach().clone().requires_grad_(True)

    def f(x, t):
        return torch.func.functional_call(mbd, {"T": t}, (x,))

    assert torch.autograd.gradcheck(f, (x, t))
    assert torch.autograd.gradgradcheck(f, (x, t))


# ---- discriminator options ------------------------------------------------------------------
def test_default_discriminator_is_unchanged():
    torch.manual_seed(0)
    a = Discriminator(d_channels=4, d_hidden=8)
    torch.manual_seed(0)
    b = Discriminator(d_channels=4, d_hidden=8, spectral_norm=False, batchnorm=True, minibatch_disc=0)
    assert list(a.state_dict()) == list(b.state_dict())
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in a.modules()) == 2 and a.minibatch is None
    assert not any(isinstance(m, nn.BatchNorm2d) for m in Discriminator(4, 8, batchnorm=False).modules())


@pytest.mark.parametrize("batchnorm", [True, False])
def test_spectral_norm_gives_unit_top_singular_value(batchnorm):
    torch.manual_seed(0)
    d = Discriminator(d_channels=4, d_hidden=16, spectral_norm=True, batchnorm=batchnorm, minibatch_disc=3)
    wrapped = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(wrapped) == 5 and all(hasattr(m, "parametrizations") for m in wrapped)
    d.train()
    x = torch.rand(8, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        for _ in range(30):  # one power iteration per training forward
            d(x)
    d.eval()
    for m in wrapped:
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05), m
    assert d(x).shape == (8,)


def test_minibatch_discrimination_layer():
    torch.manual_seed(0)
    mbd = MinibatchDiscrimination(6, num_kernels=5, kernel_dim=3)
    x = torch.randn(4, 6)
    out = mbd(x)
    assert out.shape == (4, 11) and torch.equal(out[:, :6], x)
    assert torch.all((out[:, 6:] >= 0) & (out[:, 6:] <= 1))
    same = mbd(x[:1].repeat(4, 1))
    assert torch.allclose(same[:, 6:], torch.ones(4, 5))  # identical batch: every kernel reads 1
    assert torch.equal(mbd(x[:1])[:, 6:], torch.zeros(1, 5))  # nobody else in the batch
    # o_i by hand: mean over j != i of exp(-L1 distance) per kernel
    m = (x @ mbd.T).view(4, 5, 3)
    ref = torch.stack([sum(torch.exp(-(m[i] - m[j]).abs().sum(1)) for j in range(4) if j != i) / 3 for i in range(4)])
    assert torch.allclose(out[:, 6:], ref, atol=1e-6)


@pytest.mark.parametrize("kernels", [0, 4])
def test_minibatch_discrimination_couples_the_batch(kernels):
    torch.manual_seed(0)
    d = Discriminator(d_channels=4, d_hidden=8, minibatch_disc=kernels).eval()  # eval: BN does not couple
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    y = x.clone()
    y[3] = torch.rand(3, 32, 32) * 2 - 1
    with torch.no_grad():
        a, b = d(x), d(y)
    assert b[3] != a[3]
    if kernels:
        assert not torch.allclose(a[[0, 1, 2, 4]], b[[0, 1, 2, 4]], atol=1e-6)
    else:
        assert torch.allclose(a[[0, 1, 2, 4]], b[[0, 1, 2, 4]], atol=1e-6)


# ---- training step --------------------------------------------------------------------------
def test_seed_training_step_is_bit_for_bit_the_original(data):
    """The default config trains exactly as the pre-mitigation loop did (inlined here)."""
    new = _task(data)
    m_new = new.train_epoch(0)

    old = _task(data)
    total, steps = torch.zeros(4), 0
    for real in old.train.batches(old.cfg.batch_size, old.generator):  # the original train_epoch
        z = torch.randn(len(real), old.cfg.latent_dim)
        fake = old.g(z)
        real_logits, fake_logits = old.d(real), old.d(fake.detach())
        d_loss = d_loss_bce(real_logits, fake_logits)
        old.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        old.opt_d.step()
        g_loss = g_loss_nonsaturating(old.d(fake))
        old.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        old.opt_g.step()
        total += torch.stack(
            [
                d_loss.detach(),
                g_loss.detach(),
                torch.sigmoid(real_logits.detach()).mean(),
                torch.sigmoid(fake_logits.detach()).mean(),
            ]
        )
        steps += 1
    d, g, dr, df = (total / steps).tolist()
    for name in ("g", "d"):
        sa, sb = new.models[name].state_dict(), old.models[name].state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    assert (m_new["d_loss"], m_new["g_loss"], m_new["d_real"], m_new["d_fake"]) == (d, g, dr, df)
    assert m_new["loss_ratio"] == g / d


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(gan_loss="hinge", spectral_norm=True, minibatch_disc=4),
        dict(gan_loss="wgan-gp", n_critic=3, lr_ratio=2.0, spectral_norm=True, beta1=0.0, beta2=0.9),
        dict(label_smoothing=0.1, spectral_norm=True, d_norm="none"),
    ],
    ids=["slides", "hinge-sn-mbd", "wgan-gp-ncritic3-sn", "smooth-sn-nobn"],
)
def test_train_epoch_options_and_detectors(data, kw):
    task = _task(data, **kw)
    m = task.train_epoch(0)
    assert all(math.isfinite(v) for v in m.values()), m
    assert m["grad_norm_d"] > 0 and m["grad_norm_g"] > 0
    assert ("loss_ratio" in m) == (task.cfg.gan_loss == "bce")
    assert ({"grad_penalty", "wasserstein"} <= set(m)) == (task.cfg.gan_loss == "wgan-gp")
    n_batches = task.train.num_batches(task.cfg.batch_size)
    g_steps = task.opt_g.state[next(iter(task.g.parameters()))]["step"].item()
    d_steps = task.opt_d.state[next(iter(task.d.parameters()))]["step"].item()
    assert (d_steps, g_steps) == (n_batches, n_batches // task.cfg.n_critic)


def test_n_critic_larger_than_an_epoch_is_a_config_error(data):
    with pytest.raises(ConfigError, match="n_critic"):
        _task(data, n_critic=100)


def test_grad_total_norm_matches_manual():
    lin = nn.Linear(5, 3)
    lin(torch.randn(4, 5)).pow(2).sum().backward()
    manual = math.sqrt(sum(p.grad.pow(2).sum().item() for p in lin.parameters()))
    assert grad_total_norm(lin.parameters()).item() == pytest.approx(manual, rel=1e-6)
    assert grad_total_norm(nn.Linear(2, 2).parameters()).item() == 0.0  # no grads yet


# ---- mode collapse: class coverage of the fixed-z samples -------------------------------------
def test_mode_collapse_flag_threshold():
    assert mode_collapse_flag(0.7) == 1.0 and mode_collapse_flag(0.8) == 0.0 and mode_collapse_flag(1.0) == 0.0
    assert mode_collapse_flag(0.5, threshold=0.4) == 0.0


def test_real_images_cover_the_classes_and_one_image_repeated_does_not(data):
    task = _task(data)
    real = to_unit_range(task.train.x[:200])  # train images scored against the validation images
    scores = task.sample_scores(real)
    assert scores["val_class_coverage"] == 1.0 and task.collapse_flags(scores)["mode_collapse"] == 0.0
    assert scores["val_class_kl"] < 0.2 and scores["val_classifier_fd"] < 5.0
    one = real[:1].repeat(200, 1, 1, 1) + 1e-3 * torch.randn(200, 3, 32, 32)
    collapsed = task.sample_scores(one.clamp(-1, 1))
    assert collapsed["val_class_coverage"] == pytest.approx(0.1) and collapsed["val_class_kl"] > 2.0
    assert task.collapse_flags(collapsed)["mode_collapse"] == 1.0
    assert collapsed["val_classifier_fd"] > 5 * scores["val_classifier_fd"]
    assert collapsed["val_classifier_is"] < 1.05 and scores["val_classifier_is"] > 3.0


def test_evaluate_reports_the_sample_scores_and_the_detector(data):
    task = _task(data)
    m = task.evaluate(probe=False)
    assert set(m) == {
        "val_classifier_fd",
        "val_randconv_fd",
        "val_class_coverage",
        "val_class_kl",
        "val_classifier_is",
        "mode_collapse",
    }


def test_a_pbt_clone_takes_the_donors_weights_and_moments_but_keeps_its_own_lr_and_betas(data):
    donor, clone = _task(data, lr_g=2e-4, beta1=0.5), _task(data, lr_g=4e-4, lr_ratio=2.0, beta1=0.0, seed=7)
    donor.train_epoch(0)
    clone.load_state_dict(donor.state_dict(), keep_hyperparams=True)
    assert all(torch.equal(a, b) for a, b in zip(donor.g.state_dict().values(), clone.g.state_dict().values()))
    assert clone.opt_g.state_dict()["state"][0]["exp_avg"].equal(donor.opt_g.state_dict()["state"][0]["exp_avg"])
    assert [(g["lr"], g["betas"][0]) for g in clone.opt_g.param_groups] == [(4e-4, 0.0)]
    assert [g["lr"] for g in clone.opt_d.param_groups] == [pytest.approx(8e-4)]
    clone.load_state_dict(donor.state_dict())  # a trial's own restore takes everything, as before
    assert [(g["lr"], g["betas"][0]) for g in clone.opt_g.param_groups] == [(2e-4, 0.5)]
