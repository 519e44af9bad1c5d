"""Peak memory of one trial per family: what ``peak_rss_mb`` (the Ray memory reservation) rests on.

Run (from the repository root)::

    .venv/bin/python bench/memory.py --data ../shared/data/cifar10-jpeg.tar.gz
    .venv/bin/python bench/memory.py                        # synthetic data

Each family's trial runs in a fresh Python process (so nothing else inflates its peak) through
``common.trial.loop.run_trial`` with a ``LocalSession``, at the family's defaults (10k train subset,
the whole test split, batch 128) for ``--epochs`` epochs; the last epoch includes the linear
probe, the largest allocation (DCGAN: 20,000 x 7,168 D features). Reported: the process's peak
RSS (``ru_maxrss``), and on CUDA the peak GPU memory torch allocated, next to the value the
config reserves (``TrialConfig.memory_mb()``). Repeats give the median (min-max).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from common.trial.families import FAMILIES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import contextlib, io, json, resource, sys, tempfile
sys.path.insert(0, {root!r})
import torch
from mlflow.tracking import MlflowClient
from common.trial.families import config_class
from common.trial.contract import LocalSession, SweepContext
from common.trial.loop import run_trial
from common.base.tracking import get_or_create_experiment, prepare_store

family, data, epochs, device = {family!r}, {data!r}, {epochs}, {device!r}
with tempfile.TemporaryDirectory() as tmp:
    uri = f"sqlite:///{{tmp}}/mlflow.db"
    prepare_store(uri)
    exp = get_or_create_experiment(MlflowClient(uri), "memory", None)
    extra = {{"val_size": 128}} if data == "synthetic" else {{}}
    cfg = config_class(family).from_dict({{"data": data, "max_epochs": epochs, "probe_every": 0, "device": device, **extra}})
    ctx = SweepContext(tracking_uri=uri, experiment_id=exp, parent_run_id=None, metric=cfg.default_metric,
                       mode="min", cpus_per_trial=1)
    with contextlib.redirect_stdout(io.StringIO()):
        run_trial(cfg, ctx, LocalSession(f"{{tmp}}/t"))
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    print(json.dumps({{"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "gpu_mb": gpu,
                      "reserved_mb": cfg.memory_mb()}}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="synthetic")
    p.add_argument("--families", nargs="+", default=list(FAMILIES), help="default: every registered family")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    args = p.parse_args()
    data = args.data if args.data == "synthetic" else str(Path(args.data).resolve())

    print(f"data {data}, {args.epochs} epoch(s), device {args.device}, {args.repeats} repeat(s): median (min-max)")
    print("| family | peak RSS, MiB | peak GPU memory, MiB | reserved per trial (memory_mb), MiB |")
    print("|---|---|---|---|")
    for family in args.families:
        rows = []
        for _ in range(args.repeats):
            code = CHILD.format(root=str(ROOT), family=family, data=data, epochs=args.epochs, device=args.device)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
        rss = [r["rss_mb"] for r in rows]
        gpu = [r["gpu_mb"] for r in rows if r["gpu_mb"] is not None]
        gpu_cell = f"{statistics.median(gpu):,.0f}" if gpu else "n/a (CPU)"
        print(
            f"| {family} | {statistics.median(rss):,.0f} ({min(rss):,.0f}-{max(rss):,.0f}) | {gpu_cell} | "
            f"{rows[0]['reserved_mb']:,} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
