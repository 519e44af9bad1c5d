"""Validated trial configs, one dataclass per model family (pythae-style), on one base.

A field name is the sweep key, the ``--set`` key and the MLflow param name: one name for one
thing. ``from_dict`` rejects unknown keys, wrong types, NaN and out-of-range values with a
``ConfigError`` whose message says what is wrong and how to fix it.

    base.py    TrialConfig (the fields every family shares), ConfigError, parsing and ranges
    vae.py     VAEConfig      dcgan.py   DCGANConfig      vaegan.py  VAEGANConfig
"""

from common.trial.config.base import ConfigError, TrialConfig, check_objective
from common.trial.config.dcgan import DCGANConfig
from common.trial.config.vae import VAEConfig
from common.trial.config.vaegan import VAEGANConfig

__all__ = ["ConfigError", "TrialConfig", "VAEConfig", "DCGANConfig", "VAEGANConfig", "check_objective"]
