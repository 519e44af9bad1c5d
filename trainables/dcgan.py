"""Tune trainable for the DCGAN: ``tune.with_parameters(train_dcgan, ctx=..., fixed=...)``."""
from common.trial.config import DCGANConfig
from common.trial.loop import SweepContext, run_trial
from trainables import TuneSession


def train_dcgan(config: dict, ctx: SweepContext, fixed: dict) -> None:
    """``config`` = the searcher's sample; ``fixed`` = space defaults + ``--set`` (wins)."""
    run_trial(DCGANConfig.from_dict({**config, **fixed}), ctx, TuneSession())
