"""Device choice (CUDA -> MPS -> CPU), thread count and seeding, with the backends faked."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from common.base.device import (
    configure_threads,
    device_kind,
    is_deterministic,
    no_tf32,
    pick_device,
    reset_peak_memory,
    seed_everything,
)


@pytest.fixture
def backends(monkeypatch):
    """Fake what torch reports: ``backends(cuda=..., mps=...)``."""

    def fake(cuda: bool, mps: bool):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return fake


@pytest.fixture
def restore_torch_state(monkeypatch):
    """seed_everything flips process-wide switches: put them back for the other tests."""
    threads = torch.get_num_threads()
    det, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(det, warn_only=warn_only)
    torch.backends.cudnn.benchmark = benchmark


# ---- pick_device ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "requested, cuda, mps, expected",
    [
        ("auto", True, False, torch.device("cuda", 0)),
        ("auto", True, True, torch.device("cuda", 0)),  # CUDA first
        ("auto", False, True, torch.device("mps")),
        ("auto", False, False, torch.device("cpu")),
        ("cuda", True, False, torch.device("cuda", 0)),
        ("mps", True, True, torch.device("mps")),
        ("cpu", True, True, torch.device("cpu")),  # an explicit cpu wins over any accelerator
        ("cpu", False, False, torch.device("cpu")),
    ],
    ids=["auto-cuda", "auto-cuda-and-mps", "auto-mps", "auto-cpu", "cuda", "mps", "cpu-with-gpu", "cpu"],
)
def test_pick_device(backends, requested, cuda, mps, expected):
    backends(cuda=cuda, mps=mps)
    assert pick_device(requested) == expected


def test_pick_device_default_is_auto(backends):
    backends(cuda=False, mps=False)
    assert pick_device() == torch.device("cpu")


@pytest.mark.parametrize("requested", ["cuda", "mps"])
def test_explicit_device_without_it_raises(backends, requested):
    backends(cuda=False, mps=False)
    with pytest.raises(RuntimeError, match=f"device={requested}"):
        pick_device(requested)


@pytest.mark.parametrize(
    "allotted, expected",
    [
        ({"GPU": 1, "mps": 0}, "cuda"),
        ({"GPU": 0.25, "mps": 0}, "cuda"),  # a fractional share is still the GPU
        ({"GPU": 0, "mps": 1}, "mps"),  # an Apple node declares the custom resource
        ({"GPU": 0, "mps": 0}, "cpu"),
    ],
    ids=["gpu-share", "fractional-gpu", "apple-node", "cpu-node"],
)
def test_under_ray_the_allotment_decides_not_the_hardware(backends, allotted, expected):
    backends(cuda=True, mps=True)  # a node with every accelerator: only what the trial was given counts
    assert device_kind("auto", allotted) == expected


def test_an_explicit_device_wins_over_the_allotment():
    assert device_kind("cpu", {"GPU": 1}) == "cpu"
    with pytest.raises(ValueError, match="device='tpu'"):
        device_kind("tpu", None)


def test_a_gpu_share_on_a_node_without_cuda_is_a_clear_error(backends):
    backends(cuda=False, mps=False)
    with pytest.raises(RuntimeError, match="no CUDA GPU is visible"):
        pick_device("auto", {"GPU": 1})


# ---- configure_threads -------------------------------------------------------------------------------
@pytest.mark.parametrize("num_cpus, expected", [(1, 1), (2, 2), (2.0, 2), (1.5, 1), (0.5, 1)])
def test_configure_threads(restore_torch_state, num_cpus, expected):
    assert configure_threads(num_cpus) == expected
    assert torch.get_num_threads() == expected


@pytest.mark.parametrize("num_cpus", [None, 0])
def test_configure_threads_falls_back_to_cpu_count(restore_torch_state, num_cpus):
    n = configure_threads(num_cpus)
    assert n == max(1, os.cpu_count() or 1)
    assert torch.get_num_threads() == n


# ---- seed_everything ---------------------------------------------------------------------------------
def _draws():
    return random.random(), np.random.rand(3), torch.randn(4)


@pytest.mark.parametrize("deterministic", [False, True])
def test_seed_everything_seeds_python_numpy_and_torch_as_seeding_each_by_hand(restore_torch_state, deterministic):
    """Our contract (not torch's seeding): python's, numpy's and torch's global streams are each where
    seeding them by hand with the same seed puts them, and the returned generator is torch's seed."""
    random.seed(0)  # the three streams somewhere else first
    np.random.seed(0)
    torch.manual_seed(0)
    g = seed_everything(123, deterministic=deterministic)
    ours = (*_draws(), torch.randn(4, generator=g))
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    by_hand = (*_draws(), torch.randn(4, generator=torch.Generator().manual_seed(123)))
    assert ours[0] == by_hand[0] and np.array_equal(ours[1], by_hand[1])
    assert torch.equal(ours[2], by_hand[2]) and torch.equal(ours[3], by_hand[3])


def test_seed_everything_returns_a_seeded_cpu_generator(restore_torch_state):
    g = seed_everything(7, deterministic=False)
    assert isinstance(g, torch.Generator)
    assert g.device == torch.device("cpu")
    assert g.initial_seed() == 7
    assert torch.equal(torch.randperm(10, generator=g), torch.randperm(10, generator=torch.Generator().manual_seed(7)))


def test_seed_everything_deterministic_switches(restore_torch_state):
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.benchmark is False
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_a_reused_worker_switches_determinism_both_ways(restore_torch_state):
    seed_everything(0, deterministic=False)  # a CUDA trial with deterministic=auto
    assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark is True
    seed_everything(0, deterministic=True)  # the next trial in the same Ray worker, on CPU
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark is False


@pytest.mark.parametrize(
    "setting, kind, expected",
    [
        ("auto", "cpu", True),
        ("auto", "mps", True),
        ("auto", "cuda", False),
        ("on", "cuda", True),
        ("off", "cpu", False),
    ],
)
def test_deterministic_auto_is_on_except_on_cuda(setting, kind, expected):
    assert is_deterministic(setting, kind) is expected


def test_no_tf32_turns_it_off_inside_and_restores_it():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        with no_tf32():
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_each_trial_starts_its_gpu_memory_peak_from_zero(monkeypatch):
    reset = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: reset.append(device))
    reset_peak_memory(torch.device("cpu"))
    assert reset == []
    reset_peak_memory(torch.device("cuda", 0))
    assert reset == [torch.device("cuda", 0)]


def test_seed_everything_large_seed(restore_torch_state):
    """numpy takes 32 bits only: a larger seed is reduced mod 2**32 for numpy (not an error), and given
    whole to python and torch."""
    seed = 2**40 + 5
    seed_everything(seed, deterministic=False)
    ours = _draws()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    by_hand = _draws()
    assert ours[0] == by_hand[0] and np.array_equal(ours[1], by_hand[1]) and torch.equal(ours[2], by_hand[2])
    assert torch.initial_seed() == seed


# ---- the real accelerator ---------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_forward_on_picked_gpu():
    from common.trial.models import ConvVAE

    device = pick_device()
    assert device.type == "cuda"
    torch.manual_seed(0)
    vae = ConvVAE(latent_dim=8, base_channels=4, hidden_dim=16).to(device)
    x = torch.rand(2, 3, 32, 32, device=device) * 2 - 1
    x_hat, mu, logvar = vae(x)
    assert x_hat.device.type == "cuda" and x_hat.shape == x.shape
    assert mu.shape == logvar.shape == (2, 8)
    assert torch.isfinite(x_hat).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_inception_features_on_gpu_match_cpu():
    from common.metrics.evaluation import InceptionFeatures

    x = (torch.arange(2 * 3 * 32 * 32) % 251).reshape(2, 3, 32, 32).to(torch.uint8)
    with torch.no_grad():
        cpu = InceptionFeatures()(x)
        gpu = InceptionFeatures().cuda()(x.cuda()).cpu()
    assert gpu.shape == (2, 2048)
    assert torch.allclose(cpu, gpu, rtol=1e-2, atol=1e-3)  # TF32 / cuDNN kernels differ in rounding only


@pytest.mark.parametrize(
    "flags, gpus, said",
    [
        ("fpu avx2 avx512f avx512_bf16 amx_tile", 0, "2-core AMD EPYC 9B14, AVX-512 BF16"),
        ("fpu avx avx2", 0, "2-core AMD EPYC 9B14"),  # bf16 not native: the slower class of box
        ("fpu avx avx2", 1, "2-core AMD EPYC 9B14, 1 CUDA GPU(s)"),
    ],
)
def test_a_machine_is_named_by_its_cores_cpu_native_bf16_and_gpus(monkeypatch, tmp_path, flags, gpus, said):
    from pathlib import Path

    from common.base import device

    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: {flags}\n")
    monkeypatch.setattr(device, "Path", lambda p: info if p == "/proc/cpuinfo" else Path(p))
    monkeypatch.setattr(device.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(device.torch.cuda, "device_count", lambda: gpus)
    assert device.describe_machine() == said
