"""Evaluation maths: Fréchet distance, KID, IS, precision/recall/density/coverage, a cheap random
feature extractor, active units, the linear probe, class balance. Pure functions over features;
the entry point that extracts features and caches the reference is common.metrics.evaluation.

Sample quality is scored as the Fréchet distance between Gaussian fits to features of
generated and real images (Heusel et al. 2017). The feature extractor is pluggable: any
``nn.Module`` mapping (B,3,32,32) images in [-1, 1] to (B,F) features, with a ``name``
attribute, works with ``common.metrics.evaluation.Evaluator``.

Inception-v3 is the standard extractor, but it resizes every image to 299x299 and runs a
24M-parameter network (its CPU cost per image: BENCHMARKS.md): scoring 1,000 samples
every epoch would cost more than the epoch. Trials therefore score every epoch in the features of
the domain classifier (common.metrics.classifier) and of ``RandomConvFeatures`` (a fixed, randomly
initialised conv net; cf. Naeem et al. 2020 on random embeddings); bench/proxy.py measures how well
each ranks checkpoints like Inception FID. Their numbers are NOT comparable with FID values in the
literature or the slides, only with each other (same extractor ``name``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


# ---- Fréchet distance ---------------------------------------------------------------------
def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian fit: features (N,F) -> (mu (F,), sigma (F,F)), float64, unbiased covariance."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"feature_stats needs a (N>=2, F) array, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians; mu (F,), sigma (F,F).

    Tr((S1 S2)^(1/2)) = sum of sqrt(eigenvalues of S1^(1/2) S2 S1^(1/2)): that matrix is
    symmetric PSD and similar to S1 S2, so two symmetric eigendecompositions replace the
    reference code's ``scipy.linalg.sqrtm(S1 @ S2)``. Same value (tested against
    torch-fidelity's sqrtm form and closed forms), faster at F = 2048 (BENCHMARKS.md), and defined for singular covariances without an eps retry: tiny negative
    eigenvalues from round-off are clipped to 0. Returns a Python float (float64 maths).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    if not (
        np.isfinite(mu1).all() and np.isfinite(mu2).all() and np.isfinite(sigma1).all() and np.isfinite(sigma2).all()
    ):
        raise ValueError("frechet_distance: non-finite mean or covariance (NaN/Inf features)")
    diff = mu1 - mu2
    w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root1 @ sigma2 @ root1
    trace_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    # A squared distance: round-off can leave it a hair below 0 for (near-)identical inputs.
    return max(0.0, float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_covmean))


# ---- feature extraction -------------------------------------------------------------------
class RandomConvFeatures(nn.Module):
    """Fixed random conv net: (B,3,32,32) in [-1, 1] -> (B,256) features.

    Three 3x3 conv + ReLU stages (32, 64, 160 channels at 32, 16, 8 px, 2x2 average pooling
    between them); the features are the global average of each stage, concatenated
    (32 + 64 + 160 = 256), so colour/edge statistics and coarser texture statistics both
    count. Weights are He-normal draws from a local ``torch.Generator`` seeded with 0 and
    held as buffers: every construction gives the same net, the global RNG is neither read
    nor advanced, and nothing is trainable. ``name`` identifies the default ``seed=0`` net;
    another seed is a different extractor whose scores must not be mixed with it.
    """

    name = "randconv256"
    widths = (32, 64, 160)

    def __init__(self, seed: int = 0):
        super().__init__()
        gen = torch.Generator(device="cpu").manual_seed(seed)
        c_in = 3
        for i, c_out in enumerate(self.widths):
            fan_in = c_in * 9
            # He scaling keeps activations O(1) through the ReLUs, so no stage dominates.
            w = torch.randn(c_out, c_in, 3, 3, generator=gen) * (2.0 / fan_in) ** 0.5
            self.register_buffer(f"w{i}", w)
            c_in = c_out
        self.dim = sum(self.widths)
        self.eval()

    def train(self, mode: bool = True) -> "RandomConvFeatures":
        # Fixed extractor: stay in eval mode whatever the caller asks.
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,32,32) -> (B,256) float32."""
        # channels_last: the memory-bound 3-channel first conv runs faster in it on CPU.
        h = x.to(self.w0.dtype).contiguous(memory_format=torch.channels_last)
        pooled = []
        for i in range(len(self.widths)):
            if i > 0:
                h = F.avg_pool2d(h, 2)
            h = F.relu(F.conv2d(h, getattr(self, f"w{i}"), padding=1))
            pooled.append(h.mean(dim=(2, 3)))
        return torch.cat(pooled, dim=1)


# ---- representation metrics ---------------------------------------------------------------
def active_units(mu: np.ndarray | torch.Tensor, threshold: float = 0.01) -> int:
    """Number of latent dims with Var_x(E_q[z|x]) > threshold (Burda et al. 2016).

    mu: posterior means (N,D) over a data set. Population variance (ddof 0), as in Burda.
    """
    if isinstance(mu, torch.Tensor):
        mu = mu.detach().cpu().double().numpy()
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2:
        raise ValueError(f"active_units needs (N, D) posterior means, got shape {mu.shape}")
    return int((mu.var(axis=0) > threshold).sum())


PROBE_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # inverse L2 strengths, tried in order; the validation split picks one
PROBE_MAX_ITER = 1000
PROBE_PATIENCE = 1  # stop trying weaker regularisation once a C value loses on validation


def linear_probe(
    train_feats: np.ndarray,
    train_y: np.ndarray,
    val_feats: np.ndarray,
    val_y: np.ndarray,
    test_feats: np.ndarray | None = None,
    test_y: np.ndarray | None = None,
    *,
    cs: tuple[float, ...] = PROBE_CS,
    max_iter: int = PROBE_MAX_ITER,
    seed: int = 0,
    device: torch.device | str = "cpu",
    solver: str = "auto",
) -> dict[str, float]:
    """A standardised multinomial logistic-regression probe, its C chosen on the validation split.

    train (N,F)/(N,), val (V,F)/(V,), optional test (M,F)/(M,) -> {"val_acc", "C", "converged"
    (1.0 if every fit converged within ``max_iter``), and "test_acc" when test data is given,
    scored with the C the validation split chose}. Fits are warm-started from strong to weak
    regularisation, stopping at the first weaker one that loses on validation (the weakly
    regularised fits of high-dimensional features are the slow ones, and the ones that overfit).

    solver: "sklearn" (lbfgs in float32, fixed ``random_state``; a fit that does not converge
    raises its ConvergenceWarning as usual and reads ``converged`` = 0), "torch" (the same
    objective by full-batch L-BFGS on ``device``: ``_TorchLogistic``), or "auto": scikit-learn on
    the CPU, where it is the faster, torch on a GPU or MPS.
    """
    from sklearn.preprocessing import StandardScaler

    f32 = lambda a: np.asarray(a, np.float32)
    scaler = StandardScaler().fit(f32(train_feats))
    tr, va = scaler.transform(f32(train_feats)), scaler.transform(f32(val_feats))
    if solver == "auto":
        solver = "sklearn" if torch.device(device).type == "cpu" else "torch"
    model = (
        _TorchLogistic(tr, train_y, max_iter, device)
        if solver == "torch"
        else _SklearnLogistic(tr, train_y, max_iter, seed)
    )
    best, converged, worse = None, True, 0
    for c in sorted(cs):
        converged &= model.fit(c)
        acc = model.score(va, val_y)
        if best is None or acc > best[0]:
            best, worse = (acc, c, model.weights()), 0
        elif (worse := worse + 1) >= PROBE_PATIENCE:
            break
    out = {"val_acc": best[0], "C": best[1], "converged": float(converged)}
    if test_feats is not None:
        model.set_weights(best[2])
        out["test_acc"] = model.score(scaler.transform(f32(test_feats)), test_y)
    return out


class _SklearnLogistic:
    """scikit-learn's lbfgs logistic regression, warm-started from one C to the next."""

    def __init__(self, x: np.ndarray, y: np.ndarray, max_iter: int, seed: int):
        from sklearn.linear_model import LogisticRegression

        self.x, self.y, self.max_iter = x, np.asarray(y), max_iter
        self.clf = LogisticRegression(max_iter=max_iter, random_state=seed, warm_start=True)

    def fit(self, c: float) -> bool:
        self.clf.set_params(C=c).fit(self.x, self.y)
        return bool(np.all(self.clf.n_iter_ < self.max_iter))

    def score(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(self.clf.score(x, np.asarray(y)))

    def weights(self):
        return self.clf.coef_.copy(), self.clf.intercept_.copy()

    def set_weights(self, weights) -> None:
        self.clf.coef_, self.clf.intercept_ = weights


class _TorchLogistic:
    """scikit-learn's objective in its mean form, mean cross-entropy + ||W||^2 / (2 C N) (the bias
    unpenalised), fit by full-batch L-BFGS with a strong-Wolfe line search on ``device``, in
    float32, warm-started. x (N,F) standardised, y (N,) labels 0..K-1."""

    def __init__(self, x: np.ndarray, y: np.ndarray, max_iter: int, device: torch.device | str):
        self.device, self.max_iter = torch.device(device), max_iter
        self.x = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        self.y = torch.as_tensor(np.asarray(y), dtype=torch.long, device=self.device)
        k = int(np.asarray(y).max()) + 1
        self.w = torch.zeros(x.shape[1], k, device=self.device, requires_grad=True)
        self.b = torch.zeros(k, device=self.device, requires_grad=True)

    def fit(self, c: float) -> bool:
        opt = torch.optim.LBFGS(
            [self.w, self.b],
            lr=1,
            max_iter=self.max_iter,
            tolerance_grad=1e-5,
            tolerance_change=1e-9,
            history_size=20,
            line_search_fn="strong_wolfe",
        )
        penalty = 1.0 / (2 * c * len(self.y))

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(self.x @ self.w + self.b, self.y) + penalty * self.w.square().sum()
            loss.backward()
            return loss

        opt.step(closure)
        return opt.state[self.w]["n_iter"] < self.max_iter

    @torch.no_grad()
    def score(self, x: np.ndarray, y: np.ndarray) -> float:
        logits = torch.as_tensor(x, dtype=torch.float32, device=self.device) @ self.w + self.b
        return float((logits.argmax(1).cpu().numpy() == np.asarray(y)).mean())

    def weights(self):
        return self.w.detach().clone(), self.b.detach().clone()

    @torch.no_grad()
    def set_weights(self, weights) -> None:
        self.w.copy_(weights[0])
        self.b.copy_(weights[1])


def class_balance(
    predicted: np.ndarray | torch.Tensor, num_classes: int, min_share: float = 0.1
) -> tuple[float, float]:
    """Class coverage of a sample set from a classifier's predicted labels (N,) -> (coverage, kl).

    coverage = share of the classes predicted for at least ``min_share`` of their fair share
    (N / K) of the samples: 1 when every class is there, 1/K when one class takes everything (the
    slides' mode-collapse symptom, "missing classes"). kl = KL(predicted-class histogram ||
    uniform) in nats: 0 for a uniform histogram, log K for a single class.
    """
    counts = np.bincount(np.asarray(predicted).astype(np.int64).ravel(), minlength=num_classes)[:num_classes]
    n = counts.sum()
    if n == 0:
        raise ValueError("class_balance needs at least one prediction")
    p = counts / n
    kl = float(np.sum(p[p > 0] * np.log(p[p > 0] * num_classes)))
    return float(np.mean(counts >= min_share * n / num_classes)), kl


def nearest_neighbour_distance(feats: np.ndarray | torch.Tensor, n: int = 1000, seed: int = 0) -> float:
    """Median, over the rows of a seeded draw of ``n`` rows of ``feats`` (N>=2, F), of the Euclidean
    distance to the nearest other row of the draw. 0 when most rows have a duplicate: a generator
    that maps many z to (nearly) one image. It shrinks as n grows, so compare sets at the same n."""
    x = torch.as_tensor(np.asarray(feats), dtype=torch.float64)
    if len(x) > n:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]]
    if len(x) < 2:
        raise ValueError("nearest_neighbour_distance needs at least two rows")
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    return float(d.min(1).values.median())


# ---- sample-set metrics over features (the maths behind common.metrics.evaluation) ----------------
def kid(
    real: np.ndarray, fake: np.ndarray, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2 with the cubic
    polynomial kernel k(x, y) = (x.y / F + 1)^3, averaged over ``subsets`` random subsets of
    ``min(subset_size, N, M)`` rows of each set. real (N,F), fake (M,F) -> (mean, std).

    The maths is torch-fidelity's (``kid_features_to_metric``), fed our features. The estimator
    is unbiased, so two samples of one distribution give a mean near 0 (it can be negative).
    """
    from torch_fidelity.metric_kid import kid_features_to_metric

    size = min(subset_size, len(real), len(fake))
    out = kid_features_to_metric(
        torch.as_tensor(np.asarray(real, np.float64)),
        torch.as_tensor(np.asarray(fake, np.float64)),
        kid_subsets=subsets,
        kid_subset_size=size,
        rng_seed=seed,
        verbose=False,
    )
    return out["kernel_inception_distance_mean"], out["kernel_inception_distance_std"]


def inception_score(logits: np.ndarray | torch.Tensor, *, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) over ``splits`` chunks (Salimans et al. 2016); logits (N,C)
    -> (mean, std). Between 1 (every prediction the same) and C (confident and uniform over
    classes). Torch-fidelity's ``isc_features_to_metric`` does the maths."""
    from torch_fidelity.metric_isc import isc_features_to_metric

    out = isc_features_to_metric(torch.as_tensor(logits), splits=splits, shuffle=True, rng_seed=seed)
    return out["inception_score_mean"], out["inception_score_std"]


def prdc(real: np.ndarray, fake: np.ndarray, *, k: int = 3) -> dict[str, float]:
    """Improved precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al.
    2020) with k-nearest-neighbour balls; real (N,F), fake (M,F) -> {precision, recall,
    density, coverage}. Precision/coverage in [0, 1]; density can exceed 1. The ``prdc``
    package (Naeem et al.'s reference code) does the maths, in float32 to halve the memory
    of its N x M distance matrices."""
    import contextlib
    import io

    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):  # it prints the set sizes
        out = compute_prdc(np.asarray(real, np.float32), np.asarray(fake, np.float32), nearest_k=k)
    return {key: float(v) for key, v in out.items()}
