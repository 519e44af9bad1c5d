"""GAN failure-mode detectors: cheap numbers computed from what training and evaluation already have.

* Gradient norms (``grad_total_norm``): the total L2 norm of a network's gradients after
  ``backward``, read before the optimizer step and without clipping. Exploding D gradients
  (instability) or vanishing G gradients (D wins, G stops learning) show up here first.
  The value stays a tensor, so an epoch's steps accumulate on the device with no sync.
* Mode collapse (``mode_collapse_flag``): many z, (nearly) one image. Read off ``diversity``, the
  median distance from each fixed-z sample to its nearest other sample in the domain classifier's
  features over the same for as many validation images (common.metrics.maths
  .nearest_neighbour_distance): flagged below ``MODE_COLLAPSE_DIVERSITY``. bench/collapse.py
  calibrated it (BENCHMARKS.md): real images read 1.0, trained DCGANs and VAEs 0.47-0.73, a
  trained generator forced to collapse (10 or 50 distinct z, exact or within ±0.1) 0.00-0.16.
  Class coverage, the slides' "missing classes", is reported as a number instead: every VAE's
  blurry samples cover half the classes, so as a flag it fired on healthy models.
"""

from __future__ import annotations

from typing import Iterable

import torch

MODE_COLLAPSE_DIVERSITY = 0.3  # diversity below this: ``mode_collapse`` = 1 (between the two groups above)


def grad_total_norm(parameters: Iterable[torch.Tensor]) -> torch.Tensor:
    """Total L2 norm of the ``.grad`` of ``parameters`` (those with one) -> 0-dim tensor.

    The same number ``clip_grad_norm_`` would compute, without clipping and without a
    host sync (``torch.nn.utils.get_total_norm``, foreach kernels). 0 when no gradients.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, norm_type=2.0)


def mode_collapse_flag(diversity: float, threshold: float = MODE_COLLAPSE_DIVERSITY) -> float:
    """1.0 if ``diversity`` < ``threshold`` else 0.0 (a float, so it logs as an MLflow metric)."""
    return 1.0 if diversity < threshold else 0.0
