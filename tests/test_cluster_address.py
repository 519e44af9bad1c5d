"""``--address`` checked before ``ray.init`` (common/sweep/cluster.py): a head that is not there, that
wants a token, or that runs other versions is one ``error:`` line and exit 2, within the probe's timeout.
(Nothing listening and a malformed address are in tests/test_cli.py's table.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray_head import ray_head

from common.sweep.cluster import PROBE_TIMEOUT_S, ClusterError, check_address, resolve_address

ROOT = Path(__file__).resolve().parents[1]


def test_nothing_listening_at_address_is_found_with_one_bounded_connect(monkeypatch):
    import common.sweep.cluster

    calls = []

    def connect(addr, timeout):
        calls.append((addr, timeout))
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(common.sweep.cluster.socket, "create_connection", connect)
    with pytest.raises(ClusterError, match="no Ray head answers at 127.0.0.1:9"):
        check_address("127.0.0.1:9")
    assert calls == [(("127.0.0.1", 9), common.sweep.cluster.CONNECT_TIMEOUT_S)]


def test_a_head_on_other_versions_is_refused_naming_both(monkeypatch):
    import common.sweep.cluster

    server = socket.create_server(("127.0.0.1", 0))  # something listens; the probe is replaced
    port = server.getsockname()[1]
    monkeypatch.setattr(
        common.sweep.cluster, "_cluster_metadata", lambda addr: {"ray_version": "2.9.3", "python_version": "3.10.4"}
    )
    try:
        with pytest.raises(ClusterError, match=r"runs Ray 2\.9\.3 on Python 3\.10\.4, this driver Ray \d"):
            check_address(f"127.0.0.1:{port}")
        import platform

        import ray

        ray_version, python_version = ray.__version__, platform.python_version()
        monkeypatch.setattr(
            common.sweep.cluster,
            "_cluster_metadata",
            lambda addr: {"ray_version": ray_version, "python_version": python_version},
        )
        check_address(f"127.0.0.1:{port}")  # the same versions pass
    finally:
        server.close()


def test_auto_reads_ray_address_then_the_last_local_cluster(monkeypatch, tmp_path):
    import common.sweep.cluster

    monkeypatch.setattr(common.sweep.cluster, "CURRENT_CLUSTER", tmp_path / "ray_current_cluster")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ClusterError, match="ray start --head"):
        resolve_address("auto")
    (tmp_path / "ray_current_cluster").write_text("10.0.0.5:6379\n")
    assert resolve_address("auto") == "10.0.0.5:6379"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.6:6379")
    assert resolve_address("auto") == "10.0.0.6:6379" and resolve_address("h:1") == "h:1"


def test_a_port_that_is_no_ray_head_is_refused_within_the_probe_timeout(monkeypatch):
    """Refused once the probe's own timeout has run out (its GCS client alone would wait about a minute).
    The bound is that timeout, recorded as the code arms it, plus the cost of starting and reaping an
    interpreter measured here: not a wall time that a slower or busier machine could miss."""
    armed, run = [], subprocess.run

    def recording(*args, **kwargs):
        armed.append(kwargs.get("timeout"))
        return run(*args, **kwargs)

    t0 = time.monotonic()
    run([sys.executable, "-c", "pass"], check=True)
    spawn = time.monotonic() - t0
    monkeypatch.setattr(subprocess, "run", recording)  # the probe's subprocess.run (common.sweep.cluster)
    server = socket.create_server(("127.0.0.1", 0))  # accepts, never speaks gRPC
    t0 = time.monotonic()
    try:
        with pytest.raises(ClusterError, match="is not a Ray head"):
            check_address(f"127.0.0.1:{server.getsockname()[1]}")
    finally:
        server.close()
    elapsed = time.monotonic() - t0
    assert armed == [PROBE_TIMEOUT_S]  # one probe, armed with its timeout
    # margin: 3 interpreter start-ups (the probe's spawn and reap are less than one) + 1 s
    assert elapsed < PROBE_TIMEOUT_S + 3 * spawn + 1.0, (elapsed, spawn)


@pytest.mark.cluster  # starts a real Ray head (its own process group, stopped after: other Rays live on)
def test_a_head_that_wants_a_token_refuses_a_driver_without_it_in_one_line(tmp_path):
    ray = str(Path(sys.executable).parent / "ray")
    head_home, driver_home, cwd = tmp_path / "head", tmp_path / "driver", tmp_path / "cwd"
    for d in (head_home, driver_home, cwd):
        d.mkdir()
    head_env = {**os.environ, "HOME": str(head_home), "RAY_AUTH_MODE": "token"}
    subprocess.run([ray, "get-auth-token", "--generate"], env=head_env, capture_output=True, check=True)
    with ray_head(head_env) as (port, probe):
        env = {
            k: v
            for k, v in os.environ.items()  # MLFLOW_TRACKING_URI: earlier tests export theirs
            if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ADDRESS", "MLFLOW_TRACKING_URI")
        }
        argv = [
            sys.executable,
            str(ROOT / "run_sweep.py"),
            "--space",
            str(ROOT / "sweeps" / "vae_beta.py"),
            "--data",
            "synthetic",
            "--set",
            "val_size=128",
            "--address",
            f"127.0.0.1:{port}",
        ]

        def timed(args):
            t0 = time.monotonic()
            proc = subprocess.run(
                args, cwd=cwd, env={**env, "HOME": str(driver_home)}, capture_output=True, text=True, timeout=120
            )
            return proc, time.monotonic() - t0

        # the baseline: the same command without --address, refused at once for a bad --set (imports included)
        base, base_elapsed = timed(argv[: argv.index("--address")] + ["--set", "bogus=1"])
        res, elapsed = timed(argv)
    assert probe.returncode == 0, probe.stderr[-2000:]
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.stderr[-3000:]
    assert "RAY_AUTH_MODE=token" in lines[0] and "ray get-auth-token" in lines[0]
    assert base.returncode == 2 and "bogus" in base.stderr, base.stderr[-2000:]
    # margin: at most one probe, killed at PROBE_TIMEOUT_S, beyond the baseline (Ray's own retries: minutes)
    assert elapsed < base_elapsed + PROBE_TIMEOUT_S, (elapsed, base_elapsed)
    assert not list(cwd.iterdir()), list(cwd.iterdir())
