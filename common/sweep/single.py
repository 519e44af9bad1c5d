"""``--single-trial``: one trial in this process, no Ray (breakpoints and profilers work); its
MLflow run is opened and closed as a sweep's trial runs are."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from common.base.names import TRIAL_STATUS
from common.base.run_context import context_tags
from common.base.tracking import (
    TrialRun,
    default_artifact_location,
    get_or_create_experiment,
    git_commit,
    prepare_store,
)
from common.sweep.result import SweepResult
from common.sweep.space import Space
from common.trial.contract import LocalSession, SweepContext
from common.trial.families import config_class
from common.trial.loop import run_trial


def single_trial(
    space: Space, cfg: dict[str, Any], uri: str, experiment: str, classifier: dict, command: str = ""
) -> SweepResult:
    """One trial in this process, no Ray: breakpoints and profilers work."""
    from mlflow.tracking import MlflowClient

    prepare_store(uri)
    exp_id = get_or_create_experiment(MlflowClient(uri), experiment, default_artifact_location(uri))
    family = cfg["family"]
    objective = space.objective_for(family)
    ctx = SweepContext(
        tracking_uri=uri,
        experiment_id=exp_id,
        parent_run_id=None,
        metric=objective.metric,
        mode=objective.mode,
        git_commit=git_commit(),
        cpus_per_trial=torch.get_num_threads(),
        classifier=classifier,
        context_tags=context_tags(git_commit(), command),
    )
    out = Path("single_trial") / time.strftime("%Y%m%d-%H%M%S")
    session = LocalSession(out)
    config = config_class(family).from_dict(cfg)
    print(f"single trial: {family} {config.to_dict()}", flush=True)
    try:
        final = run_trial(config, ctx, session)
    except BaseException as exc:
        close_single(uri, exp_id, session.trial_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    close_single(uri, exp_id, session.trial_id, "FINISHED")
    single = {"family": family, "metrics": final, "checkpoint": str(session.latest_checkpoint)}
    return SweepResult(experiment, uri, completed=True, single_trial=single)


def close_single(uri: str, exp_id: str, trial_id: str, run_status: str) -> None:
    """End the single trial's MLflow run as a sweep's trials end (no Tune callback does it here);
    a run still tagged ``running`` gets the status it ended with."""
    from mlflow.tracking import MlflowClient

    found = MlflowClient(uri).search_runs(
        [exp_id], f"tags.trial_id = '{trial_id}' and attributes.status = 'RUNNING'", max_results=1,
        order_by=["attributes.start_time DESC"],
    )  # fmt: skip
    for run in found:
        trial = TrialRun.attach(uri, run.info.run_id)
        if run.data.tags.get(TRIAL_STATUS) == "running":
            trial.set_tags({TRIAL_STATUS: {"FAILED": "failed", "KILLED": "stopped"}.get(run_status, "completed")})
        trial.finish(run_status)
