"""Search efficiency: Optuna TPE + ASHA vs Population Based Training vs random search, same budget.

Run (from the repository root)::

    .venv/bin/python bench/search.py --data ../shared/data/cifar10-jpeg.tar.gz --seeds 0 1 2
    .venv/bin/python bench/search.py                       # synthetic data, quick

Both strategies search ``sweeps/vae_beta.py`` through ``common.sweep.driver.run`` on one local Ray:

* tpe+asha: the space file as shipped (TPE sampler, ASHA grace 2, reduction 3, 10 epochs).
* random: the same file plus ``sampler = "random"`` and ``scheduler = None``: every trial runs
  all its epochs.
* pbt: the same file with no searcher (``space = None``: the default latent size and schedule)
  and PBT over beta, lr and free bits (every 2 epochs the bottom quarter clones a top-quarter
  trial's checkpoint and perturbs its values); every trial runs all its epochs.

The budget is in trial-epochs (``--budget``; one epoch of one trial = 1). Random search gets
``budget / max_epochs`` trials, and so does PBT (its population); TPE+ASHA gets ``--asha-trials``, which spends about the same
budget because ASHA stops most trials after 2 or 6 epochs. Every epoch's ``val_bpd`` (the
objective: negative ELBO on the whole test split, nats/image, lower is better) is read back
from MLflow and ordered by time; "best at b" is the lowest value any trial reported within the
first b trial-epochs. The seed (``--seeds``) sets both the searcher's and the trials' seed.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

STRATEGIES = {
    "tpe+asha": "",
    "pbt": '\nspace = None\nscheduler = {"kind": "pbt", "perturbation_interval": 2, "quantile_fraction": 0.25, '
    '"mutations": {"beta": ("log", 0.25, 4.0), "lr": ("log", 3e-4, 3e-3), "free_bits": [0.0, 0.05, 0.1, 0.25]}}\n',
    "random": '\nsampler = "random"\nscheduler = None\n',
}


def one_search(strategy: str, seed: int, args, root: Path) -> list[float]:
    """Best-so-far val_bpd after each trial-epoch, in the order the epochs finished."""
    from mlflow.tracking import MlflowClient

    from common.sweep.driver import SweepOptions, run

    work = root / f"{strategy}-{seed}"
    work.mkdir()
    space = work / "vae_beta.py"
    space.write_text((ROOT / "sweeps" / "vae_beta.py").read_text() + STRATEGIES[strategy])
    max_epochs = 10  # vae_beta.py's
    trials = args.asha_trials if strategy == "tpe+asha" else math.ceil(args.budget / max_epochs)
    uri = f"sqlite:///{work / 'mlflow.db'}"
    run(
        SweepOptions(
            space=str(space),
            data=args.data,
            train_subset=args.train_subset,
            seed=seed,
            num_samples=trials,
            tracking_uri=uri,
            storage=str(work / "rr"),
            report=False,
            eval_n=0,
            cpus_per_trial=args.cpus_per_trial,
            overrides=(("probe_every", "0"),) + ((("val_size", "128"),) if args.data == "synthetic" else ()),
        )
    )
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("vae_beta")
    runs = client.search_runs([exp.experiment_id], "tags.`sweep.role` = 'trial'")
    points = sorted((m.timestamp, m.value) for r in runs for m in client.get_metric_history(r.info.run_id, "val_bpd"))
    best, curve = math.inf, []
    for _, v in points:
        best = min(best, v)
        curve.append(best)
    print(
        f"  {strategy} seed {seed}: {len(runs)} trials, {len(curve)} trial-epochs, best val_bpd {best:.2f}", flush=True
    )
    return curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="synthetic")
    p.add_argument("--train-subset", type=int, default=2000)
    p.add_argument("--budget", type=int, default=60, help="trial-epochs per search")
    p.add_argument("--asha-trials", type=int, default=16)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--cpus", type=float, default=2)
    p.add_argument("--cpus-per-trial", type=float, default=1)
    p.add_argument("--strategies", nargs="+", choices=list(STRATEGIES), default=list(STRATEGIES))
    args = p.parse_args()
    if args.data != "synthetic":
        args.data = str(Path(args.data).resolve())

    import ray

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory(prefix="search-") as tmp:
        curves = {(s, seed): one_search(s, seed, args, Path(tmp)) for seed in args.seeds for s in args.strategies}
    ray.shutdown()

    marks = sorted({max(1, args.budget * k // 4) for k in (1, 2, 3, 4)})
    print(
        f"\nvae_beta.py, data {args.data} (train subset {args.train_subset}, val_bpd on the validation images), "
        f"budget {args.budget} trial-epochs, seeds {args.seeds}: best val_bpd within b trial-epochs, "
        "median over seeds (min-max); lower is better"
    )
    print("| strategy | trials | epochs spent | " + " | ".join(f"b = {b}" for b in marks) + " |")
    print("|---|---|---|" + "---|" * len(marks))
    for s in args.strategies:
        cells = []
        for b in marks:
            vals = [c[min(b, len(c)) - 1] for (st, _), c in curves.items() if st == s]
            cells.append(f"{statistics.median(vals):.2f} ({min(vals):.2f}-{max(vals):.2f})")
        spent = [len(c) for (st, _), c in curves.items() if st == s]
        trials = args.asha_trials if s == "tpe+asha" else math.ceil(args.budget / 10)  # 10: vae_beta.py's epochs
        print(
            f"| {s} | {trials} | {statistics.median(spent):.0f} ({min(spent)}-{max(spent)}) | "
            + " | ".join(cells)
            + " |"
        )
    print("(a search that spent fewer epochs than b counts with its final best)")


if __name__ == "__main__":
    main()
