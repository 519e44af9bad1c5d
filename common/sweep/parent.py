"""The sweep's parent MLflow run: one per sweep, every trial a child of it (``mlflow.parentRunId``).

The driver opens it (``--resume`` reopens the one in the sweep folder's ``sweep.json``), logs
what the sweep is (its space, budget, data, the domain classifier that scores it), and, when
the sweep stops, leaves no run of it RUNNING.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Iterable

from common.base.names import SWEEP_ROLE, TRIAL_STATUS
from common.base.tracking import TrialRun
from common.trial.plugins import SHA_TAG, TAG, changed_since, entry_point_modules, load_plugins


def open_parent(
    uri: str, experiment_id: str, name: str, reopen_run_id: str | None, tags: dict[str, str], params: dict[str, Any]
) -> TrialRun:
    """The parent run: ``reopen_run_id``'s (``--resume``), else a new one named
    ``sweep-<name>-<time>`` with ``tags`` and ``params``."""
    if reopen_run_id:
        return TrialRun.attach(uri, reopen_run_id, reopen=True)
    parent = TrialRun.create(
        uri, experiment_id, f"sweep-{name}-{time.strftime('%Y%m%d-%H%M%S')}", {SWEEP_ROLE: "parent", **tags}
    )
    parent.log_params(params)
    return parent


def log_space(run: TrialRun, space, rows: list[dict[str, str]]) -> None:
    """The parent run's record of what was searched: the space file itself (``space/``) and its
    resolved search space (``common.sweep.space.search_space_rows``) as a Markdown table and as an
    MLflow table the UI shows (``space/search_space.json``)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "search_space.md"
        lines = ["| family | param | distribution |", "|---|---|---|"]
        lines += [f"| {r['family']} | {r['param']} | {r['distribution']} |" for r in rows] or ["| — | — | no search |"]
        table.write_text(
            f"Search space of {space.path.name} (params seen over random draws)\n\n" + "\n".join(lines) + "\n"
        )
        run.log_artifact(table, "space")
        run.log_artifact(Path(space.path), "space")
    if rows:
        run.client.log_table(run.run_id, {k: [r[k] for r in rows] for k in rows[0]}, "space/search_space.json")


def classifier_tags(state: dict, info: dict) -> dict[str, str]:
    """Parent-run tags that say which domain classifier scored the trials, and how good it is."""
    return {
        "classifier.name": state["name"],
        "classifier.test_acc": f"{info['test_acc']:.4f}",
        "classifier.n_test": str(info["n_test"]),
        "classifier.n_train": str(info["n_train"]),
        "classifier.train_seconds": f"{info['train_seconds']:.0f}",
    }


def close_interrupted_runs(client, experiment_id: str, parent_run_id: str) -> None:
    """Ctrl+C: nothing runs any more, so no run says RUNNING (KILLED, ``trial_status=interrupted``);
    ``--resume`` reopens the parent and every trial it continues."""
    runs = client.search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'RUNNING'"
    )
    for r in runs:
        client.set_tag(r.info.run_id, TRIAL_STATUS, "interrupted")
        client.set_terminated(r.info.run_id, status="KILLED")
    client.set_terminated(parent_run_id, status="KILLED")


def close_orphan_runs(client, experiment_id: str, parent_run_id: str) -> None:
    """Trial runs of this sweep still RUNNING (or still ``interrupted``: not continued) once every
    family is done were started by a driver stopped before Tune recorded them (the resumed sweep
    ran replacements): end them."""
    mine = f"tags.mlflow.parentRunId = '{parent_run_id}'"
    runs = [
        *client.search_runs([experiment_id], f"{mine} and attributes.status = 'RUNNING'"),
        *client.search_runs([experiment_id], f"{mine} and tags.trial_status = 'interrupted'"),
    ]
    for r in runs:
        client.set_tag(r.info.run_id, TRIAL_STATUS, "failed")
        client.set_tag(r.info.run_id, "error", "orphaned: the driver died before Tune recorded this trial")
        client.set_terminated(r.info.run_id, status="KILLED")


def load_recorded_plugins(
    uri: str,
    experiments: list[str] = (),
    model_uri: str | None = None,
    allowed: Iterable[str] = (),
    trust: bool = False,
) -> tuple[list[str], list[str]]:
    """The plugins the sweeps of ``experiments`` (or the run behind ``model_uri``, ``models:/NAME@alias``)
    recorded on their parent runs (tag ``plugins``): (those imported, those not). A store's tag is
    anyone's word who can write to the store, so a recorded plugin is imported only when the user
    named it (``allowed``: ``--plugin``'s recorded specs and the entry points' modules) or ``trust``
    (``--trust-plugins``). A file changed since the sweep (tag ``plugins.sha256``) warns."""
    import json

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = []
    for name in experiments:
        if exp := client.get_experiment_by_name(name):
            runs += client.search_runs([exp.experiment_id], "tags.`sweep.role` = 'parent'", max_results=1000)
    if model_uri and model_uri.startswith("models:/") and "@" in model_uri:
        name, alias = model_uri.removeprefix("models:/").split("@", 1)
        try:
            runs.append(client.get_run(client.get_model_version_by_alias(name, alias).run_id))
        except Exception:  # a wrong name or alias: the sampling job says so in its own words
            pass
    specs = list(dict.fromkeys(s for run in runs for s in json.loads(run.data.tags.get(TAG, "[]"))))
    allowed = set(allowed) | entry_point_modules()
    mine = [s for s in specs if trust or s in allowed]
    imported = load_plugins(mine)
    recorded = {k: v for run in runs for k, v in json.loads(run.data.tags.get(SHA_TAG, "{}")).items()}
    for spec in changed_since(recorded, imported):
        warnings.warn(f"plugin {spec} has changed since the sweep that recorded it (its SHA-256 differs)")
    return imported, [s for s in specs if s not in mine]
