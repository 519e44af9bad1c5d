"""Shared fixtures.

Ray: ``ray.init(local_mode=True)`` is removed in the Ray we use, so "local-mode" tests run
real Tune sweeps on ONE small in-process local Ray shared by the whole session
(``num_cpus=2``, no dashboard), on tiny synthetic data.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}},
    )
    yield ray
    ray.shutdown()


SHARED = ("classifier", "features")  # keyed by content hash (and config): safe to share between tests


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory):
    """One cache of domain classifiers and reference features for the session. Both are keyed by
    the data's content hash, so tests share the synthetic data's instead of each computing them."""
    root = tmp_path_factory.mktemp("shared-cache")
    for name in SHARED:
        (root / name).mkdir()
    return root


def link_shared_cache(cache: Path, shared: Path) -> Path:
    """Make ``cache`` (a VAEGAN_CACHE folder) use the session's classifier and feature caches."""
    cache.mkdir(parents=True, exist_ok=True)
    for name in SHARED:
        (cache / name).symlink_to(shared / name, target_is_directory=True)
    return cache


@pytest.fixture
def workdir(tmp_path, monkeypatch, classifier_cache):
    """Run in a fresh folder: mlflow.db, mlartifacts/, ray_results/ and report/ land here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("VAEGAN_CACHE", str(link_shared_cache(tmp_path / "cache", classifier_cache)))
    return tmp_path


@pytest.fixture(scope="module")
def module_workdir(tmp_path_factory, classifier_cache):
    """As ``workdir``, shared by one module's tests (one sweep they each check a part of)."""
    path = tmp_path_factory.mktemp("module")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("VAEGAN_CACHE", str(link_shared_cache(path / "cache", classifier_cache)))
        yield path


@pytest.fixture
def tracking_uri(workdir):
    return f"sqlite:///{workdir / 'mlflow.db'}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 with the bucket ``sweeps``; the AWS_* variables point at it."""
    import pyarrow.fs as pafs
    import requests

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for _ in range(100):
            try:
                requests.get(env["AWS_ENDPOINT_URL"], timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        pafs.S3FileSystem(
            endpoint_override=env["AWS_ENDPOINT_URL"], scheme="http", allow_bucket_creation=True
        ).create_dir("sweeps")
        yield env
    finally:
        proc.terminate()
        proc.wait(10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
