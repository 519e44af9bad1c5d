"""Optuna parameter importances: from the sweep's own study in its RDB storage
(``study_importances``), or, when that is not reachable, replayed from finished trials.

``param_importances`` replays trials (their params and objective values) into an in-memory
Optuna study with distributions inferred from the observed values, then asks Optuna for the
importances: fANOVA first, mean decrease impurity if fANOVA fails. Both evaluators are seeded,
so the same trials always give the same numbers. Pure: reads nothing, logs nothing.
"""

from __future__ import annotations

import warnings
from typing import Any

EVALUATOR_SEED = 0


def parse_value(value: Any) -> int | float | str:
    """MLflow params are strings: '3' -> 3, '1e-3' -> 0.001, 'adam' -> 'adam'."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    for typ in (int, float):
        try:
            return typ(value)
        except (TypeError, ValueError):
            pass
    return str(value)


def describe_values(raw: list[Any]) -> str:
    """The observed values of one param, as the distribution sees them: 'min .. max' or the choices."""
    values = [parse_value(v) for v in raw]
    if all(isinstance(v, (int, float)) for v in values):
        return f"{min(values):g} .. {max(values):g}"
    return ", ".join(sorted(set(map(str, values))))


def param_importances(rows: list[dict[str, Any]], values: list[float], mode: str) -> dict[str, float]:
    """Importance of each param that varies across ``rows`` for the objective ``values``.

    ``rows[i]`` holds trial i's params (strings as MLflow returns them, or numbers);
    ``values[i]`` its objective; ``mode`` is "min" or "max". Params missing from some row or
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
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # silence "study created" chatter; restored below
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
            for i, value in enumerate(values):
                study.add_trial(
                    optuna.trial.create_trial(
                        params={k: vs[i] for k, vs in observed.items()}, distributions=dists, value=float(value)
                    )
                )
            return _evaluate(study)
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
    distributions, every trial Tune told the searcher about: ASHA-stopped trials count with
    their last reported objective) -> ({param: importance}, completed trials). Raises
    RuntimeError when the study cannot be read or no evaluator works."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                study = optuna.load_study(study_name=study_name, storage=storage)
            except Exception as e:
                raise RuntimeError(f"cannot read Optuna study {study_name!r} from {storage}: {e}") from None
            if len(study.directions) > 1:
                raise RuntimeError("importances of a multi-objective study need a target; see the Pareto section")
            done = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
            return (_evaluate(study) if done else {}), len(done)
    finally:
        optuna.logging.set_verbosity(verbosity)
