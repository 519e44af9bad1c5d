"""The contract between a trial and whatever runs it: what the driver hands every trial
(``SweepContext``), the runner's side (``Session``: Tune's, or ``LocalSession`` without Ray) and
what a trial reports each epoch through ``Session.report``: its metrics, ``epoch``, the MLflow
run id (``mlflow_run_id``), and ``diverged: 1`` with a penalty objective when it stopped on
non-finite numbers. Both the loop and its MLflow records read this module; it reads neither.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from common.base.objective import Objective
from common.trial.checkpoint import CHECKPOINT_PREFIX


@dataclass(frozen=True)
class SweepContext:
    """What the driver hands every trial besides its config (not searched, not a param)."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str | None
    metric: str
    mode: str  # "min" | "max"
    git_commit: str = "unknown"
    data_cache_dir: str | None = None
    cpus_per_trial: float = 1.0
    # the domain classifier's state (common.metrics.classifier), trained once by the driver
    classifier: dict | None = None
    placement: str = ""  # what the sweep chose for the family (common.sweep.resources.placement); a run tag
    context_tags: dict | None = None  # MLflow's user / source / commit tags of the driver's command, on every run

    @property
    def objective(self) -> Objective:
        return Objective(self.metric, self.mode)


class Session(Protocol):
    """Tune's API surface the loop uses; ``LocalSession`` implements it without Ray."""

    trial_id: str
    trial_dir: str  # a folder that outlives the trial (kept MLflow writes go there)
    node: str  # where this attempt runs (tagged on the MLflow run, with node_ip)
    node_ip: str
    resources: dict[str, float] | None  # {"GPU": share, "mps": n} the cluster gave it; None = local

    def get_checkpoint_dir(self) -> str | None: ...

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None: ...


class LocalSession:
    """``--single-trial``: no Ray; checkpoints go to ``out_dir/checkpoint_NNNNNN`` (the last
    ``keep``, like Tune's), results print to stdout."""

    def __init__(
        self, out_dir: str | Path, trial_id: str = "local", resume_from: str | Path | None = None, keep: int = 2
    ):
        self.trial_id, self.out_dir, self.keep = trial_id, Path(out_dir), keep
        self.trial_dir, self.node = str(self.out_dir), socket.gethostname()
        self.node_ip, self.resources = "127.0.0.1", None  # no cluster: the local hardware decides
        self.resume_from = str(resume_from) if resume_from else None  # a checkpoint dir, as Tune hands back
        self.results: list[dict[str, Any]] = []
        self.latest_checkpoint: Path | None = None

    def get_checkpoint_dir(self) -> str | None:
        return self.resume_from

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        self.results.append(metrics)
        if checkpoint_dir:
            dest = self.out_dir / f"{CHECKPOINT_PREFIX}{len(self.results) - 1:06d}"
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(checkpoint_dir, dest)
            self.latest_checkpoint = dest
            for old in sorted(self.out_dir.glob(f"{CHECKPOINT_PREFIX}*"))[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items() if k != "mlflow_run_id"}
        print(f"[trial {self.trial_id}] {shown}", flush=True)
