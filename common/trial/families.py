"""The model families, one record each. Everything that names a family is built from ``FAMILIES``:
config parsing, the trial loop, the Tune trainable, the final stage and the report.

Adding a family touches one place: a module with its config class (a ``TrialConfig`` subclass
whose ``family`` default is the new name), its task (a ``Task`` subclass: one epoch, one
evaluation, its figures, ``build_sampler``) and one ``register(Family(...))`` call, imported
below so the CLI knows it. ``tests/trial/test_families.py`` does exactly that with a toy family.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from common.trial.config import ConfigError, DCGANConfig, TrialConfig, VAEConfig, VAEGANConfig
from common.trial.tasks.base import Task
from common.trial.tasks.dcgan import DCGANTask
from common.trial.tasks.vae import VAETask
from common.trial.tasks.vaegan import VAEGANTask


@dataclass(frozen=True)
class Family:
    """One model family. ``param_rows``: (report label, its ``n_params_*`` metric, the slides'
    published count or "—") for the report's model table."""

    name: str
    config: type[TrialConfig]
    task: type[Task]
    label: str  # the report's name for it
    curve_metrics: tuple[str, ...]  # the report's training-curve panels for its best trial
    decodes: bool  # it encodes images: reconstructions are scored, the probe reads its mean μ
    param_rows: tuple[tuple[str, str, str], ...] = ()


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` (once; a module imported twice registers the same record again, harmlessly)."""
    if family.config().family != family.name:
        raise ValueError(f"{family.config.__name__}.family is {family.config().family!r}, not {family.name!r}")
    FAMILIES[family.name] = family
    return family


def get(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown model family {name!r}; choose one of {', '.join(FAMILIES)}") from None


class Field(Mapping):
    """A live, read-only ``name -> getattr(family, attr)`` view of the registry (so a family
    registered after import, like the tests' toy family, shows up too)."""

    def __init__(self, attr: str):
        self.attr = attr

    def __getitem__(self, name: str):
        return getattr(FAMILIES[name], self.attr)

    def __iter__(self) -> Iterator[str]:
        return iter(FAMILIES)

    def __len__(self) -> int:
        return len(FAMILIES)


register(
    Family(
        "vae",
        VAEConfig,
        VAETask,
        "VAE",
        decodes=True,
        curve_metrics=("val_bpd", "val_mse_kl", "val_kl", "train_loss", "val_probe_acc", "val_classifier_fd"),
        param_rows=(("VAE", "n_params_vae", "1.38M"),),
    )
)
register(
    Family(
        "dcgan",
        DCGANConfig,
        DCGANTask,
        "DCGAN",
        decodes=False,
        curve_metrics=("g_loss", "d_loss", "loss_ratio", "d_real", "val_class_coverage", "val_classifier_fd"),
        param_rows=(("DCGAN generator", "n_params_g", "1.24M"), ("DCGAN discriminator", "n_params_d", "2.76M")),
    )
)
register(
    Family(
        "vaegan",
        VAEGANConfig,
        VAEGANTask,
        "VAE-GAN",
        decodes=True,
        curve_metrics=("val_mse_kl", "val_kl", "g_loss", "d_loss", "val_probe_acc", "val_classifier_fd"),
        param_rows=(("VAE-GAN encoder+decoder", "n_params_vae", "—"), ("VAE-GAN discriminator", "n_params_d", "—")),
    )
)
