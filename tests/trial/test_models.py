"""common/trial/models/: shapes, ranges and parameter counts of ConvVAE, Generator and Discriminator; the
discriminator options (spectral norm, minibatch discrimination) and its probe features (CPU, tiny nets)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.trial.models import ConvVAE, Discriminator, Generator, count_params, dcgan_init
from common.trial.models.dcgan import MinibatchDiscrimination

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
    assert (vae.latent_dim, g.latent_dim) == (8, 8) and d.blocks[0][0].out_channels == 4


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


# ---- discriminator options ------------------------------------------------------------------
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


# ---- the discriminator's probe features -------------------------------------------------------------
def test_discriminator_probe_features():
    torch.manual_seed(0)
    d = Discriminator(d_channels=8, d_hidden=16).eval()
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        got = d.probe_features(x)
        f = d.features(x)
    assert got.shape == (5, 7 * 8 * 16)
    assert [t.shape[1:] for t in f[:3]] == [(8, 16, 16), (16, 8, 8), (32, 4, 4)]
    manual = torch.cat([F.adaptive_max_pool2d(h, (4, 4)).reshape(5, -1) for h in f[:3]], dim=1)
    assert torch.equal(got, manual)
    # the 4x4 map is taken as is; the 16x16 one is pooled by 4x4 blocks
    assert torch.equal(got[:, 8 * 16 + 16 * 16 :], f[2].flatten(1))
    assert torch.equal(got[:, : 8 * 16], F.max_pool2d(f[0], 4).flatten(1))


@pytest.mark.parametrize("k", [3, 4, 5])
def test_every_kernel_size_and_stage_width_keeps_the_sides(x, k):
    vae = ConvVAE(latent_dim=8, base_channels=4, hidden_dim=0, kernel_size=k, stage_mults=(2, 1, 3))
    convs = [m for m in vae.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(8, (k, k)), (4, (k, k)), (12, (k, k))]
    assert vae(x)[0].shape == x.shape and vae.encode(x)[0].shape == (4, 8)
    g = Generator(latent_dim=10, g_channels=8, g_hidden=0, kernel_size=k, stage_mults=(1, 0.5, 2))
    assert [m.out_channels for m in g.modules() if isinstance(m, nn.ConvTranspose2d)] == [4, 16, 3]
    assert g(torch.randn(4, 10)).shape == (4, 3, 32, 32)
    d = Discriminator(d_channels=4, d_hidden=0, kernel_size=k, stage_mults=(1, 3, 2))
    assert [tuple(f.shape) for f in d.features(x)] == [(4, 4, 16, 16), (4, 12, 8, 8), (4, 8, 4, 4)]
    assert d(x).shape == (4,) and d.probe_features(x).shape == (4, (4 + 12 + 8) * 16)
