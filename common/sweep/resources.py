"""What one trial needs and where it runs: GPU shares for ``--gpus-per-trial auto``, the check
that some node can hold a trial, and how many run at once."""

from __future__ import annotations

import math
import warnings

from common.base.device import gpu_memory_mb
from common.trial.config import ConfigError

MAX_PACK = 16  # trials per GPU at most: the largest count bench/packing.py measures
GPU_MEMORY_USE = 0.9  # of a GPU's memory that packed trials may plan on: the rest is fragmentation headroom


def gpu_plan(gpu_memory_mb: float | None, need_mb: float, cpus_per_gpu: float, cpus_per_trial: float) -> int:
    """How many trials share one GPU: as many as ``GPU_MEMORY_USE`` of its memory holds at
    ``need_mb`` each and its node's CPUs per GPU can feed, at most ``MAX_PACK``, at least 1;
    1 when the GPU's memory is unknown."""
    if not gpu_memory_mb:
        return 1
    by_memory = int(GPU_MEMORY_USE * gpu_memory_mb // max(need_mb, 1))
    by_cpus = int(cpus_per_gpu // cpus_per_trial) if cpus_per_trial else MAX_PACK
    return max(1, min(by_memory, by_cpus, MAX_PACK))


def resolve_gpus(resources: dict, need_mb: float) -> dict[str, float]:
    """``resources`` with ``gpu="auto"`` replaced by a share: none on a cluster without GPUs (a
    trial on an Apple node, declared ``mps``, still uses MPS), else ``1/gpu_plan(...)`` of a GPU,
    sized by the smallest GPU node's CPUs per GPU and a probe of its GPU memory."""
    if resources["gpu"] != "auto":
        return resources
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive") and n["Resources"].get("GPU")]
    if not nodes:
        return {**resources, "gpu": 0.0}
    per_gpu = min(n.get("CPU", 0) / n["GPU"] for n in nodes)
    k = gpu_plan(_probe_gpu_memory_mb(), need_mb, per_gpu, resources["cpu"])
    return {**resources, "gpu": math.floor(1e4 / k) / 1e4}  # Ray counts GPU shares in 1e-4 steps


def _probe_gpu_memory_mb() -> float | None:
    """A GPU node's GPU memory, MiB, from a tiny task placed there (the driver may have no GPU)."""
    import ray

    @ray.remote(num_gpus=1e-4, num_cpus=0)
    def probe():
        return gpu_memory_mb()

    try:
        return ray.get(probe.remote(), timeout=120)
    except Exception as e:  # noqa: BLE001 - no answer: one trial per GPU, and say so
        warnings.warn(f"could not read the GPU's memory ({type(e).__name__}); packing 1 trial per GPU")
        return None


def placement(resources: dict[str, float]) -> str:
    """What the sweep chose, for the console and each run's ``placement`` tag, e.g.
    ``8 trials at once, 1/8 GPU each (cuda)``."""
    import ray

    n = slots(resources)
    at_once = f"{n} trial{'s' if n > 1 else ''} at once"
    gpu = resources["gpu"]
    if gpu:
        share = f"1/{round(1 / gpu)}" if gpu < 1 and abs(1 / gpu - round(1 / gpu)) < 0.01 else f"{gpu:g}"
        return f"{at_once}, {share} GPU each (cuda)"
    where = "cpu, mps on Apple nodes" if ray.cluster_resources().get("mps") else "cpu"
    return f"{at_once}, {resources['cpu']:g} CPU each ({where})"


def _ray_units(resources: dict[str, float]) -> dict[str, float]:
    """A trial's {"cpu", "gpu", "memory_mb"} in the names and units of Ray's node resources."""
    return {"CPU": resources["cpu"], "GPU": resources["gpu"], "memory": resources.get("memory_mb", 0) * 2**20}


def check_fits(resources: dict[str, float]) -> None:
    """ConfigError unless some node of the cluster can hold one trial: Tune would otherwise wait
    forever for a node that never comes."""
    import ray

    need = _ray_units(resources)
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if any(all(n.get(k, 0) >= v for k, v in need.items()) for n in nodes):
        return
    best = {k: max((n.get(k, 0) for n in nodes), default=0) for k in need}
    short = [k for k in need if best[k] < need[k]]
    shown = lambda k, v: f"{v / 2**20:,.0f} MiB" if k == "memory" else f"{v:g}"
    flag = {"CPU": "--cpus-per-trial", "GPU": "--gpus-per-trial", "memory": "--memory-per-trial"}
    raise ConfigError(
        "a trial needs "
        + ", ".join(f"{k} {shown(k, need[k])}" for k in short or need)
        + " but no node has that much (largest: "
        + ", ".join(f"{k} {shown(k, best[k])}" for k in short or need)
        + "); lower "
        + " / ".join(flag[k] for k in short or need)
        + " or add a bigger node"
    )


def slots(resources: dict[str, float]) -> int:
    """How many trials fit at once on this cluster (the searcher should not run ahead of it):
    the scarcest of CPUs, GPUs and memory, each total over the trial's need."""
    import ray

    total = ray.cluster_resources()
    need = _ray_units(resources)
    return max(1, min((int(total.get(k, 0) // v) for k, v in need.items() if v), default=10**6))
