"""Packing: N small trials sharing one device, aggregate training throughput vs N.

Run (from the repository root)::

    .venv/bin/python bench/packing.py --data ../shared/data/cifar10-jpeg.tar.gz --n 1 2 4 8 16   # on a GPU node
    .venv/bin/python bench/packing.py --n 1 2 4                                                # CPU, synthetic

For each N, one sweep of N DCGAN trials (default config, only the seed drawn, ``--epochs``
epochs, ASHA off) through ``common.sweep.driver.run`` on a local Ray, all N at
once: on a GPU each trial reserves ``1/N`` of it (``--gpus-per-trial``), on CPU each reserves
``cpus/N`` CPUs (threads = max(1, its share)). Aggregate throughput = images trained by all
trials / wall time from the first trial's start to the last one's end (MLflow run times), so
Ray start-up and the end stage do not count. Reported per N: aggregate images/s, its ratio
to N = 1 (the issue's goal on a GPU: >= 4x at some N), and peak memory per trial
(``peak_rss_mb``, and ``peak_gpu_mem_mb`` on CUDA).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

SPACE = """
import optuna
space = {{"seed": optuna.distributions.IntDistribution(0, 1_000_000)}}  # N independent trials
family, metric, mode = "dcgan", "val_classifier_fd", "min"
num_samples = max_concurrent = {n}
max_epochs = {epochs}
scheduler = None
"""


def packed(n: int, args, root: Path, gpu: bool) -> dict:
    from mlflow.tracking import MlflowClient

    from common.sweep.driver import SweepOptions
    from trainables.sweep import run

    work = root / f"n{n}"
    work.mkdir()
    space = work / "packing.py"
    space.write_text(SPACE.format(n=n, epochs=args.epochs))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    share = (
        {"gpus_per_trial": 1 / n, "cpus_per_trial": max(args.cpus / n, 0.01)}
        if gpu
        else {"cpus_per_trial": args.cpus / n}
    )
    run(
        SweepOptions(
            space=str(space),
            data=args.data,
            train_subset=args.train_subset,
            tracking_uri=uri,
            storage=str(work / "rr"),
            report=False,
            eval_n=0,
            memory_per_trial=100,
            overrides=(("probe_every", "0"),) + ((("val_size", "128"),) if args.data == "synthetic" else ()),
            **share,
        )
    )
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("packing").experiment_id], "tags.`sweep.role` = 'trial'")
    images = sum(r.data.metrics["n_train_images"] // 128 * 128 * args.epochs for r in runs)
    wall = (max(r.info.end_time for r in runs) - min(r.info.start_time for r in runs)) / 1000
    return {
        "n": n,
        "ips": images / wall,
        "rss": max(r.data.metrics["peak_rss_mb"] for r in runs),
        "gpu_mb": max((r.data.metrics.get("peak_gpu_mem_mb", 0) for r in runs), default=0),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="synthetic")
    p.add_argument("--n", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-subset", type=int, default=2048)
    p.add_argument("--cpus", type=float, default=2)
    args = p.parse_args()
    if args.data != "synthetic":
        args.data = str(Path(args.data).resolve())

    import ray
    import torch

    gpu = torch.cuda.is_available()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    rows = []
    for n in args.n:
        with tempfile.TemporaryDirectory(prefix="packing-") as tmp:
            rows.append(packed(n, args, Path(tmp), gpu))
        print(f"  N={n}: {rows[-1]['ips']:.0f} img/s aggregate", flush=True)
    ray.shutdown()
    base = next((r["ips"] for r in rows if r["n"] == 1), rows[0]["ips"])
    where = torch.cuda.get_device_name(0) if gpu else f"CPU ({args.cpus:g} CPUs shared)"
    print(f"\nDCGAN, {args.epochs} epochs per trial, train subset {args.train_subset}, data {args.data}, {where}")
    print(
        "| N trials at once | aggregate train images/s | vs N = 1 | peak RSS per trial, MiB | peak GPU MiB per trial |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']} | {r['ips']:,.0f} | {r['ips'] / base:.2f} | {r['rss']:,.0f} | {r['gpu_mb']:,.0f} |"
            if gpu
            else f"| {r['n']} | {r['ips']:,.0f} | {r['ips'] / base:.2f} | {r['rss']:,.0f} | n/a |"
        )


if __name__ == "__main__":
    main()
