"""common/trial/diagnostics.py: the gradient norm and the mode-collapse flag."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from common.trial.diagnostics import grad_total_norm, mode_collapse_flag


def test_grad_total_norm_matches_manual():
    lin = nn.Linear(5, 3)
    lin(torch.randn(4, 5)).pow(2).sum().backward()
    manual = math.sqrt(sum(p.grad.pow(2).sum().item() for p in lin.parameters()))
    assert grad_total_norm(lin.parameters()).item() == pytest.approx(manual, rel=1e-6)
    assert grad_total_norm(nn.Linear(2, 2).parameters()).item() == 0.0  # no grads yet


def test_mode_collapse_flag_threshold():
    assert mode_collapse_flag(0.29) == 1.0 and mode_collapse_flag(0.3) == 0.0 and mode_collapse_flag(1.0) == 0.0
    assert mode_collapse_flag(0.5, threshold=0.6) == 1.0
