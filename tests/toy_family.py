"""A toy model family, added the way a new family is: a config, a task and one register() call.

The DCGAN's nets under a new name, with one family-specific per-epoch metric (``toy_epochs``,
through the task's ``windowed`` hook), so tests can see the registry reach every layer.
"""

from __future__ import annotations

from typing import ClassVar

from common.trial.config import DCGANConfig
from common.trial.families import Family, register
from common.trial.tasks.dcgan import DCGANTask


class ToyConfig(DCGANConfig):
    family: ClassVar[str] = "toy"


class ToyTask(DCGANTask):
    def windowed(self, metrics, history):
        return {"toy_epochs": float(len(history.get("g_loss", [])) + 1)}


TOY = register(
    Family(
        "toy",
        ToyConfig,
        ToyTask,
        "Toy GAN",
        decodes=False,
        curve_metrics=("g_loss", "toy_epochs"),
        param_rows=(("Toy generator", "n_params_g", "—"),),
    )
)
