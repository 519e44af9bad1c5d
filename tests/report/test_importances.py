"""common/report/importances.py: parameter importances replayed from trials, and read from the sweep's
own Optuna study."""

from __future__ import annotations

import pytest

from common.base.objective import Objective
from common.report.importances import describe_values, param_importances


def test_param_importances_ranks_the_deciding_param():
    rng = __import__("random").Random(0)
    rows = [
        {"lr": str(10 ** -(1 + i % 4)), "noise": str(rng.random()), "opt": "adam", "batch": "128"} for i in range(16)
    ]
    values = [float(r["lr"]) * 100 for r in rows]  # decided by lr alone
    imp = param_importances(rows, values, Objective("v", "min"))
    assert set(imp) == {"lr", "noise"}  # constant params (opt, batch) excluded
    assert next(iter(imp)) == "lr" and imp["lr"] > imp["noise"] and sum(imp.values()) == pytest.approx(1)
    assert param_importances(rows, values, Objective("v", "max")) == imp  # direction does not change importances
    cat = param_importances([{"act": a, "k": "3"} for a in "abcab"], [1.0, 2.0, 3.0, 1.0, 2.0], Objective("v", "max"))
    assert list(cat) == ["act"]
    assert param_importances([{"k": "3"}, {"k": "3"}], [1.0, 2.0], Objective("v", "min")) == {}
    assert describe_values(["1e-3", "0.01"]) == "0.001 .. 0.01" and describe_values(["b", "a", "b"]) == "a, b"


def test_study_importances_read_the_sweeps_own_rdb_study(tmp_path):
    import optuna

    from common.report.importances import study_importances

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s/vae", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: 10 * t.suggest_float("x", 0, 1) + 0.01 * t.suggest_float("y", 0, 1), n_trials=12)
    for _ in range(3):  # ASHA-stopped trials, as the searcher tells them: PRUNED, which the evaluators skip
        pruned = study.ask()
        pruned.suggest_float("x", 0, 1), pruned.suggest_float("y", 0, 1)
        study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    imp, n = study_importances(storage, "s/vae")
    assert n == 12 and set(imp) == {"x", "y"} and imp["x"] > 0.9 and abs(sum(imp.values()) - 1) < 1e-9
    with pytest.raises(RuntimeError, match="cannot read Optuna study 'nope'"):
        study_importances(storage, "nope")
