"""Fréchet distance, the random-conv extractor, active units and the linear probe."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.metrics import (
    RandomConvFeatures,
    active_units,
    feature_stats,
    frechet_distance,
    linear_probe,
)


def _spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T + d * np.eye(d)


def test_fd_identical_is_zero():
    rng = np.random.default_rng(0)
    mu, sigma = rng.standard_normal(8), _spd(rng, 8)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)


def test_fd_identity_covariances_is_mean_distance():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0, 2.0])
    assert frechet_distance(mu1, np.eye(3), mu2, np.eye(3)) == pytest.approx(5.0)


def test_fd_diagonal_closed_form():
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu = np.zeros(3)
    expected = np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu, np.diag(s1), mu, np.diag(s2)) == pytest.approx(expected)


def test_fd_symmetric_and_float():
    rng = np.random.default_rng(1)
    a = (rng.standard_normal(5), _spd(rng, 5))
    b = (rng.standard_normal(5), _spd(rng, 5))
    ab, ba = frechet_distance(*a, *b), frechet_distance(*b, *a)
    assert isinstance(ab, float) and ab == pytest.approx(ba, rel=1e-6)


def test_fd_singular_covariance_falls_back():
    rng = np.random.default_rng(2)
    feats = rng.standard_normal((4, 10))  # fewer samples than features: rank-deficient
    mu, sigma = feature_stats(feats)
    assert np.isfinite(frechet_distance(mu, sigma, mu, sigma))


def test_feature_stats():
    feats = np.random.default_rng(0).standard_normal((50, 3))
    mu, sigma = feature_stats(feats)
    assert mu.shape == (3,) and sigma.shape == (3, 3) and mu.dtype == np.float64
    assert np.allclose(sigma, np.cov(feats.T))


def _smooth_images(n, seed):
    """Low-pass random fields in [-1, 1]: a stand-in 'image distribution'."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.randn(n, 3, 4, 4, generator=g), size=32, mode="bilinear", align_corners=False)
    return torch.tanh(x)


def test_random_conv_features_deterministic_and_rng_independent():
    x = _smooth_images(8, 0)
    torch.manual_seed(123)
    a = RandomConvFeatures()
    torch.manual_seed(999)
    b = RandomConvFeatures()
    fa = a(x)
    assert fa.shape == (8, 256) and RandomConvFeatures.name == "randconv256"
    assert torch.equal(fa, b(x))  # global seed did not matter
    # ... and construction does not consume the global RNG either.
    torch.manual_seed(5)
    RandomConvFeatures()
    after = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(3))
    assert not any(p.requires_grad for p in a.parameters()) and not a.train().training


def test_active_units():
    rng = np.random.default_rng(0)
    mu = np.zeros((200, 6))
    mu[:, 0] = rng.standard_normal(200)  # var ~1: active
    mu[:, 1] = 0.2 * rng.standard_normal(200)  # var ~0.04: active
    mu[:, 2] = 0.01 * rng.standard_normal(200)  # var ~1e-4: inactive
    mu[:, 3] = 5.0  # constant: inactive
    assert active_units(mu) == 2
    assert active_units(torch.from_numpy(mu).float()) == 2
    assert active_units(mu, threshold=1e-5) == 3


def test_linear_probe_separable_and_random():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((3, 10)) * 5
    y = rng.integers(0, 3, 600)
    feats = centers[y] + rng.standard_normal((600, 10))
    acc = linear_probe(feats[:400], y[:400], feats[400:], y[400:])
    assert acc > 0.97
    assert acc == linear_probe(feats[:400], y[:400], feats[400:], y[400:])  # deterministic
    noise = rng.standard_normal((2000, 10))
    labels = rng.integers(0, 4, 2000)
    chance = linear_probe(noise[:1000], labels[:1000], noise[1000:], labels[1000:])
    assert 0.18 < chance < 0.32
