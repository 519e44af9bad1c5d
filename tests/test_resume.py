"""The driver is killed mid-sweep (SIGINT, SIGTERM and SIGKILL) and ``--resume`` finishes the sweep.

Each case runs the real CLI in a subprocess with its own local Ray (its own process group, so
a SIGKILLed driver's leftovers are cleaned up), kills it once two trials have finished, then
runs the same command with ``--resume``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
NUM_SAMPLES = 4
ARGV = [
    sys.executable,
    str(REPO / "run_sweep.py"),
    "--space",
    str(REPO / "sweeps" / "vae_beta.py"),
    "--data",
    "synthetic",
    "--num-samples",
    str(NUM_SAMPLES),
    "--max-epochs",
    "2",
    "--eval-n",
    "0",
    "--no-report",
    "--cpus-per-trial",
    "1",
    "--set",
    "batch_size=64",
    "--set",
    "eval_samples=64",
    "--set",
    "probe_every=0",
    "--set",
    "base_channels=8",
    "--set",
    "val_size=128",
]


def _env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS"))}
    return {**env, "PYTHONPATH": str(REPO), "VAEGAN_CACHE": str(tmp / "cache")}


def _trials(client: MlflowClient, experiment: str = "vae_beta") -> list:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], "tags.`sweep.role` = 'trial'")


def _completed(db: Path) -> int:
    """Trials tagged completed, read-only through sqlite: an MlflowClient here could race the
    driver's schema migration of the new file."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute(
                "select count(*) from tags where key = 'trial_status' and value = 'completed'"
            ).fetchone()[0]
    except sqlite3.Error:  # no tags table yet
        return 0


def _reap(proc: subprocess.Popen) -> None:
    """Ray's agents outlive a SIGKILLed driver: end the driver's whole process group."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _history(client: MlflowClient, run_id: str) -> list[tuple[int, int, float]]:
    return sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, "val_mse_kl"))


@pytest.mark.faults  # a sweep under load or killed midway: minutes, in make test-faults
@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["sigint", "sigterm-in-background", "sigkill"]
)
def test_a_killed_driver_resumes_without_rerunning_or_duplicating_anything(sig, tmp_path):
    """SIGTERM stops the sweep as Ctrl+C does, even in a job a script started in the background
    (SIGINT ignored, as a non-interactive shell's ``&`` leaves it)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log, env = open(tmp_path / "first.log", "w"), _env(tmp_path)
    background = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sig == signal.SIGTERM else None
    kw = dict(cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc = subprocess.Popen(ARGV, preexec_fn=background, **kw)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if _completed(tmp_path / "mlflow.db") >= 2:
                break
            time.sleep(0.3)
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        os.kill(proc.pid, sig)
        rc = proc.wait(timeout=120)
    finally:
        _reap(proc)
    first_log = (tmp_path / "first.log").read_text()
    graceful = sig != signal.SIGKILL
    if graceful:
        assert rc == 130, first_log[-3000:]
        assert "rerun the same command with --resume" in first_log.splitlines()[-1], first_log[-3000:]
    else:
        assert rc == -signal.SIGKILL

    client = MlflowClient(uri)
    before = {
        r.info.run_id: _history(client, r.info.run_id)
        for r in _trials(client)
        if r.data.tags.get("trial_status") == "completed"
    }
    assert len(before) >= 2
    parent_tags = [
        r
        for r in client.search_runs([client.get_experiment_by_name("vae_beta").experiment_id])
        if r.data.tags.get("sweep.role") == "parent"
    ][0].data.tags
    # Ctrl+C marks the parent before exiting; a killed driver could write nothing.
    assert parent_tags.get("sweep.status") == ("interrupted" if graceful else None)
    if graceful:  # Ctrl+C: nothing runs any more, so no run says RUNNING
        exp = client.get_experiment_by_name("vae_beta").experiment_id
        assert not [r.info.run_id for r in client.search_runs([exp]) if r.info.status == "RUNNING"]
    storage, study_name = parent_tags["optuna.storage"], parent_tags["optuna.study.vae"]
    study_before = {
        t.number: t.params
        for t in optuna.load_study(study_name=study_name, storage=storage).trials
        if t.state == optuna.trial.TrialState.COMPLETE
    }

    resumed = subprocess.run(
        ARGV + ["--resume"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    if graceful:  # Ctrl+C saved the status line's state: the resumed one starts from its best
        best = re.compile(r"\| best val_bpd ([-\d.e+]+) \(trial")
        first_event = next(line for line in resumed.stdout.splitlines() if line.startswith("trial "))
        shown = best.search(first_event)
        assert shown and float(shown[1]) == float(best.findall(first_log)[-1]), (first_event, first_log[-2000:])

    exp_id = client.get_experiment_by_name("vae_beta").experiment_id
    runs = client.search_runs([exp_id])
    parents = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    assert len(parents) == 1 and parents[0].data.tags["sweep.status"] == "completed"  # reused, not duplicated
    live = [r for r in runs if r.data.tags.get("sweep.role") == "trial" and r.data.tags["trial_status"] != "failed"]
    assert len(live) == NUM_SAMPLES
    assert not [(r.info.run_id, r.data.tags.get("trial_status")) for r in runs if r.info.status == "RUNNING"]
    audit = subprocess.run(
        [sys.executable, str(REPO / "run_sweep.py"), "--check", "vae_beta", "--tracking-uri", uri],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr[-2000:]  # every invariant of the resumed sweep
    assert all(r.info.status == "FINISHED" for r in live + parents)
    for r in live:
        assert [s for s, _, _ in _history(client, r.info.run_id)] == [1, 2], r.info.run_id  # none twice, none missing
    for run_id, history in before.items():  # finished trials were not re-run: their points are untouched
        assert _history(client, run_id) == history
    # The searcher's history survived: the study holds the trials finished before the kill, and
    # exactly NUM_SAMPLES complete trials in all (a fresh searcher would have started over).
    study = optuna.load_study(study_name=study_name, storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == NUM_SAMPLES
    assert {n: p for n, p in study_before.items()} == {t.number: t.params for t in complete if t.number in study_before}
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    # A trial the dead driver had started but not yet saved leaves a folder with no results; the
    # resumed sweep ran its replacement. Tune's own record holds exactly NUM_SAMPLES trials.
    exp_dir = next((tmp_path / "ray_results").glob("vae_beta_vae_beta_*/vae"))
    tune_trials = [p for p in exp_dir.glob("train_vae_*") if (p / "result.json").is_file()]
    assert len(tune_trials) == NUM_SAMPLES
    state = json.loads(max(exp_dir.glob("experiment_state-*.json")).read_text())
    assert len(state["trial_data"]) == NUM_SAMPLES


# ---- chaos: trial workers and then the driver SIGKILLed in one sweep ------------------------
CHAOS_SPACE = "runs = [{'family': 'vae', 'max_epochs': 3, 'seed': s} for s in (1, 2, 3, 4)]\nscheduler = None\n"
CHAOS_ARGV = [
    "--space",
    "chaos.py",
    "--data",
    "synthetic",
    "--eval-n",
    "0",
    "--no-report",
    "--cpus-per-trial",
    "1",
    "--set",
    "batch_size=16",
    "--set",
    "eval_samples=64",
    "--set",
    "probe_every=0",
    "--set",
    "val_size=128",
    "--set",
    "base_channels=8",
]
_TIMING = {"epoch_time_s", "train_time_s", "peak_rss_mb"}  # measured, not computed


def _running_pids_with_an_epoch(db: Path) -> list[int]:
    """Worker pids of RUNNING trial runs that have logged an epoch (so a checkpoint exists)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return [
                int(p)
                for (p,) in con.execute(
                    "select distinct t.value from tags t join runs r on r.run_uuid = t.run_uuid where t.key = 'pid' "
                    "and r.status = 'RUNNING' and exists (select 1 from metrics m where m.run_uuid = r.run_uuid "
                    "and m.key = 'val_mse_kl')"
                )
            ]
    except sqlite3.Error:
        return []


def _final_metrics(tmp: Path) -> dict[str, dict[str, float]]:
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    return {
        r.data.params["seed"]: {
            k: v for k, v in r.data.metrics.items() if k not in _TIMING and not k.startswith("system/")
        }
        for r in _trials(client, "chaos")
        if r.data.tags["trial_status"] == "completed"
    }


@pytest.mark.faults
def test_chaos_worker_and_driver_kills_then_resume_give_an_undisturbed_runs_metrics_bit_for_bit(tmp_path):
    import random

    calm, chaos = tmp_path / "calm", tmp_path / "chaos"
    for d in (calm, chaos):
        d.mkdir()
        (d / "chaos.py").write_text(CHAOS_SPACE)
    argv = [sys.executable, str(REPO / "run_sweep.py"), *CHAOS_ARGV]
    undisturbed = subprocess.run(
        argv, cwd=calm, env=_env(calm), capture_output=True, text=True, timeout=600, start_new_session=True
    )
    assert undisturbed.returncode == 0, undisturbed.stderr[-3000:]

    rng, killed = random.Random(0), []
    proc = subprocess.Popen(
        argv,
        cwd=chaos,
        env=_env(chaos),
        stdout=open(chaos / "first.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and len(killed) < 2:  # 1. two workers
            pids = [p for p in _running_pids_with_an_epoch(chaos / "mlflow.db") if p not in killed]
            if pids:
                time.sleep(rng.uniform(0.0, 1.0))  # somewhere in a later epoch
                killed.append(rng.choice(pids))
                try:
                    os.kill(killed[-1], signal.SIGKILL)
                except ProcessLookupError:
                    killed.pop()  # it had just finished: pick again
            time.sleep(0.05)
        while time.monotonic() < deadline and proc.poll() is None and _completed(chaos / "mlflow.db") < 2:
            time.sleep(0.1)
        assert proc.poll() is None and len(killed) == 2, (killed, (chaos / "first.log").read_text()[-3000:])
        os.kill(proc.pid, signal.SIGKILL)  # 2. then the driver
        proc.wait(timeout=60)
    finally:
        _reap(proc)
    resumed = subprocess.run(
        argv + ["--resume"],
        cwd=chaos,
        env=_env(chaos),
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]

    expected, got = _final_metrics(calm), _final_metrics(chaos)
    assert sorted(got) == ["1", "2", "3", "4"] and got == expected  # every value, bit for bit
    client = MlflowClient(f"sqlite:///{chaos / 'mlflow.db'}")
    assert any(r.data.tags.get("restored") == "true" for r in _trials(client, "chaos"))  # from a checkpoint
    audit = subprocess.run(
        [
            sys.executable,
            str(REPO / "run_sweep.py"),
            "--check",
            "chaos",
            "--tracking-uri",
            f"sqlite:///{chaos / 'mlflow.db'}",
        ],
        cwd=chaos,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr[-2000:]
