"""Sweep overhead: what Ray Tune + Optuna + MLflow cost per trial when the trial trains nothing.

Run (from the repository root)::

    .venv/bin/python bench/overhead.py --data ../shared/data/cifar10-jpeg.tar.gz --repeats 3
    .venv/bin/python bench/overhead.py                     # synthetic data, quick

Each repeat runs two real sweeps of ``--trials`` VAE trials x ``--epochs`` epochs through
``common.sweep.run`` on one local Ray (``--cpus-per-trial`` 1, so 2 at once on 2 cores), both
with Optuna, ASHA off, MLflow on the embedded sqlite store, a checkpoint per epoch:

* null: every worker's ``TASKS["vae"]`` is swapped (a Ray worker setup hook) for a task that
  builds the real models and optimizers but whose epoch trains and evaluates nothing. Its
  objective improves every epoch, so each epoch also writes ``best.pt`` and the figures: the
  worst case of per-epoch bookkeeping. Its wall time is pure overhead.
* real: the same sweep with the real VAE task on ``--data`` (the default 10k train subset).

Reported per repeat and as medians: the sweep's wall time, the overhead per trial
(null wall x concurrent slots / trials: the slot-seconds one trial costs beyond its work), the
real per-trial cost the same way, and overhead / real. Peak RSS per trial comes from the real
trials' ``peak_rss_mb`` metric. Ray's own start-up (once per sweep) is reported apart.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

SPACE = """
def space(trial):
    trial.suggest_categorical("latent_dim", [16, 32, 64])
    trial.suggest_float("beta", 0.5, 2.0)

family, metric, mode = "vae", "test_elbo", "min"
scheduler = None
"""


def swap_in_null_task() -> None:
    """Ray worker setup hook: the VAE task keeps its models and checkpoint state but does no work."""
    import common.tasks
    from common.tasks.vae import VAETask

    class NullTask(VAETask):
        _epoch = 0

        def train_epoch(self, epoch: int) -> dict[str, float]:
            self._epoch = epoch + 1
            return {"train_loss": 1.0, "train_recon": 1.0, "train_kl": 0.0, "beta": 1.0}

        def evaluate(self, probe: bool = False) -> dict[str, float]:
            return {"test_elbo": 100.0 - self._epoch, "sample_fd": 1.0}  # improves: best.pt + figures

    common.tasks.TASKS["vae"] = NullTask


def one_sweep(kind: str, args, root: Path) -> dict:
    import ray
    from mlflow.tracking import MlflowClient

    from common.sweep import SweepOptions, run

    work = root / kind
    work.mkdir()
    (work / "space.py").write_text(SPACE)
    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": swap_in_null_task} if kind == "null" else None)
    ray_start = time.perf_counter() - t0
    uri = f"sqlite:///{work / 'mlflow.db'}"
    t0 = time.perf_counter()
    run(SweepOptions(space=str(work / "space.py"), data=args.data, num_samples=args.trials, max_epochs=args.epochs,
                     tracking_uri=uri, storage=str(work / "rr"), report=False, eval_n=0,
                     cpus_per_trial=args.cpus_per_trial, overrides=(("probe_every", "0"),)))
    wall = time.perf_counter() - t0
    ray.shutdown()
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("space").experiment_id], "tags.`sweep.role` = 'trial'")
    slots = min(args.trials, int(args.cpus // args.cpus_per_trial))
    rss = [r.data.metrics["peak_rss_mb"] for r in runs if "peak_rss_mb" in r.data.metrics]
    return {"kind": kind, "ray_start_s": ray_start, "sweep_wall_s": wall, "trials": len(runs), "slots": slots,
            "per_trial_s": wall * slots / args.trials, "peak_rss_mb": max(rss) if rss else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="synthetic")
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--cpus", type=float, default=2)
    p.add_argument("--cpus-per-trial", type=float, default=1)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()

    rows = []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="overhead-") as tmp:
            null, real = one_sweep("null", args, Path(tmp)), one_sweep("real", args, Path(tmp))
        rows.append({"null": null, "real": real, "ratio": null["per_trial_s"] / real["per_trial_s"]})
        print(f"repeat {i + 1}: overhead {null['per_trial_s']:.2f} s/trial, real {real['per_trial_s']:.2f} s/trial, "
              f"ratio {rows[-1]['ratio']:.3f}; ray start {null['ray_start_s']:.1f} s; "
              f"peak RSS {real['peak_rss_mb']} MB", flush=True)

    def med(get):
        vals = [get(r) for r in rows]
        return f"{statistics.median(vals):.2f} ({min(vals):.2f}-{max(vals):.2f})"

    print(f"\n{args.trials} trials x {args.epochs} epochs, {args.cpus_per_trial} CPU each on {args.cpus} CPUs, "
          f"data {args.data}, {args.repeats} repeat(s): median (min-max)")
    print(f"| overhead per trial (null sweep), s | {med(lambda r: r['null']['per_trial_s'])} |")
    print(f"| real 2-epoch trial, s | {med(lambda r: r['real']['per_trial_s'])} |")
    print(f"| overhead / real | {med(lambda r: r['ratio'])} |")
    print(f"| Ray start (once per sweep), s | {med(lambda r: r['null']['ray_start_s'])} |")
    print(f"| peak RSS per real trial, MB | {med(lambda r: r['real']['peak_rss_mb'] or 0)} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
