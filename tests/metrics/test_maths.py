"""common/metrics/maths.py: the Fréchet distance, KID, precision/recall/density/coverage and the Inception
Score against closed forms and reference implementations; the random-conv extractor, active units, the
linear probe and class balance."""

from __future__ import annotations

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
    inception_score,
    kid,
    linear_probe,
    prdc,
)


# ---- Fréchet distance ---------------------------------------------------------------------
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
    feats = rng.standard_normal((4, 10))  # fewer samples than features: rank-deficient (rank 3)
    mu, sigma = feature_stats(feats)
    # FD(x, x) = 0 up to the round-off of the null space's square roots
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6 * np.trace(sigma))
    # the same singular covariance, means apart: (S S)^(1/2) = S, so FD = |mu1 - mu2|^2 exactly
    shift = rng.standard_normal(10)
    assert frechet_distance(mu, sigma, mu + shift, sigma) == pytest.approx(shift @ shift, rel=1e-6)
    # singular diagonal covariances: |mu1 - mu2|^2 + sum (sqrt s1 - sqrt s2)^2 = 2 + (1 + 0 + 1 + 9) = 13
    s1, s2 = np.array([4.0, 0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0, 9.0])
    mu1, mu2 = np.array([1.0, 2.0, 0.0, 0.0]), np.array([0.0, 2.0, 0.0, 1.0])
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(13.0, rel=1e-12)


def _spd_scaled(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_fid_of_a_feature_set_with_itself_is_zero():
    feats = np.random.default_rng(0).standard_normal((500, 32))
    stats = feature_stats(feats)
    assert frechet_distance(*stats, *stats) == pytest.approx(0.0, abs=1e-6)


def test_fid_diagonal_gaussians_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(16), rng.standard_normal(16)
    s1, s2 = rng.uniform(0.1, 5.0, 16), rng.uniform(0.1, 5.0, 16)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_fid_matches_torch_fidelity_sqrtm_for_non_diagonal_covariances():
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    rng = np.random.default_rng(2)
    mu1, mu2 = rng.standard_normal(64), rng.standard_normal(64) * 0.5
    s1, s2 = _spd_scaled(rng, 64), _spd_scaled(rng, 64)
    ref = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, verbose=False)[
        "frechet_inception_distance"
    ]
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ref > 1.0 and ours == pytest.approx(ref, rel=1e-6)


def test_fid_rank_deficient_covariance_matches_the_sample_svd_form():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((10, 40)), rng.standard_normal((10, 40)) + 0.3  # fewer samples than dims
    value = frechet_distance(*feature_stats(a), *feature_stats(b))
    # Independently, from the samples: S = B^T B with B the centred rows / sqrt(n - 1), and
    # Tr((S1 S2)^(1/2)) is the nuclear norm of B2 B1^T (a 10 x 10 SVD, no matrix square root).
    b1, b2 = ((x - x.mean(0)) / np.sqrt(len(x) - 1) for x in (a, b))
    nuclear = np.linalg.svd(b2 @ b1.T, compute_uv=False).sum()
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.sum(b1**2) + np.sum(b2**2) - 2 * nuclear
    assert expected > 1.0 and value == pytest.approx(expected, rel=1e-6)  # sqrt of the null space: ~1e-8
    same = frechet_distance(*feature_stats(a), *feature_stats(a))
    assert abs(same) < 1e-5 * value  # round-off of a singular square root


def test_fid_symmetric_for_non_commuting_covariances():
    rng = np.random.default_rng(4)
    s1, s2 = _spd_scaled(rng, 12), _spd_scaled(rng, 12)
    assert not np.allclose(s1 @ s2, s2 @ s1)
    mu1, mu2 = rng.standard_normal(12), rng.standard_normal(12)
    ab, ba = frechet_distance(mu1, s1, mu2, s2), frechet_distance(mu2, s2, mu1, s1)
    assert ab > 0 and ab == pytest.approx(ba, rel=1e-9)


def test_feature_stats():
    feats = np.random.default_rng(0).standard_normal((50, 3))
    mu, sigma = feature_stats(feats)
    assert mu.shape == (3,) and sigma.shape == (3, 3) and mu.dtype == np.float64
    assert np.allclose(sigma, np.cov(feats.T))


# ---- KID ----------------------------------------------------------------------------------
def test_kid_is_unbiased_on_identical_distributions():
    vals = []
    for i in range(20):
        a, b = np.random.default_rng(100 + i).standard_normal((2, 300, 16))
        vals.append(kid(a, b, subsets=1, subset_size=300)[0])
    vals = np.array(vals)
    avg, se = vals.mean(), vals.std(ddof=1) / np.sqrt(len(vals))
    a, b = np.random.default_rng(0).standard_normal((2, 300, 16))
    shifted = kid(a, b + 0.5, subsets=1, subset_size=300)[0]
    # The biased V-statistic would sit ~0.06 above 0 here, ~50 standard errors.
    assert abs(avg) < 3 * se + 1e-12 and abs(avg) < 0.01 * shifted


def test_kid_whole_set_equals_hand_written_unbiased_mmd():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((120, 8)), rng.standard_normal((120, 8)) * 1.2 + 0.1
    d, m = x.shape[1], len(x)

    def k(a, b):
        return (a @ b.T / d + 1.0) ** 3

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    mmd2 = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.sum() / m**2
    mean, std = kid(x, y, subsets=1, subset_size=m)
    assert mean == pytest.approx(mmd2, rel=1e-9) and std == 0.0


def test_kid_positive_and_large_for_shifted_sets():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((2, 300, 16))
    near, _ = kid(a, b, subsets=10, subset_size=200)
    far, far_std = kid(a, b + 1.0, subsets=10, subset_size=200)
    assert far > 1.0 and far > 100 * abs(near) and far_std < far


# ---- precision / recall / density / coverage ----------------------------------------------
def test_prdc_identical_sets():
    # every point lies in its own k-NN ball: precision, recall and coverage are 1; each point is held by its
    # own ball and its k - 1 nearest neighbours' (k of k), so density is 1 (no distance ties here)
    x = np.random.default_rng(7).standard_normal((200, 8))
    for k in (3, 5):
        out = prdc(x, x, k=k)
        assert out == {"precision": 1.0, "recall": 1.0, "density": pytest.approx(1.0), "coverage": 1.0}, k


def test_prdc_far_apart_clusters_are_all_zero():
    rng = np.random.default_rng(8)
    real, fake = rng.standard_normal((150, 8)), rng.standard_normal((150, 8)) + 50.0
    out = prdc(real, fake, k=5)
    assert out == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


# ---- Inception Score ----------------------------------------------------------------------
def test_inception_score_uniform_logits_is_one():
    mean, std = inception_score(np.zeros((200, 10)), splits=4)
    assert mean == pytest.approx(1.0, abs=1e-9) and std == pytest.approx(0.0, abs=1e-9)


def test_inception_score_confident_and_balanced_is_num_classes():
    # The rows are shuffled (seeded) before splitting: lay the classes out so that every split
    # of the shuffled order holds each class exactly 10 times.
    perm = np.random.RandomState(0).permutation(1000)
    labels = np.empty(1000, int)
    labels[perm] = np.arange(1000) % 10
    logits = 100.0 * np.eye(10)[labels]
    mean, std = inception_score(logits, splits=10, seed=0)
    assert isinstance(mean, float) and isinstance(std, float)
    assert mean == pytest.approx(10.0, rel=1e-3) and std < 1e-3
    # Another shuffle seed leaves the splits unbalanced: each one's IS is exp(entropy of its class
    # frequencies) < 10.
    counts = np.stack(
        [
            np.bincount(labels[np.random.RandomState(1).permutation(1000)][i * 100 : (i + 1) * 100], minlength=10) / 100
            for i in range(10)
        ]
    )
    per_split = np.exp(-(counts * np.log(np.where(counts > 0, counts, 1))).sum(1))
    m, s = inception_score(logits, splits=10, seed=1)
    assert m == pytest.approx(per_split.mean(), rel=1e-6) and s == pytest.approx(per_split.std(), rel=1e-4, abs=1e-9)
    assert m < 9.9
    # One split over everything: exactly balanced, so exactly C.
    m1, s1 = inception_score(logits, splits=1)
    assert m1 == pytest.approx(10.0, rel=1e-6) and s1 == 0.0
    # Confident but all one class: 1.
    assert inception_score(100.0 * np.eye(10)[np.zeros(100, int)], splits=2)[0] == pytest.approx(1.0, abs=1e-6)


# ---- the random-conv extractor ----------------------------------------------------------------
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


def test_random_conv_fd_ranks_sets():
    net = RandomConvFeatures()
    real = net(_smooth_images(400, 0)).double().numpy()
    noise = net(torch.rand(200, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1).double().numpy()
    rr = frechet_distance(*feature_stats(real[:200]), *feature_stats(real[200:]))
    rn = frechet_distance(*feature_stats(real[:200]), *feature_stats(noise))
    assert 0 < rr and rn > 20 * rr


# ---- active units, the linear probe, class balance ---------------------------------------------
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


def test_class_balance():
    assert class_balance(np.arange(100) % 10, 10) == (1.0, pytest.approx(0.0, abs=1e-12))
    cov, kl = class_balance(np.zeros(100, int), 10)
    assert cov == pytest.approx(0.1) and kl == pytest.approx(np.log(10))
    # 9 classes at their fair share, one below a tenth of it: 0.9 coverage
    labels = np.r_[np.repeat(np.arange(9), 111), [9]]
    assert class_balance(labels, 10)[0] == pytest.approx(0.9)
    with pytest.raises(ValueError):
        class_balance(np.array([], int), 10)


def test_nearest_neighbour_distance_closed_form_duplicates_and_a_seeded_draw():
    from common.metrics.maths import nearest_neighbour_distance

    assert nearest_neighbour_distance(np.array([[0.0], [1.0], [3.0]])) == 1.0  # nearest: 1, 1, 2 -> median 1
    assert nearest_neighbour_distance(np.array([[3.0, 4.0], [0.0, 0.0]])) == 5.0
    assert nearest_neighbour_distance(np.repeat(np.eye(4), 3, axis=0)) == 0.0  # every row has a duplicate
    x = np.random.default_rng(0).normal(size=(500, 8))
    assert nearest_neighbour_distance(x, n=100, seed=1) == nearest_neighbour_distance(x, n=100, seed=1)
    assert nearest_neighbour_distance(x, n=100) > nearest_neighbour_distance(x, n=500)  # denser with more rows
    with pytest.raises(ValueError):
        nearest_neighbour_distance(np.zeros((1, 3)))
