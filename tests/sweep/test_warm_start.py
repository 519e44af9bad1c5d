"""common/sweep/warm_start.py: finished trials of run files enter a new study as its searcher saw them."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from common.sweep.space import load_space, sample_params
from common.sweep.tuning import optuna_sampler
from common.sweep.warm_start import WARM_START_ATTR, sampler_seed, warm_start

SPACE = load_space(Path(__file__).resolve().parents[2] / "sweeps" / "gan_ttur.py")


def _record(params: dict, per_epoch: dict, status="completed", family="dcgan", metric="val_classifier_fd") -> dict:
    """A run file as common.sweep.export writes it: params as MLflow logged them (strings)."""
    return {
        "run_id": f"{status}-{len(per_epoch)}-{family}-{metric}",
        "family": family,
        "status": status,
        "params": {k: str(v) for k, v in {**params, "family": family, "seed": 42}.items()},
        "objective": {"metric": metric, "mode": "min", "per_epoch": {str(e): v for e, v in per_epoch.items()}},
    }


def test_a_completed_trial_enters_with_its_last_value_and_a_stopped_one_as_pruned():
    drawn = [sample_params(SPACE, seed) for seed in (1, 2)]
    records = [
        _record(drawn[0], {1: 9.0, 2: 7.0, 3: 8.0}),  # Tune tells Optuna the last epoch's value
        _record(drawn[1], {1: 12.0}, status="stopped"),  # ASHA stopped it after epoch 1
        _record(drawn[0], {1: 1.0}, family="vae"),  # another family
        _record(drawn[0], {1: 1.0}, metric="val_classifier_is"),  # another objective: not comparable
        _record(drawn[0], {1: 1.0}, status="failed"),
    ]
    study = optuna.create_study(direction="minimize")
    assert warm_start(study, SPACE.search, records, "dcgan", "val_classifier_fd") == 2
    done, stopped = study.trials
    assert done.state == optuna.trial.TrialState.COMPLETE and done.value == 8.0 and done.params == drawn[0]
    assert stopped.state == optuna.trial.TrialState.PRUNED and stopped.intermediate_values == {1: 12.0}
    assert stopped.params == drawn[1]
    # TPE draws the next trial of the same define-by-run space on top of them, as Ray's searcher does
    study.sampler = optuna.samplers.TPESampler(seed=0)
    trial = study.ask()
    SPACE.search(trial)
    assert set(trial.params) == set(drawn[0])


def test_a_run_the_space_cannot_draw_is_left_out_with_a_warning():
    drawn = sample_params(SPACE, 1)
    outside = _record({**drawn, "lr_ratio": 100.0}, {1: 5.0})  # gan_ttur draws lr_ratio in [1, 8]
    missing = _record({k: v for k, v in drawn.items() if k != "lr_ratio"}, {1: 5.0})
    study = optuna.create_study()
    with pytest.warns(UserWarning) as caught:
        assert warm_start(study, SPACE.search, [outside, missing], "dcgan", "val_classifier_fd") == 0
    said = [str(w.message) for w in caught]
    assert "lr_ratio=100.0 is outside" in said[0] and "it logged no lr_ratio" in said[1] and not study.trials


def _draw(study: optuna.Study, n: int) -> list[dict]:
    """``n`` trials of SPACE asked of ``study``'s sampler, each told a value; their params."""
    drawn = []
    for _ in range(n):
        trial = study.ask()
        SPACE.search(trial)
        study.tell(trial, 1.0)
        drawn.append(trial.params)
    return drawn


def test_a_warm_started_searcher_does_not_redraw_the_trials_it_starts_from():
    # 1. A first search, seed 42: TPE's random start-up phase draws a fixed sequence from its seed.
    first = _draw(optuna.create_study(sampler=optuna_sampler(None, 42)[0]), 3)
    records = [_record(p, {1: 5.0 + i}) for i, p in enumerate(first)]
    for i, r in enumerate(records):
        r["run_id"] = f"run-{i}"
    # 2. The same seed on a study holding those trials would draw the first one again (still start-up)...
    study = optuna.create_study(sampler=optuna_sampler(None, 42)[0])
    assert warm_start(study, SPACE.search, records, "dcgan", "val_classifier_fd") == 3
    assert [t.user_attrs[WARM_START_ATTR] for t in study.trials] == ["run-0", "run-1", "run-2"]
    assert _draw(study, 1) == first[:1]
    # 3. ...so a warm-started searcher's seed mixes in how many trials it starts from: new configs,
    #    the same ones for the same files, and a search that starts from nothing keeps its seed.
    seed = sampler_seed(42, 3)
    assert seed == sampler_seed(42, 3) and seed not in (42, 43, 45) and sampler_seed(42, 0) == 42
    fresh = optuna.create_study(sampler=optuna_sampler(None, seed)[0])
    warm_start(fresh, SPACE.search, records, "dcgan", "val_classifier_fd")
    assert all(p not in first for p in _draw(fresh, 3))
