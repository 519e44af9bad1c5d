"""Faults injected for real: a SIGKILLed trial worker, truncated and malicious checkpoints.

The driver kills (SIGINT / SIGKILL + ``--resume``) are in test_resume.py; the tracking server
dying mid-sweep is in test_mlflow_server.py; a full disk in sweep/test_storage.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from common.base.tracking import get_or_create_experiment, prepare_store
from common.sweep.driver import SweepOptions
from common.trial.checkpoint import CheckpointError, load_checkpoint
from common.trial.config import VAEConfig
from common.trial.contract import LocalSession, SweepContext
from common.trial.loop import run_trial
from trainables.sweep import run

TIMING = {"epoch_time_s", "train_time_s", "peak_rss_mb", "mlflow_run_id"}  # measured, not computed
CFG = dict(data="synthetic", val_size=128, batch_size=64, eval_samples=64, probe_every=0)


def _ctx(uri: str, metric: str = "val_mse_kl", cpus: float = 1.0) -> SweepContext:
    prepare_store(uri)
    exp = get_or_create_experiment(MlflowClient(uri), "fault-tests", None)
    return SweepContext(
        tracking_uri=uri, experiment_id=exp, parent_run_id=None, metric=metric, mode="min", cpus_per_trial=cpus
    )


def _deterministic(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMING}


def _steps(client: MlflowClient, run_id: str, key: str = "val_mse_kl") -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


# ---------------------------------------------------------------- corrupt / malicious checkpoints
def test_a_truncated_checkpoint_is_refused_and_the_previous_one_is_used(tracking_uri, workdir):
    ctx = _ctx(tracking_uri)
    full = LocalSession(workdir / "full")
    run_trial(VAEConfig(max_epochs=3, **CFG), ctx, full)

    first = LocalSession(workdir / "first")  # stops after epoch 2: checkpoint_000000 (epoch 1), _000001 (epoch 2)
    run_trial(VAEConfig(max_epochs=2, **CFG), ctx, first)
    newest = first.latest_checkpoint / "state.pt"
    assert newest.parent.name == "checkpoint_000001"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a crash mid-write

    resumed = LocalSession(workdir / "resumed", resume_from=first.latest_checkpoint)
    with pytest.warns(UserWarning, match=r"checkpoint_000001/state.pt is truncated or corrupt .*falling back"):
        run_trial(VAEConfig(max_epochs=3, **CFG), ctx, resumed)
    assert [r["epoch"] for r in resumed.results] == [2, 3]  # from checkpoint_000000 (epoch 1)
    assert _deterministic(resumed.results[-1]) == _deterministic(full.results[-1])
    run_id = first.results[0]["mlflow_run_id"]
    client = MlflowClient(tracking_uri)
    assert resumed.results[-1]["mlflow_run_id"] == run_id
    assert _steps(client, run_id) == [1, 2, 3]  # epoch 2 replayed, not logged twice
    assert client.get_run(run_id).data.tags["restored"] == "true"


class _Payload:
    """Unpickling this would run code: it creates ``canary``."""

    def __init__(self, canary: Path):
        self.canary = canary

    def __reduce__(self):
        return (Path.touch, (self.canary,))


def test_a_checkpoint_carrying_pickled_code_is_refused_without_running_it(tmp_path):
    canary = tmp_path / "pwned"
    bad = tmp_path / "state.pt"
    torch.save({"task": _Payload(canary)}, bad)
    with pytest.raises(CheckpointError, match="refused: weights_only=True"):
        load_checkpoint(bad)
    assert not canary.exists()
    torch.load(bad, weights_only=False)  # the payload is real: unpickling it does run
    assert canary.exists()


def test_with_no_usable_checkpoint_the_trial_starts_over_in_its_own_run(tracking_uri, workdir):
    ctx = _ctx(tracking_uri)
    first = LocalSession(workdir / "first", keep=1)
    run_trial(VAEConfig(max_epochs=1, **CFG), ctx, first)
    torch.save({"task": _Payload(workdir / "pwned")}, first.latest_checkpoint / "state.pt")
    again = LocalSession(workdir / "first", resume_from=first.latest_checkpoint)  # same trial folder
    with pytest.warns(UserWarning, match="starts again from epoch 0"):
        run_trial(VAEConfig(max_epochs=2, **CFG), ctx, again)
    assert not (workdir / "pwned").exists()
    assert [r["epoch"] for r in again.results] == [1, 2]
    run_id = first.results[0]["mlflow_run_id"]
    assert again.results[-1]["mlflow_run_id"] == run_id  # the trial folder remembers its run
    assert _steps(MlflowClient(tracking_uri), run_id) == [1, 2]


# ---------------------------------------------------------------- a trial's worker is SIGKILLed
def _kill_mid_epoch_two(storage: Path, uri: str, done: dict) -> None:
    """Once epoch 1 is checkpointed, SIGKILL the trial's worker process (its MLflow ``pid`` tag)."""
    client = MlflowClient(uri)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ckpts = list(storage.rglob("checkpoint_000000/state.pt"))
        if ckpts:
            runs = client.search_runs(
                [e.experiment_id for e in client.search_experiments()], "tags.`sweep.role` = 'trial'"
            )
            if runs and runs[0].data.tags.get("pid"):
                time.sleep(0.2)  # into epoch 2's training
                done["steps_at_kill"] = _steps(client, runs[0].info.run_id)
                done["pid"] = int(runs[0].data.tags["pid"])
                os.kill(done["pid"], signal.SIGKILL)
                return
        time.sleep(0.02)


@pytest.mark.faults  # a sweep under load or killed midway: minutes, in make test-faults
def test_a_sigkilled_trial_worker_resumes_from_its_checkpoint_into_the_same_run(ray_session, workdir, tracking_uri):
    space = workdir / "one_vae.py"
    space.write_text("runs = [{'family': 'vae', 'max_epochs': 3}]\nscheduler = None\n")
    overrides = tuple((k, str(v)) for k, v in {**CFG, "batch_size": 16}.items() if k != "data")
    opts = SweepOptions(
        space=str(space),
        data="synthetic",
        tracking_uri=tracking_uri,
        storage=str(workdir / "rr"),
        report=False,
        eval_n=0,
        cpus_per_trial=1,
        overrides=overrides,
    )
    killed: dict = {}
    killer = threading.Thread(target=_kill_mid_epoch_two, args=(workdir / "rr", tracking_uri, killed), daemon=True)
    killer.start()
    summary = run(opts)
    killer.join(timeout=5)
    assert killed.get("pid"), "the trial finished before it could be killed"
    assert killed["steps_at_kill"] == [1], "the kill did not land in epoch 2"

    client = MlflowClient(tracking_uri)
    trials = client.search_runs([client.get_experiment_by_name("one_vae").experiment_id], "tags.`sweep.role` = 'trial'")
    assert len(trials) == 1  # the restarted attempt continued the run, no second one
    tags = trials[0].data.tags
    assert tags["restored"] == "true" and tags["trial_status"] == "completed" and int(tags["pid"]) != killed["pid"]
    for key in ("val_mse_kl", "train_loss", "train_kl", "val_classifier_fd"):
        assert _steps(client, trials[0].info.run_id, key) == [1, 2, 3], key
    assert summary.best["vae"].mlflow_run_id == trials[0].info.run_id
    import run_sweep  # the whole sweep's audit holds after the kill

    assert run_sweep.main(["--check", "one_vae", "--tracking-uri", tracking_uri, "--storage", str(workdir / "rr")]) == 0

    # Bit-identical to an uninterrupted trial with the same seed on CPU (same thread count).
    local = LocalSession(workdir / "local")
    final = run_trial(VAEConfig.from_dict({**CFG, "batch_size": 16, "max_epochs": 3}), _ctx(tracking_uri), local)
    logged = client.get_run(trials[0].info.run_id).data.metrics
    for key, value in _deterministic(final).items():
        assert logged[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


# ---------------------------------------------------------------- NaN / Inf in a searched sweep
def test_diverging_trials_are_stopped_and_the_searcher_records_a_finite_penalty(ray_session, workdir, tracking_uri):
    """Every trial blows up (lr 500-1000): each stops as "diverged", the sweep still finishes,
    and Optuna gets a finite, worst-possible value it can rank (not NaN, not a failed trial)."""
    import optuna

    from common.trial.loop import DIVERGED_PENALTY

    space = workdir / "blowup.py"
    space.write_text(
        "def space(trial):\n    trial.suggest_float('lr', 500.0, 1000.0)\n\n"
        "family = 'vae'\nmetric = 'val_mse_kl'\nmode = 'min'\nnum_samples = 2\nmax_epochs = 3\n"
        "scheduler = None\n"
    )
    overrides = tuple((k, str(v)) for k, v in CFG.items() if k != "data")
    summary = run(
        SweepOptions(
            space=str(space),
            data="synthetic",
            tracking_uri=tracking_uri,
            report=True,
            out=str(workdir / "report"),
            storage=str(workdir / "rr"),
            eval_n=0,
            overrides=overrides,
        )
    )
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("blowup")
    runs = client.search_runs([exp.experiment_id])
    trials = [r for r in runs if r.data.tags.get("sweep.role") == "trial"]
    assert len(trials) == 2 and all(t.data.tags["trial_status"] == "diverged" for t in trials)
    parent = next(r for r in runs if r.data.tags.get("sweep.role") == "parent")
    assert parent.data.tags["sweep.status"] == "completed"
    assert "vae" not in summary.best  # no diverged model is registered as the best
    study = optuna.load_study(
        study_name=parent.data.tags["optuna.study.vae"], storage=parent.data.tags["optuna.storage"]
    )
    assert [(t.state, t.value) for t in study.trials] == [(optuna.trial.TrialState.COMPLETE, DIVERGED_PENALTY)] * 2
    assert (workdir / "report" / "index.html").is_file()
    import run_sweep  # the whole sweep's audit holds: diverged trials are final, penalised, unregistered

    assert run_sweep.main(["--check", "blowup", "--tracking-uri", tracking_uri, "--storage", str(workdir / "rr")]) == 0
