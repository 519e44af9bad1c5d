"""Where a trial runs: device choice, thread count, seeding and determinism."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA if Ray (or the user) gave this process a GPU, else MPS, else CPU.

    Ray sets CUDA_VISIBLE_DEVICES to the GPUs it assigned the trial, so ``cuda`` here is
    always the trial's own GPU (index 0 of what it can see); a fractional GPU shares it.
    """
    if requested not in ("auto", "cuda", "mps", "cpu"):
        raise ValueError(f"device={requested!r} must be one of auto, cuda, mps, cpu")
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device=cuda was requested but no CUDA GPU is visible to this trial")
        return torch.device("cuda", 0)
    mps = getattr(torch.backends, "mps", None)
    if requested == "mps" or (requested == "auto" and mps is not None and mps.is_available()):
        if mps is None or not mps.is_available():
            raise RuntimeError("device=mps was requested but MPS is not available on this node")
        return torch.device("mps")
    return torch.device("cpu")


def configure_threads(num_cpus: float | int | None) -> int:
    """Match torch's intra-op threads and numpy's BLAS threads to the CPUs Ray allotted, so
    packed trials don't oversubscribe, and a trial computes the same numbers (eigh, lstsq) in a
    Ray worker as in ``--single-trial``."""
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency

    n = max(1, int(num_cpus or os.cpu_count() or 1))
    torch.set_num_threads(n)
    threadpool_limits(n)
    return n


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator for data order.

    Determinism: on CPU the ops used here are deterministic given the seed and thread count;
    on CUDA we ask for deterministic kernels where they exist (warn_only, since a missing
    deterministic kernel should not kill a trial).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)
