"""The probe's two baselines for every trial of an experiment, read-only: the same linear probe on
raw pixels and on the untrained network (the run's seed), beside the trained ``test_probe_acc``.
The final stage's own code (``common.sweep.best``), for runs that did not reach their final stage.

    python bench/probe_baselines.py --tracking-uri sqlite:///mlflow.db --experiment seed_spread --family vae

Prints one line per run (seed, trained, raw pixels, random init; test split, all 10,000 images).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.base.data import load_dataset  # noqa: E402
from common.base.device import seed_everything  # noqa: E402
from common.metrics.classifier import get_classifier  # noqa: E402
from common.sweep.best import _pixel_probe, best_checkpoint  # noqa: E402
from common.trial.families import (
    FAMILIES,  # noqa: E402
    config_class,  # noqa: E402
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--experiment", required=True)
    p.add_argument("--family", default="vae")
    args = p.parse_args()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(args.tracking_uri)
    exp = client.get_experiment_by_name(args.experiment)
    runs = [
        r
        for r in client.search_runs([exp.experiment_id], "tags.`sweep.role` = 'trial'")
        if r.data.tags.get("family") == args.family and r.data.tags.get("trial_status") == "completed"
    ]
    print("seed | trained test_probe_acc | raw pixels | random init | seconds")
    for r in sorted(runs, key=lambda r: int(r.data.params["seed"])):
        t0 = time.perf_counter()
        ckpt = best_checkpoint(args.tracking_uri, r.info.run_id)
        cfg = config_class(args.family).from_dict(ckpt["config"])
        data = load_dataset(cfg.data)
        untrained = FAMILIES[cfg.family].task(
            cfg, data, torch.device("cpu"), seed_everything(cfg.seed), classifier=get_classifier(data)[0]
        )
        pixels = _pixel_probe(untrained, data)  # cached per data and splits: slow only the first time
        random_init = untrained.probe("test")["test_probe_acc"]
        print(
            f"{cfg.seed} | {r.data.metrics.get('test_probe_acc', float('nan')):.4f} | {pixels:.4f} | "
            f"{random_init:.4f} | {time.perf_counter() - t0:.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
