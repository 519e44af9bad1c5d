"""The model families, one record each. Everything that names a family is built from ``FAMILIES``:
config parsing, the trial loop, the Tune trainable, the final stage and the report.

Adding a family touches one place: a module with its config class (a ``TrialConfig`` subclass
whose ``family`` default is the new name), its task (a ``Task`` subclass: one epoch, one
evaluation, its figures, ``build_sampler``) and one ``register(Family(...))`` call, imported
below so the CLI knows it. ``tests/trial/test_families.py`` does exactly that with a toy family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from common import slides
from common.trial.claims import GAN_GOALS, GAN_MITIGATIONS, VAE_GOALS, VAE_MITIGATIONS, Goal, Mitigation
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
    decodes: bool  # it encodes images (encode -> code, decode): reconstructions are scored, the probe reads its code
    param_rows: tuple[tuple[str, str, str], ...] = ()
    colour: str = "C7"  # its matplotlib colour in the report's figures
    probe_on: str = "its features"  # what its linear probe reads, in the report's words
    # The slides' claims (common.trial.claims): the mitigations the report measures, the goals of
    # its budget table, and the epochs the slides trained it for (None: no part in the budget table).
    mitigations: tuple[Mitigation, ...] = ()
    goals: tuple[Goal, ...] = ()
    budget_epochs: int | None = None
    # Config overrides that shrink its nets to seconds a step on a CPU: the contract check at
    # registration, the tests and the benches' rehearsals build it this way.
    tiny: Mapping[str, Any] = dataclasses.field(default_factory=dict)


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` (once; a module imported twice registers the same record again, harmlessly).
    ConfigError, naming what to fix, unless its config and task are the right kinds of class."""
    if not (isinstance(family.config, type) and issubclass(family.config, TrialConfig)):
        _broken(family.name, f"config {family.config!r} is not a TrialConfig subclass")
    if not (isinstance(family.task, type) and issubclass(family.task, Task)):
        _broken(family.name, f"task {family.task!r} is not a Task subclass")
    if undeclared := [k for k, v in vars(family.config).items() if isinstance(v, dataclasses.Field)]:
        _broken(
            family.name,
            f"{family.config.__name__} declares {', '.join(undeclared)} but is no dataclass; "
            "decorate it with @dataclass(frozen=True)",
        )
    if family.config.family != family.name:
        _broken(family.name, f"{family.config.__name__}.family is {family.config.family!r}, not {family.name!r}")
    if not family.config.default_metric.startswith("val_"):
        _broken(family.name, f"its objective {family.config.default_metric!r} must be a validation metric (val_*)")
    FAMILIES[family.name] = family
    return family


def check_family(family: Family) -> None:
    """The contract on a tiny input, before any training: the task builds on synthetic data, its
    sampler draws (2, 3, 32, 32) images from ``export_state``'s weights and, for a family that
    decodes, ``decode(code_of(encode(x)))`` has x's shape. ConfigError naming what broke."""
    import torch

    from common.trial.data import load_dataset
    from common.trial.device import seed_everything
    from common.trial.models.prior import code_of

    if family.name in _CHECKED:
        return
    try:
        cfg = family.config.from_dict({**family.tiny, "data": "synthetic", "val_size": 64, "eval_samples": 64})
        task = family.task(cfg, load_dataset("synthetic"), torch.device("cpu"), seed_everything(0))
        sampler = family.task.build_sampler(cfg, task.export_state()).eval()
        with torch.no_grad():
            images = sampler.sample(2, "cpu")
            x = torch.zeros(2, 3, 32, 32)
            out = sampler.decode(code_of(sampler.encode(x))) if family.decodes else images
    except Exception as exc:
        _broken(family.name, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    for what, t in (("sample(2)", images), ("decode(code_of(encode(x)))", out)):
        if tuple(t.shape) != (2, 3, 32, 32):
            _broken(family.name, f"{what} gave shape {tuple(t.shape)}, not (2, 3, 32, 32)")
    _CHECKED.add(family.name)


_CHECKED: set[str] = set()


def _broken(name: str, what: str) -> None:
    raise ConfigError(f"model family {name!r} breaks the family contract: {what}; see 'Your own model' in the README")


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
        colour="C0",
        probe_on="μ, the posterior mean",
        mitigations=VAE_MITIGATIONS,
        goals=VAE_GOALS,
        budget_epochs=slides.VAE_EPOCHS,
        tiny={"latent_dim": 8, "base_channels": 4, "hidden_dim": 0},
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
        colour="C3",
        probe_on="D's conv features pooled to 4x4 per layer (Radford et al. 2016)",
        mitigations=GAN_MITIGATIONS,
        goals=GAN_GOALS,
        budget_epochs=slides.GAN_EPOCHS,
        tiny={"latent_dim": 8, "g_channels": 8, "g_hidden": 0, "d_channels": 4, "d_hidden": 0},
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
        colour="C2",
        probe_on="μ, the posterior mean",
        tiny={"latent_dim": 8, "base_channels": 4, "hidden_dim": 0, "d_channels": 4, "d_hidden": 0},
    )
)
