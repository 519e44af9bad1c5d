"""What the report reads from MLflow: sweep parent runs, their trial runs grouped by family and
ranked by the family's (validation) objective, every trial of the experiment, and from a run's metric
history its best value and its epochs (``measured_on_run`` adds those to ``values.measured_on``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow import MlflowClient
from mlflow.entities import Run

from common.base.errors import UserError
from common.base.objective import Objective
from common.base.tracking import best_value, redact
from common.report.flags import trial_flags
from common.report.values import measured_on
from common.trial.families import FAMILIES, Field

FAMILY_LABEL = Field("label")  # family name -> the report's name for it, in the registry's order


def fallback_objective(family: str) -> Objective:
    """What ranks ``family``'s trials when the sweep's own metric was not logged."""
    return Objective(FAMILIES[family].config.default_metric, "min")


class ReportError(UserError):
    """The experiment or parent run to report on does not exist; the message says how to fix it."""


@dataclass
class Trial:
    """One child run plus what the report derives from it."""

    run: Run
    family: str
    objective: float | None = None  # best value over epochs of the family's (validation) objective
    epochs: int | None = None  # filled lazily by epochs_run (needs a metric-history call)

    def __post_init__(self):
        self.run_id, self.params, self.tags = self.run.info.run_id, self.run.data.params, self.run.data.tags
        self.trial_id = self.tags.get("trial_id") or self.run.info.run_name or self.run_id[:8]
        self.flags = trial_flags(self.run.data.metrics, self.tags)  # diverged@E, stopped, collapse, ...

    def as_dict(self) -> dict:  # what the pure modules read (mitigations, pareto, seeds, values)
        return {
            "id": self.run_id,
            "trial_id": self.trial_id,
            "params": self.params,
            "metrics": self.run.data.metrics,
            "tags": self.tags,
        }

    def metric(self, key: str) -> float | None:
        # run.data.metrics holds the latest value, i.e. the one at the highest step = final epoch.
        return self.run.data.metrics.get(key)


@dataclass
class FamilyTrials:
    """One family's trials under a sweep parent, ranked on its objective (what the report reads;
    the family itself is its ``common.trial.families.Family`` record)."""

    name: str
    parent: Run  # the sweep parent run these trials are children of
    objective: Objective  # what ranks this family's trials
    trials: list[Trial]
    ranked: list[Trial] = field(default_factory=list)  # trials with a finite objective, best first
    varying: list[str] = field(default_factory=list)  # params whose value differs across trials

    @property
    def best(self) -> Trial | None:
        return self.ranked[0] if self.ranked else None


# ---- reading MLflow -----------------------------------------------------------------------
def search_all(client: MlflowClient, exp_id: str, query: str, order_by: list[str] | None = None) -> list[Run]:
    runs, token = [], None
    while True:  # page through: a big sweep can exceed one page of runs
        page = client.search_runs([exp_id], query, max_results=1000, order_by=order_by, page_token=token)
        runs += list(page)
        if not (token := page.token):
            return runs


def load(client: MlflowClient, experiment: str, parent_run_id: str | None) -> tuple[list[Run], dict[str, FamilyTrials]]:
    """(parent runs used, newest first; family name -> FamilyTrials), families in FAMILY_LABEL order."""
    try:
        exp = client.get_experiment_by_name(experiment)
    except Exception as e:
        raise ReportError(f"cannot read MLflow at {redact(client.tracking_uri)}: {e}; check the tracking URI") from None
    if exp is None:
        names = ", ".join(sorted(e.name for e in client.search_experiments())) or "(none)"
        raise ReportError(
            f"MLflow experiment {experiment!r} not found at {redact(client.tracking_uri)}; existing experiments: "
            f"{names} -- pass one of these or check the tracking URI"
        )
    if parent_run_id:
        try:
            run = client.get_run(parent_run_id)
        except Exception:
            raise ReportError(
                f"parent run {parent_run_id!r} not found at {redact(client.tracking_uri)}; "
                f"omit it to use the latest sweeps in {experiment!r}"
            ) from None
        if run.info.experiment_id != exp.experiment_id:
            raise ReportError(
                f"run {parent_run_id} belongs to experiment id {run.info.experiment_id}, "
                f"not {experiment!r} (id {exp.experiment_id})"
            )
        return [run], family_trials(client, run, list(FAMILY_LABEL))
    candidates = search_all(client, exp.experiment_id, "tags.`sweep.role` = 'parent'", ["attributes.start_time DESC"])
    if not candidates:
        raise ReportError(
            f"experiment {experiment!r} has no sweep parent run (tag sweep.role=parent); "
            f"run a sweep into it first or pass parent_run_id"
        )
    used, families = [], {}
    for parent in candidates:  # newest first: each family comes from the latest sweep that ran it
        if found := family_trials(client, parent, [n for n in FAMILY_LABEL if n not in families]):
            used, families = used + [parent], {**families, **found}
        if len(families) == len(FAMILY_LABEL):
            break
    return used or candidates[:1], {n: families[n] for n in FAMILY_LABEL if n in families}


def family_trials(client: MlflowClient, parent: Run, names: list[str]) -> dict[str, FamilyTrials]:
    """Group the parent's children of ``names`` by family, pick each objective and rank trials."""
    children = search_all(client, parent.info.experiment_id, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    # A multi-objective sweep ("val_probe_acc,val_classifier_fd") ranks by its first objective, as Tune does.
    sweep_metric, sweep_mode = [
        (v or "").split(",")[0] for v in (parent.data.params.get("metric"), parent.data.params.get("mode", "min"))
    ]
    families: dict[str, FamilyTrials] = {}
    for name in names:
        trials = [
            Trial(r, name) for r in children if (r.data.tags.get("family") or r.data.params.get("family")) == name
        ]
        if not trials:
            continue
        use_sweep = sweep_metric and any(t.metric(sweep_metric) is not None for t in trials)
        objective = Objective(sweep_metric, sweep_mode) if use_sweep else fallback_objective(name)
        fam = FamilyTrials(name, parent, objective, trials)
        for t in trials:  # the epoch its best.pt holds: what the sweep selected the trial by
            t.objective = best_value(client, t.run_id, objective)
        fam.ranked = objective.ranked((t for t in trials if t.objective is not None), key=lambda t: t.objective)
        keys = sorted({k for t in trials for k in t.params} - {"family"})
        fam.varying = [k for k in keys if len({t.params.get(k) for t in trials}) > 1]
        families[name] = fam
    return families


def experiment_trials(client: MlflowClient, exp_id: str) -> list[Trial]:
    """Every trial run of the experiment, whichever parent it is a child of."""
    runs = search_all(client, exp_id, "tags.`sweep.role` = 'trial'")
    return [Trial(r, r.data.tags.get("family") or r.data.params.get("family", "?")) for r in runs]


def epochs_run(client: MlflowClient, trial: Trial) -> int | None:
    """Epochs run = highest step of a per-epoch metric (step = epoch, 1-based)."""
    for key in ("epoch_time_s", "train_time_s"):
        if trial.epochs is None and (steps := [m.step for m in client.get_metric_history(trial.run_id, key)]):
            trial.epochs = max(steps)
    return trial.epochs


def measured_on_run(client: MlflowClient, key: str, trial: Trial) -> str:
    """``values.measured_on`` of a trial run; its epochs are read from MLflow only for train_time_s."""
    return measured_on(key, trial.as_dict(), epochs_run(client, trial) if key == "train_time_s" else None)
