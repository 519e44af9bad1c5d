"""A real Ray head started with ``ray start --head`` in its own process group and home, for the
tests that join it with ``--address``; stopped after, and the machine's "current cluster" file
put back, so local ``ray.init()`` calls of later tests start their own Ray again."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def ray_head(env: dict[str, str], num_cpus: int = 1, wait_s: float = 120):
    """Yield ``(port, probe)``: the head's GCS port and the last ``check_address`` probe (rc 0 = up)."""
    from common.sweep.cluster import CURRENT_CLUSTER  # `ray start` points it at its head

    ray = str(Path(sys.executable).parent / "ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = CURRENT_CLUSTER.read_text() if CURRENT_CLUSTER.is_file() else None
    argv = [ray, "start", "--head", "--block", "--port", str(port), "--num-cpus", str(num_cpus)]
    head = subprocess.Popen(
        argv + ["--include-dashboard=false", "--disable-usage-stats"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + wait_s
        check = f"from common.sweep.cluster import check_address; check_address('127.0.0.1:{port}')"
        while True:  # up once its GCS answers
            probe = subprocess.run([sys.executable, "-c", check], cwd=ROOT, env=env, capture_output=True)
            if probe.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        yield port, probe
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(3)
        if before is None:
            CURRENT_CLUSTER.unlink(missing_ok=True)
        else:
            CURRENT_CLUSTER.write_text(before)
