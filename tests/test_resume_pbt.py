"""A PBT sweep interrupted with Ctrl+C and finished with ``--resume`` (test_resume.py's method:
the real CLI in a subprocess with its own local Ray and process group)."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from test_resume import REPO, _env, _reap

PBT_SPACE = """
family = "dcgan"
metric = "val_classifier_fd"
mode = "min"
num_samples = 4
max_epochs = 6
defaults = {"g_channels": 16, "d_channels": 16, "g_hidden": 0, "d_hidden": 0, "batch_size": 64, "eval_samples": 64,
            "probe_every": 0, "val_size": 128}
scheduler = {"kind": "pbt", "perturbation_interval": 1, "quantile_fraction": 0.5, "synch": True,
             "mutations": {"lr_g": ("log", 1e-4, 5e-4), "lr_ratio": ("uniform", 1.0, 4.0), "beta1": [0.0, 0.5]}}
resources = {"cpu": 1}
"""


def _epochs_logged(db: Path) -> int:
    """val_classifier_fd points in the store, read-only (see _completed)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("select count(*) from metrics where key = 'val_classifier_fd'").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.faults
def test_an_interrupted_pbt_sweep_resumes_with_its_population_and_lineage(tmp_path):
    """Ctrl+C in the middle of a PBT sweep, then --resume: the same four trials finish, each epoch
    of each trial's run is logged once, the clones' lineage tags survive, and --check passes."""
    (tmp_path / "pbt.py").write_text(PBT_SPACE)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [sys.executable, str(REPO / "run_sweep.py"), "--space", str(tmp_path / "pbt.py"), "--data", "synthetic"]
    argv += ["--eval-n", "0", "--no-report", "--tracking-uri", uri]
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=_env(tmp_path), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and _epochs_logged(tmp_path / "mlflow.db") < 8:
            time.sleep(0.3)
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        os.kill(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=120)
    finally:
        _reap(proc)
    assert rc == 130, (tmp_path / "first.log").read_text()[-3000:]
    client = MlflowClient(uri)
    assert _epochs_logged(tmp_path / "mlflow.db") < 4 * 6  # it really stopped midway

    resumed = subprocess.run(
        argv + ["--resume"], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=900,
        start_new_session=True,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    runs = client.search_runs([client.get_experiment_by_name("pbt").experiment_id])
    parents = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    assert len(parents) == 1 and parents[0].data.tags["sweep.status"] == "completed"
    live = [r for r in runs if r.data.tags.get("sweep.role") == "trial" and r.data.tags["trial_status"] != "failed"]
    assert len(live) == 4 and all(r.data.tags["trial_status"] == "completed" for r in live)
    assert all(r.info.status == "FINISHED" for r in live + parents)
    for r in live:  # every epoch of every trial once: none replayed into the run twice, none missing
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "val_classifier_fd")]
        lineage = {k: v for k, v in r.data.tags.items() if k.startswith("pbt.")}
        assert sorted(steps) == [1, 2, 3, 4, 5, 6], (r.info.run_id, steps, lineage)
    clones = [v for r in live for k, v in r.data.tags.items() if re.fullmatch(r"pbt\.clone\.\d+", k)]
    for r in live:  # a clone restored again by the resumed sweep is not tagged twice
        lineage = [v for k, v in r.data.tags.items() if re.fullmatch(r"pbt\.clone\.\d+", k)]
        assert len(lineage) == len(set(lineage)) == int(r.data.tags.get("pbt.clones", 0)), lineage
    assert clones, "4 trials, quantile 0.5, a perturbation every epoch: some trial must have been cloned"
    audit = subprocess.run(
        [sys.executable, str(REPO / "run_sweep.py"), "--check", "pbt", "--tracking-uri", uri],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stdout + audit.stderr[-2000:]
