"""Loss functions against closed forms; beta schedules."""

import math

import pytest
import torch
import torch.nn.functional as F

from common.trial.losses import (
    MSE_LOG_SCALE,
    beta_at,
    beta_settled_epoch,
    bits_per_dim,
    d_loss_bce,
    discretized_gaussian_nll,
    discretized_logistic_nll,
    g_loss_nonsaturating,
    gaussian_kl,
    kl_per_dim,
    recon_mse,
    vae_loss,
)


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
