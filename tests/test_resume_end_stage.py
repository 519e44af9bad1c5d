"""The driver is SIGKILLed inside the end stage (registering the best model, or evaluating it) and
``--resume`` redoes only what is unfinished: one model version, one evaluation. The mid-sweep kills
are tests/test_resume.py's."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient
from test_resume import REPO, _env, _reap

# The driver SIGKILLs itself inside the end stage: right after the best model's version is
# registered (before its alias), or right after the final evaluation's metrics are logged.
_KILL_AT = {
    "registering": "from mlflow.tracking import MlflowClient as C\n"
    "C.set_registered_model_alias = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n",
    "evaluating": "from common.base.tracking import TrialRun as T\n"
    "_log = T.log_metrics\n"
    "def log(self, metrics, *a, **k):\n"
    "    _log(self, metrics, *a, **k)\n"
    "    if 'fid' in metrics: os.kill(os.getpid(), signal.SIGKILL)\n"
    "T.log_metrics = log\n",
}
END_ARGV = [
    "--space",
    str(REPO / "sweeps" / "vae_beta.py"),
    "--smoke-test",
    "--no-report",
    "--cpus-per-trial",
    "1",
    "--set",
    "probe_every=0",
]


@pytest.mark.faults
@pytest.mark.parametrize("where", sorted(_KILL_AT))
def test_a_driver_killed_in_the_end_stage_resumes_to_one_version_and_one_evaluation(where, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    driver = (
        "import os, signal, sys\n" + _KILL_AT[where] + f"import run_sweep\nsys.exit(run_sweep.main({END_ARGV!r}))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", driver],
        cwd=tmp_path,
        env=_env(tmp_path),
        start_new_session=True,
        stdout=open(tmp_path / "first.log", "w"),
        stderr=subprocess.STDOUT,
    )
    try:
        rc = proc.wait(timeout=600)
    finally:
        _reap(proc)
    assert rc == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-3000:]
    resumed = subprocess.run(
        [sys.executable, str(REPO / "run_sweep.py"), *END_ARGV, "--resume"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]

    client = MlflowClient(uri)
    versions = client.search_model_versions("name = 'vae_beta-vae'")
    assert len(versions) == 1  # one sweep, one family: one version, whichever run of the driver made it
    parent = [
        r
        for r in client.search_runs([client.get_experiment_by_name("vae_beta").experiment_id])
        if r.data.tags.get("sweep.role") == "parent"
    ][0]
    best_run = parent.data.tags["best_vae_run_id"]
    assert client.get_model_version_by_alias("vae_beta-vae", "best").version == versions[0].version
    assert client.get_model_version("vae_beta-vae", versions[0].version).tags["trial_run_id"] == best_run
    for key in ("fid", "kid", "test_probe_acc_pixels", "test_probe_acc_random_init"):
        assert len(client.get_metric_history(best_run, key)) == 1, key  # evaluated once, logged once
    audit = subprocess.run(
        [sys.executable, str(REPO / "run_sweep.py"), "--check", "vae_beta", "--tracking-uri", uri],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr[-2000:]
