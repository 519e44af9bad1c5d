"""The parent run's panels of its trials' samples, side by side: what a GAN researcher opens first.

For each family of a sweep: its trials' sample grids at their selected epochs (each trial's
``figures/samples.png``, the grid logged with best.pt), labelled by trial and best objective, as the
parent's image ``<family>_trials_best``; and, for every epoch the trials logged a ``samples`` image at
(their ``log_image`` steps), those images side by side as the parent's image ``<family>_trials`` at
that step, so the MLflow UI's image slider compares the trials epoch by epoch.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common.base.figures import side_by_side
from common.base.names import SWEEP_ROLE
from common.base.objective import Objective
from common.base.tracking import best_value

MAX_TRIALS = 12  # a panel's width: the best trials by objective, the rest left out


def log_trial_panels(uri: str, parent_run_id: str, objectives: dict[str, Objective]) -> None:
    """objectives: family -> what its trials were selected on; the panels go on the parent run,
    once: a family whose panels the parent holds already (a --resume of a finished sweep) is skipped."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    parent = client.get_run(parent_run_id)
    logged = {Path(a.path).name.split("+")[0] for a in client.list_artifacts(parent_run_id, "images")}
    children = client.search_runs(
        [parent.info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`{SWEEP_ROLE}` = 'trial'",
        max_results=5000,
    )
    for family, objective in objectives.items():
        if f"{family}_trials_best" in logged:
            continue
        ranked = _ranked([r for r in children if r.data.tags.get("family") == family], client, objective)
        if ranked:
            _log_panels(client, parent_run_id, family, ranked, objective.metric)


def _ranked(runs: list, client, objective: Objective) -> list[tuple]:
    """(run, best value) of the runs that logged the objective, best first, at most MAX_TRIALS."""
    scored = [(r, v) for r in runs if (v := best_value(client, r.info.run_id, objective)) is not None]
    return objective.ranked(scored, key=lambda rv: rv[1])[:MAX_TRIALS]


def _log_panels(client, parent_run_id: str, family: str, ranked: list[tuple], metric: str) -> None:
    label = lambda run, value: f"{run.data.tags.get('trial_id', run.info.run_id[:8])} {metric}={value:.4g}"
    with tempfile.TemporaryDirectory() as tmp:
        best = []
        for i, (run, value) in enumerate(ranked):
            try:
                best.append(
                    (
                        client.download_artifacts(run.info.run_id, "figures/samples.png", f"{tmp}/b{i}"),
                        label(run, value),
                    )
                )
            except Exception:  # noqa: BLE001 - a trial stopped before its first best.pt: no grid to show
                continue
        if best:
            client.log_image(parent_run_id, side_by_side(best), key=f"{family}_trials_best")
        by_step: dict[int, list[tuple[str, str]]] = {}
        for i, (run, value) in enumerate(ranked):
            for step, name in _sample_steps(client, run.info.run_id).items():
                path = client.download_artifacts(run.info.run_id, f"images/{name}", f"{tmp}/s{i}")
                by_step.setdefault(step, []).append((path, label(run, value)))
        for step, images in sorted(by_step.items()):
            client.log_image(parent_run_id, side_by_side(images), key=f"{family}_trials", step=step)


def _sample_steps(client, run_id: str) -> dict[int, str]:
    """step -> the file name of the run's ``samples`` image logged at it (``log_image(key=, step=)``
    names its files ``<key>+step+<step>+timestamp+...``; the compressed copies are skipped)."""
    out = {}
    for f in client.list_artifacts(run_id, "images"):
        name = Path(f.path).name
        parts = name.split("+")
        if len(parts) > 3 and parts[0] == "samples" and parts[1] == "step" and name.endswith(".png"):
            if "compressed" not in name:
                out[int(parts[2])] = name
    return out
