"""Tune trainable for the VAE-GAN: ``tune.with_parameters(train_vaegan, ctx=..., fixed=...)``."""
from common.trial.config import VAEGANConfig
from common.trial.loop import SweepContext, run_trial
from trainables import TuneSession


def train_vaegan(config: dict, ctx: SweepContext, fixed: dict) -> None:
    """``config`` = the searcher's sample; ``fixed`` = space defaults + ``--set`` (wins)."""
    run_trial(VAEGANConfig.from_dict({**config, **fixed}), ctx, TuneSession())
