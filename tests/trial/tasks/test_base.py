"""common/trial/tasks/base.py: the training precision (bf16 autocast where native, evaluation in fp32)
and the CPU memory layout every task gets."""

from __future__ import annotations

import math

import pytest
import torch

from common.base.data import load_dataset
from common.base.device import seed_everything
from common.trial.families import FAMILIES, config_class
from common.trial.tasks.base import bf16_native


def _record_dtypes(task, seen: list) -> list:
    """Forward hooks on every conv and linear layer of the task's nets: (input dtype, output dtype,
    autocast on) per call, appended to ``seen``; returns the handles."""
    layers = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)

    def hook(module, inputs, output):
        seen.append((inputs[0].dtype, output.dtype, torch.is_autocast_cpu_enabled()))

    return [
        m.register_forward_hook(hook) for net in task.models.values() for m in net.modules() if isinstance(m, layers)
    ]


@pytest.mark.parametrize("family,precision", [("vae", "bf16"), ("vae", "fp32"), ("dcgan", "bf16"), ("dcgan", "fp32")])
def test_training_precision_and_cpu_memory_layout(family, precision):
    """bf16 autocast covers the training forward passes only; CPU models are channels_last
    (both measured faster: bench/throughput.py --variants, bench/precision.py)."""
    cfg = config_class(family).from_dict(
        {"data": "synthetic", "precision": precision, "batch_size": 64, "val_size": 128}
    )
    if precision == "bf16" and not bf16_native(torch.device("cpu")):  # emulated bf16 is ~20x slower: not used
        with pytest.warns(UserWarning, match="no native support"):
            task = FAMILIES[family].task(cfg, load_dataset("synthetic"), torch.device("cpu"), seed_everything(0))
        precision = "fp32"
    else:
        task = FAMILIES[family].task(cfg, load_dataset("synthetic"), torch.device("cpu"), seed_everything(0))
    assert task.precision_used == precision
    conv = next(m for net in task.models.values() for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and conv.weight.dim() == 4
    x = next(task.train.batches(64, torch.Generator().manual_seed(0)))
    with task.autocast():
        out = conv(x[:, : conv.in_channels] if conv.in_channels <= 3 else torch.zeros(1))
    assert out.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
    trained, evaluated = [], []
    handles = _record_dtypes(task, trained)
    metrics = task.train_epoch(0)
    assert all(math.isfinite(v) for v in metrics.values())
    # what the layers computed in while training: bf16 under autocast when asked for (so the hooks see it)
    assert trained and {o for _, o, _ in trained} == ({torch.bfloat16} if precision == "bf16" else {torch.float32})
    for h in handles:
        h.remove()
    handles = _record_dtypes(task, evaluated)
    task.evaluate(probe=False)  # evaluation runs in fp32 whatever the training precision
    for h in handles:
        h.remove()
    assert evaluated and set(evaluated) == {(torch.float32, torch.float32, False)}, set(evaluated)
    assert all(p.dtype == torch.float32 for net in task.models.values() for p in net.parameters())
    assert task.samples().dtype == torch.float32 and not torch.is_autocast_cpu_enabled()


# ---- bf16_native --------------------------------------------------------------------------------------
@pytest.mark.parametrize("capability, expected", [((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_bf16_is_native_on_cuda_only_from_ampere(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # true on a T4 too (emulated)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert bf16_native(torch.device("cuda", 0)) is expected
