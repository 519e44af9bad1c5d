"""common/trial/losses.py against closed forms: the VAE terms (KL, free bits, likelihoods), the GAN losses
(BCE, label smoothing, hinge, WGAN, gradient penalty, R1), the beta schedules and the lr factor."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.trial.losses import (
    MSE_LOG_SCALE,
    beta_at,
    beta_settled_epoch,
    bits_per_dim,
    d_loss_bce,
    d_loss_hinge,
    d_loss_wgan,
    discretized_gaussian_nll,
    discretized_logistic_nll,
    g_loss_hinge,
    g_loss_nonsaturating,
    g_loss_wgan,
    gaussian_kl,
    gradient_penalty,
    kl_free_bits,
    kl_per_dim,
    lr_factor,
    r1_penalty,
    recon_mse,
    vae_loss,
)
from common.trial.models import Discriminator


def test_kl_zero_at_prior():
    mu, logvar = torch.zeros(3, 5), torch.zeros(3, 5)
    assert torch.allclose(gaussian_kl(mu, logvar), torch.zeros(3))
    assert torch.allclose(kl_per_dim(mu, logvar), torch.zeros(5))


def test_kl_hand_computed():
    # One dim: mu=1, sigma^2=e -> 0.5*(1 + e - 1 - 1) = 0.5*(e - 1); second dim at prior.
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[1.0, 0.0]])
    assert gaussian_kl(mu, logvar).item() == pytest.approx(0.5 * (math.e - 1), rel=1e-6)
    # Matches torch.distributions.
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    ref = torch.distributions.kl_divergence(q, p)
    assert torch.allclose(gaussian_kl(mu, logvar), ref.sum(1), atol=1e-5)
    assert torch.allclose(kl_per_dim(mu, logvar), ref.mean(0), atol=1e-5)


def test_recon_mse_is_per_image_sum():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 3, 4, 4, generator=g), torch.randn(3, 3, 4, 4, generator=g)
    manual = torch.stack([((x[i] - y[i]) ** 2).sum() for i in range(3)])
    assert torch.allclose(recon_mse(x, y), manual)
    assert recon_mse(x, y).shape == (3,)


def test_vae_loss_combines():
    g = torch.Generator().manual_seed(1)
    x, x_hat = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    mu, logvar = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    loss, recon, kl = vae_loss(x_hat, x, mu, logvar, beta=0.5)
    assert torch.allclose(recon, recon_mse(x_hat, x)) and torch.allclose(kl, gaussian_kl(mu, logvar))
    assert loss.shape == () and torch.allclose(loss, (recon + 0.5 * kl).mean())


def test_beta_constant():
    assert [beta_at(e, schedule="constant", beta=2.0, max_epochs=20) for e in (0, 7, 19)] == [2.0] * 3


def test_beta_linear():
    kw = dict(schedule="linear", beta=1.0, max_epochs=20, warmup_epochs=4)
    assert [beta_at(e, **kw) for e in range(6)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])


def test_beta_cyclical_matches_seed_formula():
    def slides(epoch, epochs=20, cycles=4):  # the slides' cyclical_beta
        cycle_len = epochs // cycles
        pos = (epoch % cycle_len) / cycle_len
        return min(1.0, pos * 2)

    kw = dict(schedule="cyclical", max_epochs=20, cycles=4)
    got = [beta_at(e, beta=1.0, **kw) for e in range(20)]
    assert got == pytest.approx([slides(e) for e in range(20)])
    assert got[:6] == pytest.approx([0.0, 0.4, 0.8, 1.0, 1.0, 0.0])
    assert beta_at(7, beta=4.0, **kw) == pytest.approx(4.0 * 0.8)


def test_beta_cyclical_guard_more_cycles_than_epochs():
    assert beta_at(2, schedule="cyclical", beta=1.0, max_epochs=3, cycles=10) == 0.0


def test_beta_unknown_schedule():
    with pytest.raises(ValueError, match="unknown beta schedule"):
        beta_at(0, schedule="cosine", beta=1.0, max_epochs=10)


def test_gan_losses_at_chance():
    z = torch.zeros(8)
    assert d_loss_bce(z, z).item() == pytest.approx(2 * math.log(2), rel=1e-6)
    assert g_loss_nonsaturating(z).item() == pytest.approx(math.log(2), rel=1e-6)


def test_gan_losses_closed_form():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(16, generator=g), torch.randn(16, generator=g)
    ref_d = -F.logsigmoid(real).mean() - F.logsigmoid(-fake).mean()
    assert torch.allclose(d_loss_bce(real, fake), ref_d, atol=1e-6)
    assert torch.allclose(g_loss_nonsaturating(fake), -F.logsigmoid(fake).mean(), atol=1e-6)


# ---- decoder likelihoods on the 8-bit grid --------------------------------------------------
LEVELS = (torch.arange(256, dtype=torch.float64) / 127.5 - 1).view(256, 1, 1, 1)


@pytest.mark.parametrize("nll", [discretized_gaussian_nll, discretized_logistic_nll])
@pytest.mark.parametrize("mean", [-1.3, -1.0, -0.2, 0.0, 0.51, 1.0])
@pytest.mark.parametrize("log_scale", [MSE_LOG_SCALE, -2.5, -5.0])
def test_discretized_likelihoods_are_distributions_over_the_256_levels(nll, mean, log_scale):
    """The probabilities of all 256 values of a pixel sum to 1 (the edge bins take the tails)."""
    m = torch.full_like(LEVELS, mean)
    total = torch.exp(-nll(LEVELS, m, torch.tensor(log_scale, dtype=torch.float64))).sum().item()
    assert total == pytest.approx(1.0, abs=1e-5)


def test_discretized_gaussian_matches_the_normal_cdf_and_sums_over_pixels():
    x = torch.tensor([[[[-1.0, 2 / 255 - 1], [1 / 127.5 * 100 - 1, 1.0]]]], dtype=torch.float64)  # (1,1,2,2)
    mean = torch.tensor([[[[-0.9, 0.2], [-0.3, 0.7]]]], dtype=torch.float64)
    s = math.exp(MSE_LOG_SCALE)
    phi = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))
    expected = -(
        math.log(phi((-1 + 1 / 255 + 0.9) / s))
        + math.log(phi((2 / 255 - 1 + 1 / 255 - 0.2) / s) - phi((2 / 255 - 1 - 1 / 255 - 0.2) / s))
        + math.log(phi((100 / 127.5 - 1 + 1 / 255 + 0.3) / s) - phi((100 / 127.5 - 1 - 1 / 255 + 0.3) / s))
        + math.log(1 - phi((1 - 1 / 255 - 0.7) / s))
    )
    assert discretized_gaussian_nll(x, mean, MSE_LOG_SCALE).item() == pytest.approx(expected, rel=1e-9)


def test_a_sharp_likelihood_at_the_right_value_costs_nothing():
    x = LEVELS.view(1, 1, 16, 16)
    assert discretized_logistic_nll(x, x, torch.tensor(-9.0, dtype=torch.float64)).item() < 1e-3
    assert discretized_gaussian_nll(x, x, -9.0).item() < 1e-3


def test_bits_per_dim():
    nll, kl = torch.tensor([3072 * math.log(2) * 4.0]), torch.tensor([3072 * math.log(2) * 0.5])
    assert bits_per_dim(nll, kl).item() == pytest.approx(4.5)


@pytest.mark.parametrize(
    "schedule, kw, expected",
    [
        ("constant", {}, 1),
        ("linear", {"warmup_epochs": 4}, 4),
        (
            "cyclical",
            {"cycles": 4, "ramp_fraction": 0.5},
            19,
        ),  # cycle length 5: the last ramp ends at epoch 19 (1-based)
        ("cyclical", {"cycles": 1, "ramp_fraction": 1.0}, 20),
    ],
)
def test_beta_settled_epoch(schedule, kw, expected):
    assert beta_settled_epoch(schedule=schedule, max_epochs=20, **kw) == expected
    full = dict(schedule=schedule, beta=2.0, max_epochs=20, **kw)
    final = beta_at(19, **full)
    assert all(beta_at(e, **full) == final for e in range(expected - 1, 20))
    if expected > 1:
        assert beta_at(expected - 2, **full) != final


# ---- the GAN losses beyond the slides: label smoothing, hinge, WGAN and its gradient penalty, R1 ----
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


def test_r1_of_a_linear_critic_is_its_squared_weight_norm():
    w = torch.randn(3 * 4 * 4)
    critic = lambda x: x.flatten(1) @ w  # noqa: E731 - grad_x D = w for every sample
    assert r1_penalty(critic, torch.randn(5, 3, 4, 4)).item() == pytest.approx(w.square().sum().item(), rel=1e-5)


# ---- the lr factor (the VAE's lr schedule) ---------------------------------------------------------
def test_lr_factor_warms_up_linearly_then_decays_by_a_half_cosine():
    assert [lr_factor(s, 100, 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(50, 100, 0, "constant") == 1.0
    assert lr_factor(0, 100, 0, "cosine") == 1.0 and lr_factor(100, 100, 0, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(52, 100, 4, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    with pytest.raises(ValueError):
        lr_factor(0, 10, 0, "step")


# ---- free bits ------------------------------------------------------------------------------------
def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_free_bits_zero_is_the_plain_kl():
    mu, logvar = _rand(16, 6), _rand(16, 6, seed=1)
    assert torch.allclose(kl_free_bits(mu, logvar, 0.0), gaussian_kl(mu, logvar).mean(), atol=1e-6)


def test_free_bits_hand_computed():
    # logvar = 0 -> KL = mu^2 / 2. Dim 0: per-image KL 0.5 and 0 -> batch mean 0.25; dim 1: 0.
    mu, logvar = torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.zeros(2, 2)
    assert kl_per_dim(mu, logvar).tolist() == pytest.approx([0.25, 0.0])
    assert kl_free_bits(mu, logvar, 0.1).item() == pytest.approx(0.25 + 0.1)  # only dim 1 floored
    assert kl_free_bits(mu, logvar, 0.5).item() == pytest.approx(0.5 + 0.5)  # both floored


def test_free_bits_no_gradient_through_floored_dims():
    mu = torch.tensor([[2.0, 0.01], [-2.0, 0.02]], requires_grad=True)  # dim 0 used, dim 1 collapsed
    logvar = torch.zeros(2, 2, requires_grad=True)
    kl_free_bits(mu, logvar, 0.5).backward()
    assert torch.all(mu.grad[:, 1] == 0) and torch.all(logvar.grad[:, 1] == 0)
    assert torch.all(mu.grad[:, 0] != 0)
    mu.grad = logvar.grad = None
    kl_free_bits(mu, logvar, 100.0).backward()  # a huge floor: no KL gradient at all
    assert torch.all(mu.grad == 0) and torch.all(logvar.grad == 0)


def test_free_bits_negative_raises():
    with pytest.raises(ValueError, match="free_bits"):
        kl_free_bits(torch.zeros(1, 1), torch.zeros(1, 1), -1.0)


def test_vae_loss_free_bits_trains_on_the_floor_but_returns_the_true_kl():
    x, x_hat = _rand(4, 3, 8, 8), _rand(4, 3, 8, 8, seed=1)
    mu, logvar = 0.01 * _rand(4, 6, seed=2), 0.01 * _rand(4, 6, seed=3)
    loss, recon, kl = vae_loss(x_hat, x, mu, logvar, 2.0, free_bits=1.0)
    assert torch.allclose(kl, gaussian_kl(mu, logvar))  # logged KL untouched
    assert torch.allclose(loss, recon_mse(x_hat, x).mean() + 2.0 * 6 * 1.0)  # every dim under the floor


def test_defaults_keep_vae_loss_bit_identical():
    x, x_hat = _rand(4, 3, 8, 8), _rand(4, 3, 8, 8, seed=1)
    mu, logvar = _rand(4, 6, seed=2), _rand(4, 6, seed=3)
    seed_loss = (recon_mse(x_hat, x) + 0.7 * gaussian_kl(mu, logvar)).mean()
    assert torch.equal(vae_loss(x_hat, x, mu, logvar, 0.7)[0], seed_loss)
    perc = torch.rand(4)
    assert torch.equal(vae_loss(x_hat, x, mu, logvar, 0.7, perceptual=perc, perceptual_weight=0.0)[0], seed_loss)
    with_perc = vae_loss(x_hat, x, mu, logvar, 0.7, perceptual=perc, perceptual_weight=3.0)[0]
    assert torch.allclose(with_perc, seed_loss + 3.0 * perc.mean())


# ---- the cyclical schedule's ramp fraction -----------------------------------------------------------------------
def test_ramp_fraction_half_is_the_slides_formula_exactly():
    def slides(epoch, epochs, cycles):  # the slides' cyclical_beta
        cycle_len = epochs // cycles
        pos = (epoch % cycle_len) / cycle_len
        return min(1.0, pos * 2)

    for epochs, cycles in [(20, 4), (40, 4), (30, 7), (10, 3)]:
        got = [
            beta_at(e, schedule="cyclical", beta=1.0, max_epochs=epochs, cycles=cycles, ramp_fraction=0.5)
            for e in range(epochs)
        ]
        assert got == [slides(e, epochs, cycles) for e in range(epochs)]  # bit for bit
        assert got == [
            beta_at(e, schedule="cyclical", beta=1.0, max_epochs=epochs, cycles=cycles) for e in range(epochs)
        ]


def test_ramp_fraction_quarter_ramps_faster():
    kw = dict(schedule="cyclical", beta=2.0, max_epochs=20, cycles=4)
    half = [beta_at(e, **kw) for e in range(5)]
    quarter = [beta_at(e, ramp_fraction=0.25, **kw) for e in range(5)]
    whole = [beta_at(e, ramp_fraction=1.0, **kw) for e in range(5)]
    assert half == pytest.approx([0.0, 0.8, 1.6, 2.0, 2.0])
    assert quarter == pytest.approx([0.0, 1.6, 2.0, 2.0, 2.0])
    assert whole == pytest.approx([0.0, 0.4, 0.8, 1.2, 1.6])
    assert all(q >= h for q, h in zip(quarter, half))


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5])
def test_ramp_fraction_out_of_range(bad):
    with pytest.raises(ValueError, match="ramp_fraction"):
        beta_at(1, schedule="cyclical", beta=1.0, max_epochs=20, ramp_fraction=bad)
