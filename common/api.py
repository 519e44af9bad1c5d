"""The public API of a model-family plugin: everything a family written outside the package imports.

A family is a config (a ``TrialConfig`` subclass whose ``family`` is its name and whose fields are
declared with ``config_field``), a task (a ``Task`` subclass: one training epoch, its evaluation,
figures, ``export_state`` and ``build_sampler``) and one ``register(Family(...))`` call. The
sampler ``build_sampler`` returns keeps the model protocol (``common.metrics.prior``):
``sample(n, device)``, and for a family that decodes ``encode(x) -> code`` and ``decode(code)``.
``register`` checks the classes when it runs; loading a plugin (``common.trial.plugins``) also
builds the family on a tiny input, so a broken contract fails before any training. docs/own-model.md
and ``examples/wae_mmd.py`` show a whole family.
"""

from common.metrics.prior import PriorSampler, code_of
from common.trial.config.base import ConfigError, TrialConfig, config_field
from common.trial.families import Family, register
from common.trial.tasks.base import Task

__all__ = ["ConfigError", "Family", "PriorSampler", "Task", "TrialConfig", "code_of", "config_field", "register"]
