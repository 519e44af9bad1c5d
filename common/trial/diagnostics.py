"""GAN failure-mode detectors: cheap numbers computed from what training and evaluation already have.

* Gradient norms (``grad_total_norm``): the total L2 norm of a network's gradients after
  ``backward``, read before the optimizer step and without clipping. Exploding D gradients
  (instability) or vanishing G gradients (D wins, G stops learning) show up here first.
  The value stays a tensor, so an epoch's steps accumulate on the device with no sync.
* Mode collapse (``mode_collapse_flag``): the slides' symptom, "missing classes", read off the
  domain classifier's predictions for the fixed-z samples (``common.metrics.maths.class_balance``):
  flagged when fewer than ``MODE_COLLAPSE_COVERAGE`` of the classes get at least a tenth of their
  fair share. bench/proxy.py checks it against Inception recall on real checkpoints.
"""

from __future__ import annotations

from typing import Iterable

import torch

MODE_COLLAPSE_COVERAGE = 0.8  # class coverage below this: ``mode_collapse`` = 1 (> 2 of 10 classes missing)


def grad_total_norm(parameters: Iterable[torch.Tensor]) -> torch.Tensor:
    """Total L2 norm of the ``.grad`` of ``parameters`` (those with one) -> 0-dim tensor.

    The same number ``clip_grad_norm_`` would compute, without clipping and without a
    host sync (``torch.nn.utils.get_total_norm``, foreach kernels). 0 when no gradients.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, norm_type=2.0)


def mode_collapse_flag(class_coverage: float, threshold: float | None = None) -> float:
    """1.0 if ``class_coverage`` < ``threshold`` (default ``MODE_COLLAPSE_COVERAGE``) else 0.0 (a float,
    so it logs as an MLflow metric)."""
    return 1.0 if class_coverage < (MODE_COLLAPSE_COVERAGE if threshold is None else threshold) else 0.0
