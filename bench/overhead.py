"""Sweep overhead: what Ray Tune + Optuna + MLflow cost per trial when the trial trains nothing.

Run (from the repository root)::

    .venv/bin/python bench/overhead.py --data ../shared/data/cifar10-jpeg.tar.gz --repeats 3
    .venv/bin/python bench/overhead.py                     # synthetic data, quick

Each repeat runs VAE sweeps of ``--epochs`` epochs per trial through ``common.sweep.driver.run``, each
on its own local Ray (``--cpus-per-trial`` 1, so 2 trials at once on 2 cores), all with Optuna,
ASHA off, MLflow on the embedded sqlite store and a checkpoint per epoch:

* null: every worker's ``FAMILIES["vae"].task`` is swapped (a Ray worker setup hook) for a task that
  builds the real models and optimizers but whose epoch trains and evaluates nothing. Its
  objective improves every epoch, so each epoch also writes ``best.pt`` and the sample figures:
  the worst case of per-epoch bookkeeping. Its wall time is pure overhead. It runs twice at
  each of two sizes (``--trials SMALL LARGE``): with a fresh worker process per trial
  (the baseline, Tune's default) and with reused workers (``common.sweep.tuning.REUSE_ACTORS``, ours).
  The cost of one trial is the slope, (wall(LARGE) - wall(SMALL)) x slots / (LARGE - SMALL), so
  per-sweep costs (MLflow store, Tuner set-up, registering the best model) do not count in it.
* real: SMALL trials of the real VAE task on ``--data`` (default: the 10k train subset); a
  trial's work is the sum of its ``epoch_time_s`` (train + evaluate), median over trials.

Reported per repeat and as medians (min-max): overhead per trial for both worker policies and
their ratio, the overhead's share of a real trial, the fixed cost per sweep, Ray's start-up,
and peak RSS (``peak_rss_mb``, per worker process: with reuse, over all trials it hosted).
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

family, metric, mode = "vae", "val_mse_kl", "min"
scheduler = None
"""


def swap_in_null_task() -> None:
    """Ray worker setup hook: the VAE task keeps its models and checkpoint state but does no work."""
    import dataclasses

    from common.trial.families import FAMILIES
    from common.trial.tasks.vae import VAETask

    class NullTask(VAETask):
        _epoch = 0

        def train_epoch(self, epoch: int) -> dict[str, float]:
            self._epoch = epoch + 1
            return {"train_loss": 1.0, "train_recon": 1.0, "train_kl": 0.0, "beta": 1.0}

        def evaluate(self, split: str = "val", probe: bool = False) -> dict[str, float]:
            return {
                f"{split}_mse_kl": 100.0 - self._epoch,
                f"{split}_classifier_fd": 1.0,
            }  # improves: best.pt + figures

    FAMILIES["vae"] = dataclasses.replace(FAMILIES["vae"], task=NullTask)


def one_sweep(kind: str, args, root: Path, trials: int, reuse: bool = True) -> dict:
    """One sweep of ``trials`` trials in its own Ray; its wall time and what its trials logged."""
    import ray
    from mlflow.tracking import MlflowClient  # imported here, outside the timed calls

    import common.sweep.tuning
    from trainables.sweep import run

    # 1. the worker policy and the space, before the Tuner is built (in this, the driver, process)
    common.sweep.tuning.REUSE_ACTORS = reuse
    work = root / f"{kind}-{'reuse' if reuse else 'fresh'}-{trials}"
    work.mkdir()
    (work / "space.py").write_text(SPACE)
    # 2. a fresh Ray (its start timed apart), 3. the sweep, 4. what its trials logged
    t0 = time.perf_counter()
    ray.init(
        num_cpus=args.cpus,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"worker_process_setup_hook": swap_in_null_task} if kind == "null" else None,
    )
    ray_start = time.perf_counter() - t0
    uri = f"sqlite:///{work / 'mlflow.db'}"
    t0 = time.perf_counter()
    run(_sweep_options(kind, args, work, trials, uri))
    wall = time.perf_counter() - t0
    ray.shutdown()
    return {"ray_start_s": ray_start, "wall_s": wall, **_logged(kind, MlflowClient(uri), trials)}


def _sweep_options(kind: str, args, work: Path, trials: int, uri: str):
    from common.sweep.driver import SweepOptions

    return SweepOptions(
        space=str(work / "space.py"),
        data=args.data if kind == "real" else "synthetic",
        num_samples=trials,
        max_epochs=args.epochs,
        tracking_uri=uri,
        storage=str(work / "rr"),
        report=False,
        eval_n=0,
        cpus_per_trial=args.cpus_per_trial,
        overrides=(("probe_every", "0"),)
        + ((("val_size", "128"),) if kind != "real" or args.data == "synthetic" else ()),
    )


def _logged(kind: str, client, trials: int) -> dict:
    """The median work (sum of epoch_time_s) of a sweep's trials and the peak RSS of its first and
    last two; exits unless every trial completed."""
    runs = client.search_runs(
        [client.get_experiment_by_name("space").experiment_id],
        "tags.`sweep.role` = 'trial'",
        order_by=["attributes.start_time ASC"],
    )
    done = [r for r in runs if r.data.tags.get("trial_status") == "completed"]
    if len(done) != trials:  # a failed trial costs nothing: timing it would flatter the overhead
        sys.exit(f"{kind} sweep: {len(done)} of {trials} trials completed; see the Tune output above")
    work_s = [sum(m.value for m in client.get_metric_history(r.info.run_id, "epoch_time_s")) for r in runs]
    rss = [r.data.metrics["peak_rss_mb"] for r in runs]
    return {"work_s": statistics.median(work_s), "rss_first_mb": max(rss[:2]), "rss_last_mb": max(rss[-2:])}


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="synthetic", help="data of the real trials (the null ones use synthetic)")
    p.add_argument(
        "--trials",
        type=int,
        nargs=2,
        default=[4, 12],
        metavar=("SMALL", "LARGE"),
        help="the two sweep sizes whose difference gives the cost per trial",
    )
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--cpus", type=float, default=2)
    p.add_argument("--cpus-per-trial", type=float, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="also write the results here")
    return p.parse_args()


def _one_repeat(args, slots: int) -> dict:
    """Null sweeps at both sizes with fresh and with reused workers, one small real sweep: one row."""
    small, large = args.trials

    def per_trial(sweeps: dict) -> float:  # slot-seconds each extra trial adds
        return (sweeps[large]["wall_s"] - sweeps[small]["wall_s"]) * slots / (large - small)

    with tempfile.TemporaryDirectory(prefix="overhead-") as tmp:
        sweeps = {
            (kind, reuse): {n: one_sweep(kind, args, Path(tmp), n, reuse) for n in (small, large)}
            for kind, reuse in (("null", False), ("null", True))
        }
        real = one_sweep("real", args, Path(tmp), small)
    fresh, reused = per_trial(sweeps["null", False]), per_trial(sweeps["null", True])
    null = sweeps["null", True]
    return {
        "fresh_s": fresh,
        "reused_s": reused,
        "speedup": fresh / reused,
        "work_s": real["work_s"],
        "share": reused / (real["work_s"] + reused),
        "fixed_s": null[small]["wall_s"] - reused * small / slots,
        "ray_start_s": null[small]["ray_start_s"],
        "rss_first_mb": real["rss_first_mb"],
        "rss_last_mb": null[large]["rss_last_mb"],
        "null_rss_first_mb": null[large]["rss_first_mb"],
    }


def _print_table(rows: list[dict], args) -> None:
    """The medians (min-max) over the repeats, as a Markdown table for BENCHMARKS.md."""
    small, large = args.trials

    def med(key: str) -> str:
        vals = [r[key] for r in rows]
        return f"{statistics.median(vals):.2f} ({min(vals):.2f}-{max(vals):.2f})"

    print(
        f"\nVAE trials x {args.epochs} epochs, {args.cpus_per_trial} CPU each on {args.cpus} CPUs; cost per trial = "
        f"slope between {small}- and {large}-trial sweeps; real data {args.data}; {args.repeats} repeat(s): "
        "median (min-max)"
    )
    print(f"| overhead per trial, a fresh worker process per trial (baseline), s | {med('fresh_s')} |")
    print(f"| overhead per trial, reused worker processes (default), s | {med('reused_s')} |")
    print(f"| baseline / default | {med('speedup')} |")
    print(f"| work of a real {args.epochs}-epoch trial (train + evaluate), s | {med('work_s')} |")
    print(f"| overhead share of a real trial, overhead / (work + overhead) | {med('share')} |")
    print(f"| fixed cost per sweep beyond Ray start (store, Tuner, end stage), s | {med('fixed_s')} |")
    print(f"| Ray start (once per sweep), s | {med('ray_start_s')} |")
    print(f"| peak RSS, real trials, MiB | {med('rss_first_mb')} |")
    print(
        f"| peak RSS of a reused worker: first trials / last trials (null), MiB | {med('null_rss_first_mb')} / "
        f"{med('rss_last_mb')} |"
    )


def main() -> None:
    args = _parse_args()
    slots = int(args.cpus // args.cpus_per_trial)
    rows = []
    for i in range(args.repeats):
        rows.append(_one_repeat(args, slots))
        print(f"repeat {i + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[-1].items()), flush=True)
    _print_table(rows, args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
