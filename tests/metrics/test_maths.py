"""Fréchet distance, the random-conv extractor, active units, the linear probe and class balance."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.metrics.maths import (
    PROBE_CS,
    RandomConvFeatures,
    active_units,
    class_balance,
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
    y = rng.integers(0, 3, 900)
    feats = centers[y] + rng.standard_normal((900, 10))
    out = linear_probe(feats[:400], y[:400], feats[400:600], y[400:600], feats[600:], y[600:])
    assert out["test_acc"] > 0.97 and out["val_acc"] > 0.97 and out["converged"] == 1.0 and out["C"] in PROBE_CS
    assert out == linear_probe(feats[:400], y[:400], feats[400:600], y[400:600], feats[600:], y[600:])  # deterministic
    assert "test_acc" not in linear_probe(feats[:400], y[:400], feats[400:600], y[400:600])
    noise = rng.standard_normal((3000, 10))
    labels = rng.integers(0, 4, 3000)
    chance = linear_probe(noise[:1000], labels[:1000], noise[1000:2000], labels[1000:2000], noise[2000:], labels[2000:])
    assert 0.18 < chance["test_acc"] < 0.32


def test_linear_probe_chooses_c_on_validation_only():
    """Regularisation strength comes from the validation split; the test split never influences it."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 1500)
    feats = np.c_[y + 0.8 * rng.standard_normal(1500), rng.standard_normal((1500, 40))]
    base = linear_probe(feats[:200], y[:200], feats[200:700], y[200:700], feats[700:], y[700:])
    shuffled = linear_probe(feats[:200], y[:200], feats[200:700], y[200:700], feats[700:], rng.permutation(y[700:]))
    assert shuffled["C"] == base["C"] and shuffled["val_acc"] == base["val_acc"]  # test labels changed nothing
    assert base["test_acc"] != shuffled["test_acc"]
    flipped = linear_probe(feats[:200], y[:200], feats[200:700], 1 - y[200:700], feats[700:], y[700:])
    assert flipped["C"] != base["C"]  # but the validation labels do decide it


def test_linear_probe_reports_non_convergence_without_silencing_it():
    from sklearn.exceptions import ConvergenceWarning

    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((300, 50)), rng.integers(0, 3, 300)
    with pytest.warns(ConvergenceWarning):
        out = linear_probe(x[:200], y[:200], x[200:], y[200:], max_iter=2)
    assert out["converged"] == 0.0


def test_class_balance():
    assert class_balance(np.arange(100) % 10, 10) == (1.0, pytest.approx(0.0, abs=1e-12))
    cov, kl = class_balance(np.zeros(100, int), 10)
    assert cov == pytest.approx(0.1) and kl == pytest.approx(np.log(10))
    # 9 classes at their fair share, one below a tenth of it: 0.9 coverage
    labels = np.r_[np.repeat(np.arange(9), 111), [9]]
    assert class_balance(labels, 10)[0] == pytest.approx(0.9)
    with pytest.raises(ValueError):
        class_balance(np.array([], int), 10)


@pytest.mark.parametrize("n_train, n_feats", [(4000, 64), (2000, 512)], ids=["n>>f", "f~n/4"])
def test_the_torch_probe_matches_sklearns_accuracy_within_half_a_point(n_train, n_feats):
    """The GPU path (full-batch L-BFGS in torch) against scikit-learn, both on this CPU: the same
    objective, the same C chosen, accuracy within 0.5 pp on val and test."""
    rng = np.random.default_rng(3)
    n = n_train + 4000
    y = rng.integers(0, 10, n)
    feats = (rng.standard_normal((10, n_feats)) * 2.0 / np.sqrt(n_feats))[y] + rng.standard_normal((n, n_feats))
    feats[:, : n_feats // 4] *= 5.0  # unequal scales: the standardisation matters
    parts = (
        feats[:n_train],
        y[:n_train],
        feats[n_train : n_train + 2000],
        y[n_train : n_train + 2000],
        feats[n_train + 2000 :],
        y[n_train + 2000 :],
    )
    ref = linear_probe(*parts, solver="sklearn")
    ours = linear_probe(*parts, solver="torch")
    assert 0.3 < ref["test_acc"] < 0.95  # neither trivial nor chance
    assert ours["C"] == ref["C"] and ours["converged"] == 1.0
    assert abs(ours["val_acc"] - ref["val_acc"]) <= 0.005 and abs(ours["test_acc"] - ref["test_acc"]) <= 0.005
