"""A plugin family on a real cluster: ``ray start --head`` in its own process group, a driver that
joins it with ``--address`` from another folder, and a family defined in a module outside the
repo and off every path. The head's workers import it only because the driver ships it
(``runtime_env`` ``py_modules``, common/sweep/cluster.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlflow import MlflowClient
from ray_head import ray_head

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = """
from dataclasses import dataclass
from typing import ClassVar

from common.api import Family, register
from common.trial.config import DCGANConfig
from common.trial.tasks.dcgan import DCGANTask


@dataclass(frozen=True)
class FarConfig(DCGANConfig):
    family: ClassVar[str] = "far"


register(Family("far", FarConfig, DCGANTask, "Far GAN", curve_metrics=(), decodes=False))
"""
SPACE = """
plugins = ["models/far.py"]
family = "far"
metric = "val_classifier_fd"
mode = "min"
num_samples = 1
max_epochs = 1
defaults = {"g_channels": 8, "g_hidden": 0, "d_channels": 4, "d_hidden": 0, "eval_samples": 64, "val_size": 128}
resources = {"cpu": 1, "gpu": 0}
"""


@pytest.mark.cluster  # starts a real Ray head (its own process group, stopped after: other Rays live on)
def test_a_plugin_family_trains_on_a_head_joined_with_address(tmp_path):
    (tmp_path / "space" / "models").mkdir(parents=True)
    (tmp_path / "space" / "models" / "far.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "space" / "far_sweep.py").write_text(textwrap.dedent(SPACE))
    for d in ("head", "driver", "cwd"):
        (tmp_path / d).mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "PYTHONPATH")}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with ray_head({**clean, "HOME": str(tmp_path / "head")}) as (port, probe):
        assert probe.returncode == 0, probe.stderr[-2000:]
        argv = [sys.executable, str(ROOT / "run_sweep.py"), "--space", str(tmp_path / "space" / "far_sweep.py")]
        argv += ["--data", "synthetic", "--address", f"127.0.0.1:{port}", "--tracking-uri", uri]
        argv += ["--storage", str(tmp_path / "rr"), "--eval-n", "0", "--no-report"]
        env = {**clean, "HOME": str(tmp_path / "driver")}
        res = subprocess.run(argv, cwd=tmp_path / "cwd", env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("far_sweep")
    trials = client.search_runs([exp.experiment_id], "tags.`sweep.role` = 'trial'")
    assert [(r.data.tags["family"], r.data.tags["trial_status"]) for r in trials] == [("far", "completed")]
    assert "far" in res.stdout and "best" in res.stdout
