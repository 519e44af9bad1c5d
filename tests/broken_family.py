"""A family whose trials raise in their first epoch when their seed is odd: a sweep of it can have
all, some or none of its trials fail. Registered on import; ``unregister()`` takes it out again."""

from __future__ import annotations

from typing import ClassVar

from common.trial.config import DCGANConfig
from common.trial.families import FAMILIES, Family, register
from common.trial.tasks.dcgan import DCGANTask


class BrokenConfig(DCGANConfig):
    family: ClassVar[str] = "broken"


class BrokenTask(DCGANTask):
    def train_epoch(self, epoch):
        if self.cfg.seed % 2:
            raise RuntimeError(f"the broken family refuses odd seeds (seed {self.cfg.seed})\nsecond line")
        return super().train_epoch(epoch)


BROKEN = register(Family("broken", BrokenConfig, BrokenTask, "Broken GAN", decodes=False, curve_metrics=("g_loss",)))


def unregister() -> None:
    FAMILIES.pop("broken", None)
