"""``--warm-start DIR``: a new search continues where earlier ones left off, from their run files alone.

A search that outlives one sitting resumes with ``--resume`` while its machine keeps Tune's state
and the Optuna study. Where the machine was not kept, the exported run files
(``common.sweep.export``) are all that is left: each finished trial of the searched family, on the
same objective, goes into the new sweep's Optuna study before its first trial, as Ray's
OptunaSearch would have told it at the trial's end (common.sweep.tuning): a completed trial with
its last epoch's value, a trial ASHA stopped as PRUNED with its value per epoch. TPE then draws
the new trials knowing the old ones; ASHA's rungs start afresh (they compare running trials).
The new searcher's seed mixes in how many trials it starts from (``sampler_seed``): a seeded
sampler's random start-up phase draws the same sequence every time, so with the old seed it would
redraw the old trials' configs first.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import optuna

from common.base.errors import UserError
from common.base.objective import Objective
from common.sweep.export import FINISHED, load_records

WARM_START_ATTR = "warm_start.run_id"  # an Optuna trial's user attr: the run file it came from


class WarmStartError(UserError):
    """``--warm-start`` names no run files, or a space that does not search; the message says how to fix it."""


def check_warm_start(folder: str, searches: bool, objectives: int) -> None:
    """Before anything starts: the folder holds run files, and the space has one objective's searcher to seed."""
    if not searches:
        raise WarmStartError("--warm-start seeds a search, and this space has fixed runs only; drop --warm-start")
    if objectives > 1:
        raise WarmStartError("--warm-start seeds a single-objective search, and this space has several; drop it")
    if not Path(folder).is_dir() or not any(Path(folder).rglob("*.json")):
        raise WarmStartError(
            f"--warm-start {folder}: no run files there; pass a folder that bench/export_runs.py or --export wrote"
        )


def warm_start(study: optuna.Study, search: Callable | Mapping, records: list[dict], family: str, metric: str) -> int:
    """Add each finished ``family`` trial of ``records`` selected on ``metric`` to ``study``, as its
    searcher saw it; a record the space cannot draw (another range, another choice) is skipped
    with a warning. Returns the number of trials added."""
    added = 0
    for r in records:
        curve = {int(e): v for e, v in r["objective"]["per_epoch"].items()}
        if r["family"] != family or r["status"] not in FINISHED or r["objective"]["metric"] != metric or not curve:
            continue
        try:
            params, distributions = _replay(search, r["params"])
        except ValueError as e:
            warnings.warn(f"--warm-start: run {r['run_id'][:8]} left out: {e}")
            continue
        done = r["status"] == "completed"
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                value=curve[max(curve)] if done else None,
                intermediate_values=curve,
                state=optuna.trial.TrialState.COMPLETE if done else optuna.trial.TrialState.PRUNED,
                user_attrs={WARM_START_ATTR: r["run_id"]},
            )
        )
        added += 1
    return added


def sampler_seed(seed: int, warm: int) -> int:
    """The searcher's seed: ``seed`` itself, or for a study that starts from ``warm`` trials, one mixed
    with their number (the same files give the same draws; the old seed would redraw the old configs)."""
    return seed if warm == 0 else int(np.random.SeedSequence([seed, warm]).generate_state(1)[0])


def _replay(search: Callable | Mapping, logged: dict[str, str]) -> tuple[dict[str, Any], dict]:
    """(the searched params of a run, typed, and their distributions): the space asked again, each
    answer read from the run's logged params (MLflow's strings)."""
    trial = _Replay(logged)
    if callable(search):
        search(trial)
    else:
        for name, dist in search.items():
            trial.answer(name, dist)
    return trial.params, trial.distributions


class _Replay:
    """Stands in for an ``optuna.Trial`` inside a space's ``search(trial)``: each ``suggest_*`` returns
    the logged value of that name, checked against what the space would draw."""

    def __init__(self, logged: dict[str, str]):
        self.logged, self.params, self.distributions = logged, {}, {}

    def suggest_float(self, name, low, high, *, step=None, log=False):
        return self.answer(name, optuna.distributions.FloatDistribution(low, high, step=step, log=log))

    def suggest_int(self, name, low, high, *, step=1, log=False):
        return self.answer(name, optuna.distributions.IntDistribution(low, high, step=step, log=log))

    def suggest_categorical(self, name, choices):
        return self.answer(name, optuna.distributions.CategoricalDistribution(choices))

    def answer(self, name: str, dist) -> Any:
        if name not in self.logged:
            raise ValueError(f"it logged no {name}")
        text = self.logged[name]
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            found = [c for c in dist.choices if str(c) == text]
            inside, value = bool(found), found[0] if found else text
        else:
            value = (int if isinstance(dist, optuna.distributions.IntDistribution) else float)(float(text))
            inside = dist.low <= value <= dist.high
        if not inside:
            raise ValueError(f"{name}={text} is outside this space's {dist}")
        self.params[name], self.distributions[name] = value, dist
        return value


def seed_study(
    study: tuple[str, str], search: Callable | Mapping, folder: str, family: str, objective: Objective
) -> int:
    """Create the sweep's study of ``family`` (``study``: its RDB storage URL and name; Ray's
    OptunaSearch then loads it by name) holding the finished trials of the run files under
    ``folder``; the number added."""
    from common.sweep.studies import ResilientRDBStorage  # here: plan() checks --warm-start before MLflow loads

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = ResilientRDBStorage(study[0])
    created = optuna.create_study(
        storage=storage, study_name=study[1], direction=objective.direction, load_if_exists=True
    )
    return warm_start(created, search, load_records(folder), family, objective.metric)


def warm_started(study: tuple[str, str]) -> int:
    """How many trials of a resumed sweep's study (``study``: its RDB storage URL and name) came
    from run files; 0 when the study does not exist (its searcher had not started)."""
    from common.sweep.studies import ResilientRDBStorage

    try:
        loaded = optuna.load_study(study_name=study[1], storage=ResilientRDBStorage(study[0]))
    except KeyError:
        return 0
    return sum(WARM_START_ATTR in t.user_attrs for t in loaded.trials)
