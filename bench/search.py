"""Search efficiency: Optuna TPE + ASHA vs Population Based Training vs random search, same budget.

Run (from the repository root)::

    .venv/bin/python bench/search.py --data ../shared/data/cifar10-jpeg.tar.gz --seeds 0 1 2
    .venv/bin/python bench/search.py --family dcgan --data ../shared/data/cifar10-jpeg.tar.gz --seeds 0 1 2
    .venv/bin/python bench/search.py                       # synthetic data, quick

Each strategy searches the family's shipped space file through ``common.sweep.driver.run`` on one
local Ray (``--family vae``: ``sweeps/vae_beta.py``; ``--family dcgan``: ``sweeps/gan_ttur.py``):

* tpe+asha: the space file as shipped (TPE sampler, ASHA grace 2, reduction 3, 10 epochs).
* random: the same file plus ``sampler = "random"`` and ``scheduler = None``: every trial runs
  all its epochs.
* pbt: the same file with no searcher (``space = None``: the family's defaults) and synchronous
  PBT: every 2 epochs the bottom quarter clones a top-quarter trial's checkpoint and perturbs
  what a checkpoint can carry across (VAE: beta, lr, free bits; DCGAN: lr_g, lr_ratio, beta1, the
  mutations of ``sweeps/gan_pbt.py``); every trial runs all its epochs.

The budget is in trial-epochs (``--budget``; one epoch of one trial = 1). Random search gets
``budget / max_epochs`` trials, and so does PBT (its population); TPE+ASHA gets ``--asha-trials``,
which spends about the same budget because ASHA stops most trials after 2 or 6 epochs. Every
epoch's objective (the space file's validated metric: ``val_bpd``, bits/dim on the validation
images, or ``val_classifier_fd``, the domain-classifier FD of 1,000 fixed-z samples to the
validation images; lower is better for both, and nothing here reads the test split) is read back
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

from common.base.objective import Objective  # noqa: E402

# Per family: the shipped space file, its experiment, and what PBT mutates (only what a checkpoint
# carries across: not the latent size nor the architecture). The DCGAN's are sweeps/gan_pbt.py's,
# synchronous as there; the VAE's PBT is asynchronous, as measured in BENCHMARKS.md.
FAMILIES = {
    "vae": {
        "space": "vae_beta.py",
        "pbt": '{"kind": "pbt", "perturbation_interval": 2, "quantile_fraction": 0.25, '
        '"mutations": {"beta": ("log", 0.25, 4.0), "lr": ("log", 3e-4, 3e-3), "free_bits": [0.0, 0.05, 0.1, 0.25]}}',
    },
    "dcgan": {
        "space": "gan_ttur.py",
        "pbt": '{"kind": "pbt", "perturbation_interval": 2, "quantile_fraction": 0.25, "synch": True, '
        '"mutations": {"lr_g": ("log", 1e-4, 5e-4), "lr_ratio": ("uniform", 1.0, 4.0), "beta1": [0.0, 0.5]}}',
    },
}
STRATEGIES = ("tpe+asha", "pbt", "random")


def space_text(family: str, strategy: str) -> str:
    """The space file one search runs: the family's shipped file, plus the strategy's changes."""
    text = (ROOT / "sweeps" / FAMILIES[family]["space"]).read_text()
    extra = {
        "tpe+asha": "",
        "pbt": f"\nspace = None\nscheduler = {FAMILIES[family]['pbt']}\n",
        "random": '\nsampler = "random"\nscheduler = None\n',
    }
    return text + extra[strategy]


def best_so_far(points: list[tuple[int, float]], objective: Objective) -> list[float | None]:
    """``points``: (timestamp, objective) of every trial-epoch, any order -> the best value seen
    after each trial-epoch, in time order (len(points) entries)."""
    return objective.running_best(v for _, v in sorted(points))


def trials_for(strategy: str, args, max_epochs: int) -> int:
    return args.asha_trials if strategy == "tpe+asha" else math.ceil(args.budget / max_epochs)


def one_search(strategy: str, seed: int, args, root: Path) -> list[float]:
    """Best-so-far objective after each trial-epoch, in the order the epochs finished."""
    from mlflow.tracking import MlflowClient

    from common.sweep.driver import SweepOptions
    from common.sweep.space import load_space
    from trainables.sweep import run

    # 1. The space file, validated as the CLI would.
    work = root / f"{args.family}-{strategy}-{seed}"
    work.mkdir()
    path = work / FAMILIES[args.family]["space"]
    path.write_text(space_text(args.family, strategy))
    space = load_space(path)
    # 2. The sweep, into its own store.
    uri = f"sqlite:///{work / 'mlflow.db'}"
    run(
        SweepOptions(
            space=str(path),
            data=args.data,
            train_subset=args.train_subset,
            seed=seed,
            num_samples=trials_for(strategy, args, space.max_epochs),
            tracking_uri=uri,
            storage=str(work / "rr"),
            report=False,
            eval_n=0,
            cpus_per_trial=args.cpus_per_trial,
            overrides=(("probe_every", "0"),) + ((("val_size", "128"),) if args.data == "synthetic" else ()),
        )
    )
    # 3. Every epoch's objective, back from MLflow.
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(path.stem)
    runs = client.search_runs([exp.experiment_id], "tags.`sweep.role` = 'trial'")
    points = [(m.timestamp, m.value) for r in runs for m in client.get_metric_history(r.info.run_id, space.metric)]
    curve = best_so_far(points, Objective(space.metric, space.mode))
    print(
        f"  {strategy} seed {seed}: {len(runs)} trials, {len(curve)} trial-epochs, best {space.metric} {curve[-1]:.2f}",
        flush=True,
    )
    return curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", choices=list(FAMILIES), default="vae")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--train-subset", type=int, default=2000)
    p.add_argument("--budget", type=int, default=60, help="trial-epochs per search")
    p.add_argument("--asha-trials", type=int, default=16)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--cpus", type=float, default=2)
    p.add_argument("--cpus-per-trial", type=float, default=1)
    p.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    args = p.parse_args()
    if args.data != "synthetic":
        args.data = str(Path(args.data).resolve())

    import ray

    from common.sweep.space import load_space

    space = load_space(ROOT / "sweeps" / FAMILIES[args.family]["space"])
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory(prefix="search-") as tmp:
        curves = {(s, seed): one_search(s, seed, args, Path(tmp)) for seed in args.seeds for s in args.strategies}
    ray.shutdown()
    print(
        f"\n{space.path.name}, data {args.data} (train subset {args.train_subset}, {space.metric} on the validation "
        f"images), budget {args.budget} trial-epochs, seeds {args.seeds}: best {space.metric} within b trial-epochs, "
        f"median over seeds (min-max); {Objective(space.metric, space.mode).better_is} is better"
    )
    print("\n".join(table(curves, args, space.max_epochs)))


def table(curves: dict[tuple[str, int], list[float]], args, max_epochs: int) -> list[str]:
    """The markdown rows BENCHMARKS.md quotes: per strategy, its trials, the epochs it spent and
    the best value within b = budget/4, /2, 3/4, 1 trial-epochs (median (min-max) over seeds)."""
    marks = sorted({max(1, args.budget * k // 4) for k in (1, 2, 3, 4)})
    rows = ["| strategy | trials | epochs spent | " + " | ".join(f"b = {b}" for b in marks) + " |"]
    rows.append("|---|---|---|" + "---|" * len(marks))
    for s in args.strategies:
        cells = []
        for b in marks:
            vals = [c[min(b, len(c)) - 1] for (st, _), c in curves.items() if st == s]
            cells.append(f"{statistics.median(vals):.2f} ({min(vals):.2f}-{max(vals):.2f})")
        spent = [len(c) for (st, _), c in curves.items() if st == s]
        rows.append(
            f"| {s} | {trials_for(s, args, max_epochs)} | {statistics.median(spent):.0f} ({min(spent)}-{max(spent)}) | "
            + " | ".join(cells)
            + " |"
        )
    rows.append("(a search that spent fewer epochs than b counts with its final best)")
    return rows


if __name__ == "__main__":
    main()
