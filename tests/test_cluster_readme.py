"""docs/cluster.md, "Running on a cluster", run as written: every ```bash block of the page whose
commands this machine can run, in order, with ``HEAD_IP`` = 127.0.0.1.

Run: the storage/tracking-server block (against a moto S3 server on 127.0.0.1), the head node,
a CPU worker (a second raylet on this machine), the sweep (plus ``--smoke-test``: synthetic
data, 2 trials, 1 epoch; this machine cannot download CIFAR-10), ``ray stop``. Not run: the
GPU and Apple-silicon workers, which need that hardware; ``tests/test_cluster.py`` simulates
them. Marked ``cluster`` (``make test-cluster``): ``ray stop`` ends every Ray on the machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
SKIP = ("--num-gpus", '"mps"')  # blocks for hardware this machine lacks


def cluster_page_blocks() -> list[str]:
    text = (ROOT / "docs" / "cluster.md").read_text()
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_the_cluster_page_runs_as_written(s3, tmp_path):
    import requests

    blocks = cluster_page_blocks()
    assert len(blocks) == 7, "docs/cluster.md changed: update this test's expectations"
    runnable = [b for b in blocks if not any(k in b for k in SKIP)]
    assert len(runnable) == 5
    # The commands use .venv/bin/... and sweeps/... relative to a checkout: give them one.
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parents[1])  # the venv running this test
    for name in ("sweeps", "run_sweep.py", "mlflow_server"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, **s3, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_AUTH_MODE", None)
    s3_port = s3["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]
    server, token = None, ""
    try:
        for block in runnable:
            script = block.replace("HEAD_IP", "127.0.0.1").replace("127.0.0.1:9000", f"127.0.0.1:{s3_port}")
            script = script.replace("=TOKEN", f"={token}")  # what the head's get-auth-token printed
            if "run_sweep.py" in script:
                script = script.strip() + " --smoke-test\n"
            commands = []
            for line in script.strip().splitlines():  # `export`s carry over, as in one shell per machine
                if line.startswith("export "):
                    key, _, value = line[len("export ") :].split("#")[0].strip().partition("=")
                    env[key] = value
                else:
                    commands.append(line)
            if commands[-1].rstrip().endswith("&"):  # the tracking server: keep its process to stop it
                server = subprocess.Popen(
                    ["bash", "-c", "exec " + commands[-1].rstrip(" &")],
                    cwd=tmp_path,
                    env=env,
                    start_new_session=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for _ in range(120):
                    try:
                        requests.get("http://127.0.0.1:5000/health", timeout=1).raise_for_status()
                        break
                    except Exception:
                        time.sleep(0.5)
                continue
            proc = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", "\n".join(commands)],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert proc.returncode == 0, f"{script}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            if "get-auth-token" in script:  # it prints the token with no newline: read where it keeps it
                token = (Path.home() / ".ray" / "auth_token").read_text().strip()
    finally:
        subprocess.run([str(tmp_path / ".venv" / "bin" / "ray"), "stop", "--force"], capture_output=True)
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("vae_beta")
    runs = client.search_runs([exp.experiment_id], "tags.`sweep.role` = 'trial'")
    assert len(runs) == 2 and all(r.data.tags["trial_status"] == "completed" for r in runs)
    assert all(r.data.tags["device"] == "cpu" and r.data.tags["node_ip"] for r in runs)
    import pyarrow.fs as pafs

    fs, root = pafs.FileSystem.from_uri("s3://sweeps/vae_beta")
    names = [i.path for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))]
    assert any(n.endswith("sweep.json") for n in names) and any("/checkpoint_" in n for n in names)
