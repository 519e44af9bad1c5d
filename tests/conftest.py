"""Shared fixtures.

Ray: ``ray.init(local_mode=True)`` is removed in the Ray we use, so "local-mode" tests run
real Tune sweeps on ONE small in-process local Ray shared by the whole session
(``num_cpus=2``, no dashboard), on tiny synthetic data.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def ray_session():
    import ray

    # Workers must import `common`, `trainables` and the space modules from this checkout.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
    yield ray
    ray.shutdown()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in a fresh folder: mlflow.db, mlartifacts/, ray_results/ and report/ land here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("VAEGAN_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def tracking_uri(workdir):
    return f"sqlite:///{workdir / 'mlflow.db'}"
