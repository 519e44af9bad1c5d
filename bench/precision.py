"""fp32 vs bf16 training steps: speed and what they do to the metrics, through the product's loop.

Run (from the repository root)::

    .venv/bin/python bench/precision.py --data ../shared/data/cifar10-jpeg.tar.gz --epochs 5 --seeds 0 1
    .venv/bin/python bench/precision.py                     # synthetic data, quick

For each family (VAE, DCGAN) and seed, one trial per ``precision`` runs in this process through
``common.trial.loop.run_trial`` with a ``LocalSession`` (as ``--single-trial`` does), one after the
other, everything else at the family's defaults (10k train subset, batch 128, channels_last on
CPU). Evaluation is fp32 in both. Reported per family: training images/s (``train_time_s``),
and the final epoch's validation metrics (``val_mse_kl`` for the VAE, ``val_classifier_fd`` for the
DCGAN; an earlier edition measured ``test_elbo`` / ``sample_fd`` on the test split), with the seed-to-seed spread beside the precision difference, so
a change smaller than the seed noise reads as such.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere


def one_trial(family: str, precision: str, seed: int, args, root: Path) -> dict:
    from mlflow.tracking import MlflowClient

    from common.base.tracking import get_or_create_experiment, prepare_store
    from common.trial.contract import LocalSession, SweepContext
    from common.trial.families import config_class
    from common.trial.loop import run_trial

    metric = config_class(family).default_metric

    uri = f"sqlite:///{root / 'mlflow.db'}"
    prepare_store(uri)
    exp = get_or_create_experiment(MlflowClient(uri), "precision", None)
    ctx = SweepContext(
        tracking_uri=uri, experiment_id=exp, parent_run_id=None, metric=metric, mode="min", cpus_per_trial=args.threads
    )
    cfg = config_class(family).from_dict(
        {
            "data": args.data,
            "max_epochs": args.epochs,
            "seed": seed,
            "precision": precision,
            "probe_every": 0,
            **({"val_size": 128} if args.data == "synthetic" else {}),
        }
    )
    session = LocalSession(root / f"{family}-{precision}-{seed}")
    with contextlib.redirect_stdout(io.StringIO()):
        final = run_trial(cfg, ctx, session)
    n_train = MlflowClient(uri).get_run(session.results[-1]["mlflow_run_id"]).data.metrics["n_train_images"]
    n_img = int(n_train) // cfg.batch_size * cfg.batch_size * args.epochs  # drop_last, as the loop
    out = {"ips": n_img / final["train_time_s"], "metric": final[metric]}
    print(f"  {family} {precision} seed {seed}: {out['ips']:.0f} img/s, {metric} {out['metric']:.6f}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="synthetic")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    from common.trial.families import FAMILIES, config_class

    families = [name for name, f in FAMILIES.items() if f.budget_epochs]  # the slides' models
    p.add_argument("--models", nargs="+", default=families, choices=sorted(FAMILIES))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.data != "synthetic":
        args.data = str(Path(args.data).resolve())

    with tempfile.TemporaryDirectory(prefix="precision-") as tmp:
        res = {
            (f, prec, s): one_trial(f, prec, s, args, Path(tmp))
            for f in args.models
            for s in args.seeds
            for prec in ("fp32", "bf16")
        }
    print(
        f"\n{args.epochs} epochs, data {args.data}, seeds {args.seeds}, {args.threads} threads; "
        "median over seeds (min-max)"
    )
    print("| model | precision | train images/s | speed-up vs fp32 | final metric (test split) |")
    print("|---|---|---|---|---|")
    for f in args.models:
        for prec in ("fp32", "bf16"):
            rows = [res[f, prec, s] for s in args.seeds]
            ips, met = [r["ips"] for r in rows], [r["metric"] for r in rows]
            up = [res[f, prec, s]["ips"] / res[f, "fp32", s]["ips"] for s in args.seeds]
            print(
                f"| {f} | {prec} | {statistics.median(ips):,.0f} ({min(ips):,.0f}-{max(ips):,.0f}) | "
                f"{statistics.median(up):.2f} | {config_class(f).default_metric} {statistics.median(met):.3f} "
                f"({min(met):.3f}-{max(met):.3f}) |"
            )


if __name__ == "__main__":
    main()
