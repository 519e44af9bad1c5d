"""Registering a sweep's best model: MLflow's inferred pip requirements vs the pinned torch list.

Run (from the repository root)::

    .venv/bin/python bench/registration.py --repeats 5

Each repeat logs and registers the same freshly initialised model through
``common.sweep.best.log_best_model`` (pt2, signature, input example, registered version, alias)
on an embedded sqlite store, once per policy, alternating:

* inferred (the baseline, MLflow's default): ``log_model`` without ``pip_requirements``, so
  MLflow infers them in a subprocess that re-imports the model's modules;
* pinned (ours): ``mlflow.pytorch.get_default_pip_requirements()``.

Reported: per-policy wall times, their medians and the ratio inferred / pinned, and each
policy's requirements.txt.
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


def register_once(uri: str, family: str, inferred: bool) -> tuple[float, list[str]]:
    """Seconds to log and register one best model of ``family``; its requirements.txt lines."""
    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow.tracking import MlflowClient

    from common.base.data import load_dataset
    from common.base.device import seed_everything
    from common.base.tracking import get_or_create_experiment
    from common.sweep.best import log_best_model, registered_name
    from common.sweep.result import BestTrial
    from common.trial.families import FAMILIES

    # 1. A trial's best.pt contents for the family's default-sized model (weights as initialised).
    spec = FAMILIES[family]
    cfg = spec.config.from_dict({"data": "synthetic", "val_size": 64})
    task = spec.task(cfg, load_dataset("synthetic"), torch.device("cpu"), seed_everything(0))
    ckpt = {"config": cfg.to_dict(), "epoch": 1, "model": task.export_state()}
    client = MlflowClient(uri)
    exp = get_or_create_experiment(client, "registration", None)
    parent, trial = (client.create_run(exp).info.run_id for _ in range(2))
    best = BestTrial(trial, "val", 1.0, {})
    # 2. The baseline policy: log_model called without the list, so MLflow infers one.
    log_model = mlflow.pytorch.log_model
    if inferred:
        mlflow.pytorch.log_model = lambda *a, pip_requirements=None, **k: log_model(*a, **k)
    try:
        t0 = time.perf_counter()
        log_best_model(uri, parent, family, best, ckpt, "registration")
        seconds = time.perf_counter() - t0
    finally:
        mlflow.pytorch.log_model = log_model
    version = client.get_model_version_by_alias(registered_name("registration", family), "best")
    local = Path(mlflow.artifacts.download_artifacts(version.source, tracking_uri=uri))
    return seconds, (local / "requirements.txt").read_text().split()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    from common.trial.families import FAMILIES

    p.add_argument("--family", default="dcgan", choices=sorted(FAMILIES))
    args = p.parse_args()
    from common.base.tracking import prepare_store

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        prepare_store(uri)
        register_once(uri, args.family, False)  # warm-up: imports and the store's tables
        times: dict[str, list[float]] = {"inferred": [], "pinned": []}
        reqs: dict[str, list[str]] = {}
        for _ in range(args.repeats):
            for policy in ("inferred", "pinned"):
                seconds, reqs[policy] = register_once(uri, args.family, policy == "inferred")
                times[policy].append(seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "family": args.family,
        "repeats": args.repeats,
        "seconds": times,
        "median_s": med,
        "ratio_inferred_over_pinned": med["inferred"] / med["pinned"],
        "requirements": reqs,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
