"""The Tune trainable of every model family: ``tune.with_parameters(trainable(family), ctx=..., fixed=...)``."""

from __future__ import annotations

from typing import Callable

from common.trial.contract import SweepContext
from common.trial.families import Family, register
from common.trial.loop import run_trial
from common.trial.records import run_label
from trainables import TuneSession


def trainable(family: Family) -> Callable[[dict, SweepContext, dict], None]:
    """Tune's function trainable for ``family``, named ``train_<family>`` (Tune names the trial
    folders after it). The record travels to the workers with the function and is registered
    there, so a family registered outside ``common/trial/families.py`` (the tests' toy) works too."""

    def train(config: dict, ctx: SweepContext, fixed: dict) -> None:
        """``config`` = the searcher's sample; ``fixed`` = space defaults + ``--set`` (wins)."""
        register(family)
        searched = {k: v for k, v in config.items() if k not in fixed}
        run_trial(family.config.from_dict({**config, **fixed}), ctx, TuneSession(run_label(searched)))

    train.__name__ = train.__qualname__ = f"train_{family.name}"
    return train
