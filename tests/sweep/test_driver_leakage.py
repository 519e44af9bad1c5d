"""Selection never reads the test split.

The same sweep (Optuna TPE, ASHA, a beta warm-up, the best epoch per trial, the best trial, the
registered @best model) runs twice on two data sets that share their train split and differ only in
their test split: the second one's test images are noise with shuffled labels. Everything that
selects must come out identical, bit for bit: what Tune, ASHA and the searcher were told, which
trials ASHA stopped, which epoch each trial kept as best.pt, which trial is best and registered.
The test-split numbers themselves must differ (so the second test split really was different).
If any selecting path read a test metric, the two sweeps would diverge.
"""

from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image

from common.base.data import load_dataset
from common.sweep.driver import SweepOptions
from trainables.sweep import run

SPACE = """
def space(trial):
    trial.suggest_categorical("latent_dim", [8, 16])
    trial.suggest_categorical("beta_schedule", ["constant", "linear"])
    trial.suggest_float("beta", 0.5, 2.0)

family, metric, mode = "vae", "val_bpd", "min"
num_samples, max_epochs, max_concurrent = 4, 3, 1
defaults = {"batch_size": 64, "eval_samples": 64, "val_size": 128, "base_channels": 8, "hidden_dim": 0,
            "probe_every": 2, "warmup_epochs": 2}
scheduler = {"grace_period": 1, "reduction_factor": 2}
resources = {"cpu": 1, "gpu": 0}
"""


def _tree(root, train_x, train_y, test_x, test_y, classes):
    for split, xs, ys in (("train", train_x, train_y), ("test", test_x, test_y)):
        for i, (x, y) in enumerate(zip(xs, ys)):
            folder = root / split / classes[int(y)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x.permute(1, 2, 0).numpy()).save(folder / f"{i:04d}.png")
    return root


def _sweep(root, workdir, name):
    uri = f"sqlite:///{workdir / f'{name}.db'}"
    summary = run(
        SweepOptions(
            space=str(workdir / "space.py"),
            data=str(root),
            tracking_uri=uri,
            experiment=name,
            storage=str(workdir / f"rr-{name}"),
            eval_n=0,
            report=False,
            optuna_storage=f"sqlite:///{workdir / f'{name}-optuna.db'}",
        )
    )
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name).experiment_id
    trials = client.search_runs([exp], "tags.`sweep.role` = 'trial'")
    by_config = {}
    for r in trials:
        key = tuple(sorted((k, v) for k, v in r.data.params.items() if k != "data"))
        history = {
            m: [(h.step, h.value) for h in client.get_metric_history(r.info.run_id, m)]
            for m in r.data.metrics
            if not m.startswith(("test_", "system/")) and m not in ("epoch_time_s", "train_time_s", "peak_rss_mb")
        }
        tests = {m: v for m, v in r.data.metrics.items() if m.startswith("test_")}
        by_config[key] = {
            "status": r.data.tags.get("trial_status"),
            "best_epoch": r.data.tags.get("test.epoch"),
            "history": history,
            "test": tests,
            "run_id": r.info.run_id,
        }
    best = summary.best["vae"]
    version = client.get_model_version_by_alias(f"{name}-vae", "best")
    registered = client.get_run(version.tags["trial_run_id"]).data.params
    import optuna

    storage = f"sqlite:///{workdir / f'{name}-optuna.db'}"
    (study_name,) = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    study = optuna.load_study(study_name=study_name, storage=storage)
    told = [(t.params, t.state.name, t.value, dict(t.intermediate_values)) for t in study.trials]
    return {
        "trials": by_config,
        "best_value": best.value,
        "best_config": {k: v for k, v in best.config.items()},
        "registered": {k: v for k, v in registered.items() if k != "data"},
        "optuna": told,
    }


@pytest.mark.usefixtures("ray_session")
def test_selection_is_identical_whatever_the_test_split_holds(workdir):
    syn = load_dataset("synthetic")
    noise = torch.randint(0, 256, syn.test_x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.uint8)
    shuffled = syn.test_y[torch.randperm(len(syn.test_y), generator=torch.Generator().manual_seed(6))]
    real = _tree(workdir / "real", syn.train_x, syn.train_y, syn.test_x, syn.test_y, syn.classes)
    poisoned = _tree(workdir / "poisoned", syn.train_x, syn.train_y, noise, shuffled, syn.classes)
    (workdir / "space.py").write_text(SPACE)

    a, b = _sweep(real, workdir, "real"), _sweep(poisoned, workdir, "poisoned")

    assert a["trials"].keys() == b["trials"].keys() and len(a["trials"]) == 4
    statuses = [t["status"] for t in a["trials"].values()]
    assert "stopped" in statuses and "completed" in statuses  # ASHA made decisions
    for key, ta in a["trials"].items():
        tb = b["trials"][key]
        assert ta["status"] == tb["status"] and ta["best_epoch"] == tb["best_epoch"], key
        assert ta["history"] == tb["history"], key  # every validation and training number, epoch by epoch
    assert a["optuna"] == b["optuna"]  # what the searcher was told, PRUNED / COMPLETE included
    assert any(state == "PRUNED" for _, state, _, _ in a["optuna"])  # ASHA-stopped trials reach Optuna as PRUNED
    assert a["best_value"] == b["best_value"] and a["best_config"] == b["best_config"]
    assert a["registered"] == b["registered"]
    # ...while the reported test numbers did change: the test split was really different.
    done = [k for k, t in a["trials"].items() if t["test"]]
    assert done and all(a["trials"][k]["test"]["test_bpd"] != b["trials"][k]["test"]["test_bpd"] for k in done)
    # noise with shuffled labels: chance; the real synthetic test images: far above it
    assert all(b["trials"][k]["test"]["test_probe_acc"] < 0.3 < a["trials"][k]["test"]["test_probe_acc"] for k in done)
