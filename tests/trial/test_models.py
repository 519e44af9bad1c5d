"""Shapes, ranges and parameter counts of ConvVAE, Generator, Discriminator (CPU, tiny nets)."""

import pytest
import torch

from common.trial.models import ConvVAE, Discriminator, Generator, count_params, dcgan_init

SEED_COUNTS = {"vae": 1.38e6, "g": 1.24e6, "d": 2.76e6}


@pytest.fixture
def x():
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("hidden", [0, 16])
def test_vae_shapes_and_range(x, hidden):
    vae = ConvVAE(latent_dim=8, base_channels=4, hidden_dim=hidden)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (4, 8)
    x_hat, mu2, logvar2 = vae(x)
    assert x_hat.shape == x.shape
    assert torch.equal(mu, mu2) and torch.equal(logvar, logvar2)
    assert x_hat.abs().max() <= 1.0
    assert vae.decode(torch.randn(3, 8)).shape == (3, 3, 32, 32)
    s = vae.sample(5, "cpu")
    assert s.shape == (5, 3, 32, 32) and s.abs().max() <= 1.0


def test_vae_generator_makes_noise_reproducible(x):
    vae = ConvVAE(latent_dim=8, base_channels=4, hidden_dim=0).eval()
    a, _, _ = vae(x, generator=torch.Generator().manual_seed(1))
    b, _, _ = vae(x, generator=torch.Generator().manual_seed(1))
    c, _, _ = vae(x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    s1 = vae.sample(2, "cpu", generator=torch.Generator().manual_seed(3))
    s2 = vae.sample(2, "cpu", generator=torch.Generator().manual_seed(3))
    assert torch.equal(s1, s2)


@pytest.mark.parametrize("hidden", [0, 16])
def test_generator_shapes_and_range(hidden):
    g = Generator(latent_dim=10, g_channels=8, g_hidden=hidden)
    out = g(torch.randn(4, 10))
    assert out.shape == (4, 3, 32, 32) and out.abs().max() <= 1.0
    assert g.sample(3, "cpu").shape == (3, 3, 32, 32)


@pytest.mark.parametrize("hidden", [0, 16])
def test_discriminator_logits_and_features(x, hidden):
    d = Discriminator(d_channels=4, d_hidden=hidden)
    assert d(x).shape == (4,)
    feats = d.features(x)
    shapes = [(4, 4, 16, 16), (4, 8, 8, 8), (4, 16, 4, 4)] + ([(4, hidden)] if hidden else [])
    assert [tuple(f.shape) for f in feats] == shapes


def test_default_param_counts_match_seed():
    counts = {"vae": count_params(ConvVAE()), "g": count_params(Generator()), "d": count_params(Discriminator())}
    for k, n in counts.items():
        assert abs(n / SEED_COUNTS[k] - 1) < 0.10, (k, n)


def test_config_field_names_are_constructor_kwargs():
    # The trainables build models straight from config fields.
    vae = ConvVAE(latent_dim=8, base_channels=4, hidden_dim=0)
    g = Generator(latent_dim=8, g_channels=8, g_hidden=0)
    d = Discriminator(d_channels=4, d_hidden=0)
    assert (vae.latent_dim, g.latent_dim) == (8, 8) and count_params(d) > 0


def test_widths_and_latent_change_counts():
    base = count_params(ConvVAE())
    assert count_params(ConvVAE(latent_dim=32)) < base
    assert count_params(ConvVAE(base_channels=16)) < base
    assert count_params(ConvVAE(hidden_dim=0)) < base
    assert count_params(Generator(latent_dim=50)) < count_params(Generator())
    assert count_params(Generator(g_channels=64)) < count_params(Generator())
    assert count_params(Generator(g_hidden=0)) < count_params(Generator())
    assert count_params(Discriminator(d_channels=32)) < count_params(Discriminator())
    assert count_params(Discriminator(d_hidden=0)) < count_params(Discriminator())


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    d = Discriminator(d_channels=32, d_hidden=64)
    conv = d.blocks[1][0].weight
    bn = d.blocks[1][1]
    assert abs(conv.std().item() - 0.02) < 0.002 and abs(conv.mean().item()) < 0.002
    assert abs(bn.weight.mean().item() - 1.0) < 0.01 and torch.all(bn.bias == 0)
    lin = torch.nn.Linear(100, 100)
    dcgan_init(lin)
    assert torch.all(lin.bias == 0) and abs(lin.weight.std().item() - 0.02) < 0.002
