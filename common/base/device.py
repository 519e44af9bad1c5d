"""Where a trial runs: device choice, thread count, seeding and determinism."""

from __future__ import annotations

import contextlib
import os
import random
import traceback
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from common.base.errors import first_line


def device_kind(requested: str = "auto", allotted: Mapping[str, float] | None = None) -> str:
    """Which device a trial uses: "cuda", "mps" or "cpu".

    allotted: what the cluster gave this trial, ``{"GPU": share, "mps": n}`` (``mps`` = the
    custom resource an Apple node declares: ``ray start --resources '{"mps": 1}'``). A Ray trial
    passes it; ``--single-trial`` passes None and the local hardware decides. Under Ray a trial
    uses CUDA only with a GPU share (a trial without one, on a GPU node, must not take the GPU
    from those that have one) and MPS only on a node that declares it.
    """
    if requested not in ("auto", "cuda", "mps", "cpu"):
        raise ValueError(f"device={requested!r} must be one of auto, cuda, mps, cpu")
    if requested != "auto":
        return requested
    if allotted is not None:
        return "cuda" if allotted.get("GPU", 0) > 0 else "mps" if allotted.get("mps", 0) > 0 else "cpu"
    return "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"


# CPU features that change which kernels oneDNN / MKL run, and so a run's numbers in their last digits
# (bf16 is native only with AVX-512 BF16 or AMX; fp16 conversions need F16C).
NUMERIC_FLAGS = (
    "fma", "f16c", "avx", "avx2", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "bf16",
)  # fmt: skip


def cpu_flags() -> str:
    """The ``NUMERIC_FLAGS`` this CPU has, space-separated in that order ("unknown" off Linux), e.g.
    "fma f16c avx avx2 avx512f avx512_vnni avx512_bf16": a run's ``cpu_flags`` tag."""
    with contextlib.suppress(OSError):
        info = Path("/proc/cpuinfo").read_text().splitlines()
        have = set()
        for line in info:
            if line.startswith(("flags", "Features")):
                have |= set(line.split(":", 1)[1].split())
        return " ".join(f for f in NUMERIC_FLAGS if f in have)
    return "unknown"


def describe_machine() -> str:
    """This machine in a few words, for a number's record: cores, CPU model, whether bf16 is native
    (AVX-512 BF16) and how many CUDA GPUs, e.g. "2-core AMD EPYC 9B14, AVX-512 BF16" (the count, not
    the GPU's name: naming it would start CUDA in the driver, on the GPU its trials need)."""
    cpu, flags = "unknown CPU", ""
    with contextlib.suppress(OSError):
        info = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
        flags = next((line for line in info if line.startswith("flags")), "")
    out = f"{os.cpu_count()}-core {cpu}" + (", AVX-512 BF16" if " avx512_bf16" in flags else "")
    return out + (f", {n} CUDA GPU(s)" if (n := torch.cuda.device_count()) else "")


def torch_device(kind: str) -> torch.device:
    """The torch device for ``kind``; a clear error where this process has no such device.

    Ray sets CUDA_VISIBLE_DEVICES to the GPUs it assigned the trial, so ``cuda`` here is
    always the trial's own GPU (index 0 of what it can see); a fractional GPU shares it.
    """
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device=cuda was requested but no CUDA GPU is visible to this trial")
        return torch.device("cuda", 0)
    if kind == "mps":
        if not mps_available():
            raise RuntimeError("device=mps was requested but MPS is not available on this node")
        return torch.device("mps")
    return torch.device("cpu")


def pick_device(requested: str = "auto", allotted: Mapping[str, float] | None = None) -> torch.device:
    """CUDA if this process was given a GPU, else MPS, else CPU (``device_kind`` decides)."""
    return torch_device(device_kind(requested, allotted))


def gpu_memory_mb() -> float | None:
    """Total memory of this process's first CUDA GPU, MiB; None without one."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / 2**20


def reset_peak_memory(device: torch.device) -> None:
    """Start a trial's ``peak_gpu_mem_mb`` from zero: Ray reuses a worker for trial after trial,
    and CUDA's peak counter is per process."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


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

    deterministic (``is_deterministic``): deterministic kernels where torch has them (warn_only:
    a missing one should not kill a trial); on CPU the ops used here are deterministic anyway,
    given the seed and thread count. Otherwise cuDNN autotunes its convolutions
    (``cudnn.benchmark``). Both switches are set either way: Ray reuses a worker across trials.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic
    return torch.Generator().manual_seed(seed)


def is_deterministic(setting: str, kind: str) -> bool:
    """The config field ``deterministic`` ("auto" | "on" | "off") on a ``kind`` device: auto is
    on, except on CUDA, where cuDNN's autotuned kernels are the fast ones (not yet measured
    here: BENCHMARKS.md)."""
    return setting == "on" or (setting == "auto" and kind != "cuda")


@contextlib.contextmanager
def no_tf32():
    """fp32 matmuls and convolutions at full precision inside (TF32 off, the flags restored after):
    every evaluation runs in it, so an Ampere+ GPU's numbers match the CPU's to fp32 round-off."""
    matmul, conv = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, conv


class DeviceError(RuntimeError):
    """A trial's op failed on its accelerator (an op or dtype the device lacks, its memory)."""


def device_failure(exc: BaseException, kind: str, epoch: int) -> DeviceError | None:
    """The one-line ``DeviceError`` for ``exc`` raised at ``epoch`` on a trial's ``kind`` device,
    naming the device and the line of this project that ran the op; None on the CPU, or for an
    error that is not the device's (a ``ValueError`` from bad numbers, say)."""
    if kind == "cpu" or not isinstance(exc, (TypeError, RuntimeError)) or isinstance(exc, DeviceError):
        return None
    root = Path(__file__).resolve().parents[2]  # the checkout
    ours = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if any(Path(f.filename).resolve().is_relative_to(root / d) for d in ("common", "trainables"))
    ]
    where = (
        f" in {Path(ours[-1].filename).resolve().relative_to(root)}:{ours[-1].lineno} `{ours[-1].line}`" if ours else ""
    )
    return DeviceError(f"trial failed on {kind} at epoch {epoch}{where}: {type(exc).__name__}: {first_line(exc, 300)}")
