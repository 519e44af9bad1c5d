"""Optuna parameter importances and the report's 'Parameter importances' section (``importance_blocks``):
from the sweep's own study in its RDB storage (``study_importances``), or, when that is not recorded or
not readable, replayed from the family's completed trials.

``param_importances`` replays trials (their params and objective values) into an in-memory
Optuna study with distributions inferred from the observed values, then asks Optuna for the
importances: fANOVA first, mean decrease impurity if fANOVA fails. Both evaluators are seeded,
so the same trials always give the same numbers. It is pure: reads nothing, logs nothing.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

from common.base.names import TRIAL_STATUS
from common.base.objective import Objective
from common.report.runs import FAMILY_LABEL, FamilyTrials
from common.report.values import parse_value

EVALUATOR_SEED = 0
MIN_IMPORTANCE_TRIALS = 3
HOW = "optuna importances (fANOVA, else mean decrease impurity; sum 1)"


def describe_values(raw: list[Any]) -> str:
    """The observed values of one param, as the distribution sees them: 'min .. max' or the choices."""
    values = [parse_value(v) for v in raw]
    if all(isinstance(v, (int, float)) for v in values):
        return f"{min(values):g} .. {max(values):g}"
    return ", ".join(sorted(set(map(str, values))))


def param_importances(rows: list[dict[str, Any]], values: list[float], objective: Objective) -> dict[str, float]:
    """Importance of each param that varies across ``rows`` for the objective ``values``.

    ``rows[i]`` holds trial i's params (strings as MLflow returns them, or numbers);
    ``values[i]`` its ``objective`` value. Params missing from some row or
    constant across all rows are excluded. Distributions: all ints -> IntDistribution, all
    numbers -> FloatDistribution (observed min..max), otherwise categorical over the observed
    values. Returns {param: importance}, highest first, normalised to sum 1; {} when no param
    varies. Raises RuntimeError when no Optuna evaluator works.
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if len(rows) != len(values):
        raise ValueError(f"{len(rows)} param rows but {len(values)} values")
    keys = sorted(k for k in set().union(*rows) if all(k in r for r in rows)) if rows else []
    observed = {k: [parse_value(r[k]) for r in rows] for k in keys}
    observed = {k: vs for k, vs in observed.items() if len(set(map(str, vs))) > 1}
    if not observed:
        return {}
    dists = {}
    for k, vs in observed.items():
        if all(isinstance(v, int) for v in vs):
            dists[k] = IntDistribution(min(vs), max(vs))
        elif all(isinstance(v, (int, float)) for v in vs):
            observed[k] = vs = [float(v) for v in vs]
            dists[k] = FloatDistribution(min(vs), max(vs))
        else:
            observed[k] = vs = [str(v) for v in vs]
            dists[k] = CategoricalDistribution(sorted(set(vs)))
    with _quiet():
        study = optuna.create_study(direction=objective.direction)
        for i, value in enumerate(values):
            study.add_trial(
                optuna.trial.create_trial(
                    params={k: vs[i] for k, vs in observed.items()}, distributions=dists, value=float(value)
                )
            )
        return _evaluate(study)


@contextlib.contextmanager
def _quiet():
    """Optuna without its "study created" chatter and experimental warnings; its verbosity is restored after."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _evaluate(study) -> dict[str, float]:
    """fANOVA, else mean decrease impurity (both seeded), over ``study``'s completed trials."""
    import optuna

    errors = []
    for evaluator in (
        optuna.importance.FanovaImportanceEvaluator(seed=EVALUATOR_SEED),
        optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=EVALUATOR_SEED),
    ):
        try:
            imp = optuna.importance.get_param_importances(study, evaluator=evaluator)
            return dict(sorted(imp.items(), key=lambda kv: -kv[1]))
        except Exception as e:  # fANOVA can fail on degenerate data: fall back
            errors.append(f"{type(evaluator).__name__}: {e}")
    raise RuntimeError(f"no importance evaluator worked ({'; '.join(errors)})")


def study_importances(storage: str, study_name: str) -> tuple[dict[str, float], int]:
    """Importances from the sweep's own Optuna study in its RDB ``storage`` (the searched
    distributions; Optuna's evaluators read its COMPLETE trials only, and the ASHA-stopped ones are
    PRUNED there, so they do not count) -> ({param: importance}, completed trials). Raises
    RuntimeError when the study cannot be read or no evaluator works."""
    import optuna

    with _quiet():
        try:
            study = optuna.load_study(study_name=study_name, storage=storage)
        except Exception as e:
            raise RuntimeError(f"cannot read Optuna study {study_name!r} from {storage}: {e}") from None
        if len(study.directions) > 1:
            raise RuntimeError("importances of a multi-objective study need a target; see the Pareto section")
        done = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
        return (_evaluate(study) if done else {}), len(done)


def importance_blocks(families: dict[str, FamilyTrials]) -> list[tuple]:
    """The section: per family, the study's importances when it has enough trials, else the replayed ones."""
    blocks: list[tuple] = [("h2", "Parameter importances")]
    for fam in families.values():
        from_study, answered = _from_study(fam)
        blocks += from_study
        if not answered:
            blocks += _replayed(fam)
    if not families:
        blocks.append(("p", "No trials."))
    return blocks


def _said(label: str, source: str, imp: dict[str, float]) -> str:
    nothing = "" if imp else " No parameter varies, so there is nothing to rank."
    return f"{label}: {HOW} {source}; with this few trials importances are noisy, read them as a hint.{nothing}"


def _from_study(fam: FamilyTrials) -> tuple[list[tuple], bool]:
    """(blocks, whether they are the answer): the sweep's own study, as the searcher saw it, when its parent
    names one with at least ``MIN_IMPORTANCE_TRIALS`` completed trials; a note when it cannot be read."""
    label, tags = FAMILY_LABEL[fam.name], fam.parent.data.tags
    storage, study = tags.get("optuna.storage"), tags.get(f"optuna.study.{fam.name}")
    if not (storage and study):
        return [], False
    try:
        imp, n = study_importances(storage, study)
    except RuntimeError as e:
        return [("p", f"{label}: {e}; falling back to the MLflow runs.")], False
    if n < MIN_IMPORTANCE_TRIALS:
        return [], False
    source = (
        f"from the searcher's study {study!r} in {storage} (its {n} COMPLETE trials: Optuna's evaluators read "
        "only those; ASHA-stopped trials are PRUNED there and left out)"
    )
    table = [("table", ["param", "importance"], [[k, f"{v:.3f}"] for k, v in imp.items()])] if imp else []
    return [("p", _said(label, source, imp)), *table], True


def _replayed(fam: FamilyTrials) -> list[tuple]:
    """Importances replayed from the family's completed trials (``param_importances``)."""
    label = FAMILY_LABEL[fam.name]
    done = [t for t in fam.ranked if t.tags.get(TRIAL_STATUS) == "completed"]
    if len(done) < MIN_IMPORTANCE_TRIALS:
        return [
            (
                "p",
                f"{label}: only {len(done)} completed trial(s) with {fam.objective.metric}; "
                f"importances need at least {MIN_IMPORTANCE_TRIALS}.",
            )
        ]
    try:
        imp = param_importances([t.params for t in done], [t.objective for t in done], fam.objective)
    except RuntimeError as e:
        return [("p", f"{label}: {e}.")]
    source = (
        f"of the params that vary, replayed from best {fam.objective.metric} ({fam.objective.mode}) of {len(done)} completed "
        f"trials of parent run {fam.parent.info.run_id} (no Optuna study recorded)"
    )
    rows = [[k, f"{v:.3f}", describe_values([t.params[k] for t in done])] for k, v in imp.items()]
    return [
        ("p", _said(label, source, imp)),
        *([("table", ["param", "importance", "observed values"], rows)] if imp else []),
    ]
