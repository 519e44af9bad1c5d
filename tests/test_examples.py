"""examples/one_trial.py, the public API's tour, runs as written (synthetic data, one epoch)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_one_trial_example_trains_evaluates_and_prints_its_numbers(workdir):
    # workdir's VAEGAN_CACHE holds the session's classifier and Inception-feature caches: the
    # synthetic test split's features are the same for every test, and most of this test's time.
    tmp_path = workdir
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "one_trial.py"), "--data", "synthetic", "--n", "32"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    m = re.fullmatch(
        r"run (\w{32}), best epoch 1: Inception FID ([\d.]+), KID (-?[\d.]+) \(32 generated .*synthetic\)", line
    )
    assert m and float(m.group(2)) > 0, line
    assert (tmp_path / "mlflow.db").is_file()


@pytest.mark.slow  # a sweep, a report, --report, --sample and --check, each its own process: make test-slow
def test_a_family_from_a_folder_outside_the_repo_is_swept_reported_sampled_and_checked(workdir):
    """examples/wae_mmd.py copied to a folder of its own, named by the space file there, with no
    PYTHONPATH: the driver, the Ray workers and the jobs that read the sweep back all find it."""
    import shutil

    (workdir / "mine").mkdir()
    shutil.copy(ROOT / "examples" / "wae_mmd.py", workdir / "mine" / "wae_mmd.py")
    (workdir / "mine" / "space.py").write_text(
        'plugins = ["wae_mmd.py"]\nfamily = ["vae", "wae"]\nmetric = "val_classifier_fd"\nmode = "min"\n'
        "def _lr(trial):\n    trial.suggest_float('lr', 1e-4, 1e-3, log=True)\n"
        "space = {'vae': _lr, 'wae': _lr}\n"
        "defaults = {'vae.base_channels': 8, 'wae.base_channels': 8, 'vae.hidden_dim': 0}\n"
        "resources = {'cpu': 1, 'gpu': 0}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "PYTHONPATH"}
    run = lambda *args: subprocess.run(
        [sys.executable, str(ROOT / "run_sweep.py"), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    swept = run("--space", "mine/space.py", "--smoke-test", "--experiment", "byo", "--eval-n", "0")
    assert swept.returncode == 0, swept.stderr[-3000:]
    assert re.search(r"^best wae: val_classifier_fd=", swept.stdout, re.M), swept.stdout[-2000:]
    report = (workdir / "report" / "report.md").read_text()
    assert "WAE-MMD" in report and "VAE" in report  # beside a built-in family
    # the jobs that read the sweep back import the plugin the parent run recorded on the user's word:
    # --plugin, or --trust-plugins (a store's tag alone imports nothing)
    (workdir / "report").rename(workdir / "first_report")
    untrusted = run("--report", "byo")
    assert "note: the store names plugin(s)" in untrusted.stderr and untrusted.returncode == 0, untrusted.stderr
    report = (workdir / "report" / "report.md").read_text()
    assert "WAE-MMD" not in report and "VAE" in report  # it went on without the family that needs the plugin
    again = run("--report", "byo", "--plugin", "mine/wae_mmd.py")
    assert again.returncode == 0 and "WAE-MMD" in (workdir / "report" / "report.md").read_text(), again.stderr[-2000:]
    sampled = run("--sample", "models:/byo-wae@best", "-n", "4", "--out", "wae.png", "--trust-plugins")
    assert sampled.returncode == 0 and (workdir / "wae.png").is_file(), sampled.stderr[-2000:]
    checked = run("--check", "byo", "--trust-plugins")
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]
    # each trial's run reads like the trial in the MLflow UI: family, trial id, the searched params
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("byo").experiment_id], "tags.`sweep.role` = 'trial'")
    assert {r.data.tags["family"] for r in runs} == {"vae", "wae"}
    assert all(re.fullmatch(rf"{r.data.tags['family']}-\w+ lr=[\d.e-]+", r.info.run_name) for r in runs), [
        r.info.run_name for r in runs
    ]
