"""GAN failure-mode detectors: cheap numbers computed from what training and evaluation already have.

* Gradient norms (``grad_total_norm``): the total L2 norm of a network's gradients after
  ``backward``, read before the optimizer step and without clipping. Exploding D gradients
  (instability) or vanishing G gradients (D wins, G stops learning) show up here first.
  The value stays a tensor, so an epoch's steps accumulate on the device with no sync.
* Sample diversity (``mean_pairwise_distance``): the mean pairwise L2 distance between the
  feature vectors of a sample set. Divided by the same number for real test images it reads
  ~1 for a generator that spreads its samples like the data and << 1 for a collapsed one
  (``MODE_COLLAPSE_THRESHOLD``). It is the project's randconv feature space (common.metrics),
  so like ``sample_fd`` it is a relative number, comparable only with itself.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

MODE_COLLAPSE_THRESHOLD = 0.5  # diversity below this: ``mode_collapse`` = 1
DIVERSITY_REF_IMAGES = 2000  # real test images behind the diversity reference (fixed, evenly spaced)


def grad_total_norm(parameters: Iterable[torch.Tensor]) -> torch.Tensor:
    """Total L2 norm of the ``.grad`` of ``parameters`` (those with one) -> 0-dim tensor.

    The same number ``clip_grad_norm_`` would compute, without clipping and without a
    host sync (``torch.nn.utils.get_total_norm``, foreach kernels). 0 when no gradients.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, norm_type=2.0)


def mean_pairwise_distance(features: np.ndarray | torch.Tensor, chunk: int = 1024) -> float:
    """Mean L2 distance over all pairs i != j of the rows of ``features`` (N,F) -> float.

    Computed in float64, ``chunk`` rows at a time (memory O(chunk * N)); N = 1000 costs a few
    milliseconds. Needs N >= 2.
    """
    x = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features)
    x = x.detach().to(torch.float64).flatten(1)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"mean_pairwise_distance needs at least 2 rows, got {n}")
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, n, chunk):
        block = torch.cdist(x[start:start + chunk], x)  # (c, N)
        rows = torch.arange(block.shape[0])
        block[rows, rows + start] = 0.0  # the diagonal (mm-based cdist leaves ~1e-8 there)
        total += block.sum().cpu()
    return float(total / (n * (n - 1)))


def reference_indices(n: int, k: int = DIVERSITY_REF_IMAGES) -> torch.Tensor:
    """min(n, k) evenly spaced indices in [0, n): a fixed, RNG-free subset -> (min(n,k),) int64."""
    k = min(n, k)
    return torch.linspace(0, n - 1, k).round().long()


def diversity_ratio(fake_features: np.ndarray | torch.Tensor, real_reference: float) -> float:
    """``mean_pairwise_distance(fake_features) / real_reference`` (~1 healthy, << 1 collapsed)."""
    if not real_reference > 0:
        raise ValueError(f"real reference diversity must be > 0, got {real_reference}")
    return mean_pairwise_distance(fake_features) / real_reference


def mode_collapse_flag(diversity: float, threshold: float = MODE_COLLAPSE_THRESHOLD) -> float:
    """1.0 if ``diversity`` < ``threshold`` else 0.0 (a float, so it logs as an MLflow metric)."""
    return 1.0 if diversity < threshold else 0.0
