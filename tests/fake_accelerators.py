"""Ray worker setup hook for the simulated-cluster tests (tests/test_cluster.py).

This machine has neither CUDA nor MPS. The cluster's nodes declare them anyway (a fake GPU,
the custom resource ``mps``), so a trial's *choice* of device (``common.base.device.device_kind``,
from what its node gave it) is real and is what its MLflow tag records; only the tensors stay
on the CPU: ``torch_device`` is swapped before the trial code is imported. A GPU's memory reads
as an 80 GB H100's, so ``gpu="auto"`` packs trials as it would there.
"""


def install() -> None:
    import torch

    import common.base.device

    common.base.device.torch_device = lambda kind: torch.device("cpu")
    common.base.device.gpu_memory_mb = lambda: 81_559.0
