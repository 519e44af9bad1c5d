"""``run_sweep.py --check EXPERIMENT``: audit a sweep end to end, from what MLflow, Tune's state
and the Optuna study hold, and print one table (exit 0 when every invariant holds, 1 otherwise).

The invariants (one row each):
1. every Tune trial has exactly one MLflow run, and every trial run has a Tune trial (runs a
   killed driver started before Tune recorded them are tagged orphaned and exempt);
2. each run's per-epoch metrics appear exactly once for epochs 1..last (``epoch_time_s``);
3. every run's status is final and agrees with its ``trial_status``;
4. every completed trial has ``checkpoints/best.pt``, and it loads with ``weights_only=True``;
5. each family's ``@best`` registered version points at an existing trial run and checkpoint,
   and that run is the family's best on the selection metric;
6. each Optuna study holds as many trials as Tune ran, in states that match the runs
   (COMPLETE, PRUNED, FAIL);
7. nothing waits in a trial's ``mlflow_unlogged.jsonl`` (an orphaned run's excepted: its trial was
   run again from scratch);
8. the test metrics a completed trial logged score the weights it selected: its ``best.pt``, read
   back and scored again on the CPU (``common.trial.families.rescore_samples``), gives the logged
   ``SAMPLE_ONLY`` metrics (functions of the weights and the fixed z alone) to ``RTOL`` (``GPU_RTOL``
   for a run trained on another device, whose kernels round otherwise).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from dataclasses import dataclass

from common.base.names import SWEEP_ROLE, TRIAL_STATUS
from common.base.objective import Objective
from common.base.tracking import UNLOGGED_FILE, TrackingError, best_value
from common.sweep.best import registered_name
from common.sweep.storage import SweepStorage
from common.trial.checkpoint import CheckpointError, load_checkpoint
from common.trial.records import RUN_ID_FILE

# trial_status -> the MLflow statuses a finished run may have
FINAL = {
    "completed": {"FINISHED"},
    "stopped": {"FINISHED"},
    "diverged": {"FINISHED"},
    "collapsed": {"FINISHED"},
    "failed": {"FAILED", "KILLED"},
    "interrupted": {"KILLED"},
}
# trial_status -> the Optuna state its trial must have (a diverged trial is COMPLETE with its penalty)
OPTUNA_STATE = {
    "completed": "COMPLETE",
    "diverged": "COMPLETE",
    "stopped": "PRUNED",
    "collapsed": "PRUNED",
    "failed": "FAIL",
}


@dataclass
class Check:
    name: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def audit(experiment: str, uri: str, storage: str) -> list[Check]:
    """The eight invariants of ``experiment`` (tracked at ``uri``, Tune state under ``storage``)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise TrackingError(
            f"--check: no experiment {experiment!r} at this tracking URI; pass --tracking-uri, "
            "or the experiment's name (the space file's stem unless --experiment was given)"
        )
    runs = client.search_runs([exp.experiment_id], max_results=50_000)
    parents = [r for r in runs if r.data.tags.get(SWEEP_ROLE) == "parent"]
    trials = [r for r in runs if r.data.tags.get(SWEEP_ROLE) == "trial"]
    tune = _tune_trials(SweepStorage(storage), {p.info.run_id for p in parents})
    return [
        _one_run_per_trial(tune, trials),
        _epochs_once(client, trials),
        _statuses(parents, trials),
        _best_checkpoints(client, trials),
        _registered(client, experiment, parents, trials),
        _optuna(parents, trials, tune),
        _unlogged(tune, trials),
        _selected_weights(client, trials),
    ]


def _tune_trials(storage: SweepStorage, parent_ids: set[str]) -> dict[str, dict]:
    """Tune trial folder -> {"family": its Tune experiment's folder, "runs": the MLflow run ids it
    reported, "unlogged": lines waiting in its mlflow_unlogged.jsonl}, over every sweep folder whose
    sweep.json names one of ``parent_ids``."""
    from pyarrow.fs import FileSelector, FileType

    out: dict[str, dict] = {}
    for top in storage.fs.get_file_info(FileSelector(storage.root, allow_not_found=True)):
        if top.type != FileType.Directory or not storage.exists(f"{top.base_name}/sweep.json"):
            continue
        if json.loads(storage.read_text(f"{top.base_name}/sweep.json"))["parent_run_id"] not in parent_ids:
            continue
        for f in storage.fs.get_file_info(FileSelector(storage.path(top.base_name), recursive=True)):
            parts = f.path[len(storage.root) :].strip("/").split("/")
            if len(parts) != 4 or parts[-1] not in ("result.json", RUN_ID_FILE, UNLOGGED_FILE):
                continue
            trial = out.setdefault("/".join(parts[:3]), {"family": parts[1], "runs": set(), "unlogged": 0})
            text = storage.read_text("/".join(parts))
            if parts[-1] == "result.json":
                trial["runs"] |= {json.loads(line)["mlflow_run_id"] for line in text.splitlines() if line.strip()}
            elif parts[-1] == RUN_ID_FILE:
                trial["runs"].add(text.strip())
            else:
                trial["unlogged"] += sum(1 for line in text.splitlines() if line.strip())
    return out


def _orphan(run) -> bool:
    return run.data.tags.get("error", "").startswith("orphaned")


def _single(run) -> bool:
    """A ``--single-trial`` run: no sweep parent, and no Tune trial behind it."""
    return "mlflow.parentRunId" not in run.data.tags


def _one_run_per_trial(tune: dict, trials: list) -> Check:
    problems = [f"Tune trial {t} has {len(v['runs'])} MLflow runs" for t, v in tune.items() if len(v["runs"]) != 1]
    known = set().union(*(v["runs"] for v in tune.values())) if tune else set()
    problems += [
        f"run {r.info.run_id} has no Tune trial"
        for r in trials
        if r.info.run_id not in known and not _orphan(r) and not _single(r)
    ]
    return Check(f"every Tune trial ({len(tune)}) has exactly one MLflow run and every run a trial", problems)


def _epochs_once(client, trials: list) -> Check:
    problems = []
    for r in trials:
        steps = sorted(m.step for m in client.get_metric_history(r.info.run_id, "epoch_time_s"))
        if steps != list(range(1, len(steps) + 1)):
            problems.append(f"run {r.info.run_id}: epochs {steps}, not 1..{len(steps)} once each")
    return Check("per-epoch metrics appear exactly once for epochs 1..last", problems)


def _statuses(parents: list, trials: list) -> Check:
    problems = [f"parent {p.info.run_id} is {p.info.status}" for p in parents if p.info.status == "RUNNING"]
    for r in trials:
        status = r.data.tags.get(TRIAL_STATUS)
        if r.info.status not in FINAL.get(status, ()):
            problems.append(f"run {r.info.run_id}: MLflow status {r.info.status} with trial_status={status}")
    return Check("every run's status is final and agrees with trial_status", problems)


def _best_checkpoints(client, trials: list) -> Check:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per run is noise here
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in trials:
            if r.data.tags.get(TRIAL_STATUS) != "completed":
                continue
            try:
                load_checkpoint(client.download_artifacts(r.info.run_id, "checkpoints/best.pt", tmp))
            except CheckpointError as e:
                problems.append(f"run {r.info.run_id}: {e}")
            except Exception as e:  # noqa: BLE001 - the artifact is missing
                problems.append(f"run {r.info.run_id}: no checkpoints/best.pt ({type(e).__name__})")
    return Check("every completed trial has a best.pt that loads with weights_only=True", problems)


def _registered(client, experiment: str, parents: list, trials: list) -> Check:
    by_id = {r.info.run_id: r for r in trials}
    problems = []
    families = sorted(
        {
            k[len("best_") : -len("_run_id")]
            for p in parents
            for k in p.data.tags
            if k.startswith("best_") and k.endswith("_run_id")
        }
    )
    for family in families:
        try:
            version = client.get_model_version_by_alias(registered_name(experiment, family), "best")
        except Exception:  # noqa: BLE001 - no such model or alias
            problems.append(f"{family}: no registered version with the alias best")
            continue
        run_id, metric = version.tags.get("trial_run_id"), version.tags.get("metric")
        chosen_by = [p for p in parents if p.data.tags.get(f"best_{family}_run_id")]
        mode = chosen_by[0].data.params.get("mode", "min").split(",")[0] if chosen_by else "min"
        objective = Objective(metric, mode)
        if run_id not in by_id:
            problems.append(f"{family}@best (version {version.version}) points at run {run_id}, not a trial run")
            continue
        if "checkpoints/best.pt" not in {a.path for a in client.list_artifacts(run_id, "checkpoints")}:
            problems.append(f"{family}@best points at run {run_id}, which has no checkpoints/best.pt")
        candidates = [
            r
            for r in trials
            if r.data.tags.get("family") == family
            and metric in r.data.metrics
            and r.data.tags.get(TRIAL_STATUS) in ("completed", "stopped")
        ]
        best = {r.info.run_id: best_value(client, r.info.run_id, objective) for r in candidates}
        best = {k: v for k, v in best.items() if v is not None}  # a run with no finite value cannot win
        winner = objective.pick(list(best), key=best.get) if best else None
        if winner != run_id and best.get(winner) != best.get(run_id):
            problems.append(
                f"{family}@best is run {run_id} ({metric} {best.get(run_id)}), but run {winner} has {best[winner]}"
            )
    return Check(f"each @best version ({len(families)}) points at its family's best trial run", problems)


def _optuna(parents: list, trials: list, tune: dict) -> Check:
    import optuna

    problems = []
    runs_of = {r.info.run_id: r for r in trials}
    for p in parents:
        storage = p.data.tags.get("optuna.storage")
        for key, name in p.data.tags.items():
            if not key.startswith("optuna.study.") or not storage:
                continue
            study = optuna.load_study(study_name=name, storage=storage)
            states = Counter(t.state.name for t in study.trials if "orphaned" not in t.user_attrs)
            family_dir = name.rsplit("/", 1)[-1]
            ids = [next(iter(v["runs"])) for v in tune.values() if v["family"] == family_dir and len(v["runs"]) == 1]
            statuses = [runs_of[i].data.tags.get(TRIAL_STATUS) for i in ids if i in runs_of and not _orphan(runs_of[i])]
            expected = Counter(OPTUNA_STATE.get(s, s) for s in statuses)
            if states != expected:
                problems.append(f"study {name}: {dict(states)}, but the runs say {dict(expected)}")
    return Check("the Optuna studies' trials match Tune's, in states that match the runs", problems)


def _unlogged(tune: dict, trials: list) -> Check:
    """A trial folder's kept writes, unless its run was orphaned: a resume that could not restore
    the trial ran a replacement from scratch, so nothing waits for that run's writes."""
    orphans = {r.info.run_id for r in trials if _orphan(r)}
    problems = [
        f"{t}: {v['unlogged']} write(s) never reached MLflow"
        for t, v in tune.items()
        if v["unlogged"] and not (v["runs"] and v["runs"] <= orphans)
    ]
    return Check("nothing waits in mlflow_unlogged.jsonl", problems)


RTOL, GPU_RTOL = 1e-5, 1e-2


def _selected_weights(client, trials: list) -> Check:
    from common.base.data import load_dataset
    from common.metrics.classifier import get_classifier
    from common.trial.families import SAMPLE_ONLY, rescore_samples

    problems, loaded = [], {}  # data source -> (dataset, classifier state), each loaded once
    with tempfile.TemporaryDirectory() as tmp:
        for r in trials:
            logged = {k: v for k, v in r.data.metrics.items() if k in SAMPLE_ONLY}
            if r.data.tags.get(TRIAL_STATUS) != "completed" or "test.epoch" not in r.data.tags or not logged:
                continue
            try:
                ckpt = load_checkpoint(client.download_artifacts(r.info.run_id, "checkpoints/best.pt", tmp))
                source = ckpt["config"]["data"]
                if source not in loaded:
                    data = load_dataset(source)
                    loaded[source] = data, get_classifier(data, log=lambda _: None)[0]
                fresh = rescore_samples(ckpt, *loaded[source])
            except Exception as e:  # noqa: BLE001 - no best.pt (invariant 4 names it), the data gone
                problems.append(f"run {r.info.run_id}: best.pt could not be scored again ({type(e).__name__}: {e})")
                continue
            rtol = RTOL if r.data.tags.get("device", "cpu") == "cpu" else GPU_RTOL
            off = [k for k, v in logged.items() if k in fresh and not math.isclose(v, fresh[k], rel_tol=rtol)]
            if off:
                k = off[0]
                problems.append(
                    f"run {r.info.run_id}: logged {k} {logged[k]:.6g} at epoch {r.data.tags['test.epoch']}, "
                    f"but its best.pt scores {fresh[k]:.6g}: the test metrics score other weights"
                )
    return Check("every completed trial's test metrics score its best.pt", problems)


def render(checks: list[Check]) -> str:
    """The audit as a plain-text table: one row per invariant, then each problem under it."""
    width = max(len(c.name) for c in checks)
    lines = [f"{'invariant':<{width}}  result", f"{'-' * width}  ------"]
    for c in checks:
        lines.append(f"{c.name:<{width}}  {'ok' if c.ok else 'FAIL'}")
        lines += [f"    - {p}" for p in c.problems[:20]] + (
            [f"    ... {len(c.problems) - 20} more"] if len(c.problems) > 20 else []
        )
    return "\n".join(lines)
