"""The Ray a sweep runs on: ``start_ray`` joins ``--address`` or starts a local one.

An ``--address`` is checked before ``ray.init``:

``ray.init(address=...)`` against a head that is not there, that wants an auth token this
driver lacks, or that runs another Ray or Python retries for about 20 s, warning every second,
then raises through three chained tracebacks. ``check_address`` asks the same questions in
well under 10 s, and answers each with one ``ClusterError`` line that says how to fix it.
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import socket
import tempfile
import threading
from pathlib import Path
from types import ModuleType
from typing import Sequence

from common.base import compat
from common.base.device import mps_available
from common.base.errors import UserError
from common.trial.plugins import ship_path

CONNECT_TIMEOUT_S = 3.0
CURRENT_CLUSTER = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"  # `ray start` writes it
ROOT = Path(__file__).resolve().parents[2]  # the checkout a cluster's workers get
SHIP_EXCLUDES = [".git", ".venv", "ray_results", "mlartifacts", "mlflow.db", "report", "single_trial", "*.pt"]


class ClusterError(UserError):
    """An ``--address`` no sweep can run on (nothing listening, auth, versions)."""


def resolve_address(address: str) -> str:
    """``auto`` -> $RAY_ADDRESS, else the cluster ``ray start`` last started on this machine."""
    if address != "auto":
        return address
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    if CURRENT_CLUSTER.is_file() and CURRENT_CLUSTER.read_text().strip():
        return CURRENT_CLUSTER.read_text().strip()
    raise ClusterError(
        "--address auto: no Ray cluster was started on this machine; start one with "
        "`ray start --head`, or pass --address HEAD_IP:6379"
    )


def check_address(address: str) -> None:
    """ClusterError unless a Ray head answers at ``address`` (HOST:PORT or ``auto``), accepts this
    driver's auth token, and runs this driver's Ray and Python versions. ``ray://`` (Ray Client)
    addresses are left to Ray."""
    if address.startswith("ray://"):
        return
    # 1. Something listens there.
    addr = resolve_address(address)
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ClusterError(f"--address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379) or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise ClusterError(
            f"no Ray head answers at {addr} ({e.strerror or type(e).__name__}); start one there "
            f"with `ray start --head --port {port}`, or fix --address"
        ) from None
    # 2. It is a Ray head that accepts us, 3. running our versions.
    metadata = _cluster_metadata(addr)
    import ray  # here, not at the top: --help and bad input answer without loading Ray

    ours = (ray.__version__, platform.python_version())
    theirs = (metadata.get("ray_version"), metadata.get("python_version"))
    if theirs[0] and tuple(theirs) != tuple(ours):
        raise ClusterError(
            f"the cluster at {addr} runs Ray {theirs[0]} on Python {theirs[1]}, this driver Ray "
            f"{ours[0]} on Python {ours[1]}; run the driver with the cluster's versions (the same "
            "`make venv` image on every node)"
        )


def start_ray(address: str | None, cpus_per_trial: float, verbose: bool, plugins: Sequence[ModuleType] = ()) -> None:
    """Join the cluster at ``address`` (shipping this checkout to its workers), else start a
    local Ray with every core; no-op when Ray is already up (tests, notebooks). ``plugins``: the
    modules that registered model families from outside the package, shipped to every worker
    (``py_modules``), and pickled by value, so a Ray started before the sweep gets their families too."""
    import ray
    from ray import cloudpickle

    for module in plugins:
        cloudpickle.register_pickle_by_value(module)
    if ray.is_initialized():
        return
    shipped = {"py_modules": [ship_path(m) for m in plugins]} if plugins else {}
    if address:
        check_address(address)  # one ClusterError line instead of Ray's own retries and tracebacks
        ray.init(
            address=address,
            runtime_env={"working_dir": str(ROOT), "excludes": SHIP_EXCLUDES, **shipped},
            log_to_driver=verbose,
        )
    else:
        # Quiet start (its banner and token notice are noise here), Ray's usual logging after.
        # Apple silicon's GPU is no Ray resource: declare it, so trials here use MPS (common.base.device).
        ray.init(
            num_cpus=max(os.cpu_count() or 1, int(cpus_per_trial)),
            include_dashboard=False,
            logging_level=logging.ERROR,
            resources={"mps": 1} if mps_available() else None,
            log_to_driver=verbose,
            runtime_env=shipped or None,
        )
    logging.getLogger("ray").setLevel(logging.INFO if verbose else logging.WARNING)
    if threading.current_thread() is threading.main_thread():  # ray.init made SIGTERM exit at once
        signal.signal(signal.SIGTERM, term_as_interrupt)


def term_as_interrupt(signum, frame) -> None:
    """SIGTERM (``kill PID``, a scheduler's stop) stops a sweep as Ctrl+C does: Tune's state saved,
    the runs marked interrupted, exit 130 with the ``--resume`` hint. Inside a Tune fit the SIGINT
    handler is Tune's (save, then return); a job a script started in the background has SIGINT
    ignored, so elsewhere the interrupt is raised here."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


PROBE_TIMEOUT_S = 8.0


def _cluster_metadata(addr: str) -> dict:
    """The head's cluster metadata (its Ray and Python versions) from its GCS; ClusterError when
    it refuses our token or is no Ray head."""
    import json
    import subprocess
    import sys

    try:
        out = (
            subprocess.run(
                [sys.executable, "-c", compat.GCS_PROBE, addr], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
            )
            .stdout.strip()
            .splitlines()
        )
        answer = json.loads(out[-1]) if out else {"error": "no answer"}
    except subprocess.TimeoutExpired:
        answer = {"error": f"no Ray GCS reply within {PROBE_TIMEOUT_S:.0f} s"}
    if answer.get("auth"):
        mode = os.environ.get("RAY_AUTH_MODE", "disabled")
        raise ClusterError(
            f"the Ray cluster at {addr} refused this driver's auth token (RAY_AUTH_MODE={mode}); "
            "set RAY_AUTH_MODE=token and give it the head's token: `ray get-auth-token` on the head "
            "prints it; put it in ~/.ray/auth_token or RAY_AUTH_TOKEN"
        )
    if "error" in answer:
        raise ClusterError(
            f"{addr} answers but is not a Ray head ({answer['error']}); pass the head's GCS port "
            "(6379 by default) to --address"
        )
    return answer["metadata"]
