"""Tune trainable for the Conv-VAE: ``tune.with_parameters(train_vae, ctx=..., fixed=...)``."""
from common.trial.config import VAEConfig
from common.trial.loop import SweepContext, run_trial
from trainables import TuneSession


def train_vae(config: dict, ctx: SweepContext, fixed: dict) -> None:
    """``config`` = the searcher's sample; ``fixed`` = space defaults + ``--set`` (wins)."""
    run_trial(VAEConfig.from_dict({**config, **fixed}), ctx, TuneSession())
