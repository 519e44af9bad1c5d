"""Helpers for the tests that run real Tune sweeps on the shared in-process local Ray (conftest.py):
SweepOptions for a shipped space on synthetic data, the runs a sweep left in MLflow, and the check that
no run says RUNNING once nothing runs."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from common.sweep.driver import SweepOptions

ROOT = Path(__file__).resolve().parents[2]


def sweep_runs(uri: str, experiment: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("sweep.role") == "trial"]
    return client, parents, children


FINAL = {
    "completed": "FINISHED",
    "stopped": "FINISHED",
    "diverged": "FINISHED",
    "collapsed": "FINISHED",
    "failed": "FAILED",
    "interrupted": "KILLED",
}  # trial_status -> the MLflow status it must end in


def assert_all_runs_final(uri: str, experiment: str) -> None:
    """No run of the experiment says RUNNING once nothing runs, and each status agrees with its
    ``trial_status`` (the end stage logs to finished runs; it must not reopen them)."""
    _, parents, children = sweep_runs(uri, experiment)
    assert parents and all(p.info.status == "FINISHED" for p in parents)
    wrong = {
        c.info.run_id: (c.data.tags.get("trial_status"), c.info.status)
        for c in children
        if FINAL.get(c.data.tags.get("trial_status")) != c.info.status
    }
    assert not wrong, f"runs whose MLflow status disagrees with trial_status: {wrong}"


def sweep_options(workdir, tracking_uri, space, **kw) -> SweepOptions:
    kw.setdefault("eval_n", 0)  # the Inception evaluation is tested once, below, at a tiny n
    kw["overrides"] = (("val_size", "128"),) + tuple(kw.get("overrides", ()))  # the synthetic split is 512 images
    return SweepOptions(
        space=str(ROOT / "sweeps" / space),
        data="synthetic",
        tracking_uri=tracking_uri,
        storage=str(workdir / "ray_results"),
        out=str(workdir / "report"),
        **kw,
    )
