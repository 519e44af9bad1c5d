"""The model families, one record each. Everything that names a family is built from ``FAMILIES``:
config parsing, the trial loop, the Tune trainable, the final stage and the report.

Adding a family touches one place: a module with its config class (a ``TrialConfig`` subclass
whose ``family`` default is the new name), its task (a ``Task`` subclass: one epoch, one
evaluation, its figures, ``build_sampler``) and one ``register(Family(...))`` call, imported
below so the CLI knows it. ``tests/trial/test_families.py`` does exactly that with a toy family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from common.base import slides
from common.base.data import Dataset, load_dataset
from common.base.device import no_tf32, seed_everything
from common.metrics.evaluation import FINAL_METRICS, Evaluator, reconstructions
from common.metrics.prior import code_of
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
    raise ConfigError(f"model family {name!r} breaks the family contract: {what}; see docs/own-model.md")


def get(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown model family {name!r}; choose one of {', '.join(FAMILIES)}") from None


def config_class(family: str) -> type[TrialConfig]:
    """The config class of ``family`` (the registry); ConfigError if unknown."""
    return get(family).config


def for_family(values: Mapping[str, Any], family: str) -> dict[str, Any]:
    """Resolve ``--set`` keys for one family: ``key`` applies to all, ``family.key`` to one.

    A sweep with both families (the slides preset) can then set e.g. ``dcgan.g_channels=32``.
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        scope, dot, name = key.rpartition(".")
        if not dot:
            out[key] = value
        elif scope not in FAMILIES:
            raise ConfigError(f"config key {key!r}: prefix {scope!r} is not a model family ({', '.join(FAMILIES)})")
        elif scope == family:
            out[name] = value
    return out


def from_checkpoint(config: dict, models: dict) -> nn.Module:
    """Rebuild a trial's generative model from its saved config and weights.

    config: the trial config dict; models: name -> state_dict, as in best.pt's ``model``
    (``vae`` [+ ``d``] or ``g`` + ``d``). Returns the family task's ``build_sampler`` (the ConvVAE
    for vae and vaegan, whose decoder is the generator; the Generator for dcgan) in eval mode on the
    CPU; each has ``sample(n, device)`` -> (n,3,32,32) in [-1, 1].
    """
    family = get(config["family"])
    return family.task.build_sampler(family.config.from_dict(config), models).eval()


def evaluate_checkpoint(
    ckpt: dict,
    data: Dataset,
    *,
    n: int,
    metrics: Sequence[str] = FINAL_METRICS,
    evaluator: Evaluator | None = None,
    **evaluator_kwargs,
) -> dict[str, float]:
    """The full protocol on one checkpoint (a best.pt dict: ``config``, ``model``).

    Samples: n generated images vs every test image. VAE / VAE-GAN also reconstructions
    (``recon_<metric>``) of n validation images of the checkpoint's own split (never trained on,
    and not the reference images, whose reconstructions would match the reference too well) vs
    the same test images.
    """
    ev = evaluator or Evaluator(data, reference="test", **evaluator_kwargs)
    model = from_checkpoint(ckpt["config"], ckpt["model"]).to(ev.device)
    out = ev(model, metrics, n)
    if get(ckpt["config"]["family"]).decodes:
        _, val = config_class(ckpt["config"]["family"]).from_dict(ckpt["config"]).split(len(data.train_x))
        # A seeded draw, not val[:n]: an image-folder tree stores its images class by class.
        pick = val[torch.randperm(len(val), generator=torch.Generator().manual_seed(ev.seed))[:n]]
        out.update({f"recon_{k}": v for k, v in ev(reconstructions(model, data.train_x[pick]), metrics).items()})
    return out


# Test metrics that are functions of the weights and the fixed z alone (the samples' classes under
# the domain classifier): a fresh scoring of best.pt must give the logged values, whatever the data.
SAMPLE_ONLY = ("test_class_kl", "test_class_coverage", "test_classifier_is")


def rescore_samples(ckpt: dict, data: Dataset, classifier: dict | None) -> dict[str, float]:
    """best.pt's weights (``ckpt``: ``config``, ``model``) scored again on the CPU, as the trial
    scored them on the test split: the ``SAMPLE_ONLY`` metrics its family computes."""
    cfg = config_class(ckpt["config"]["family"]).from_dict(ckpt["config"])
    task = get(cfg.family).task(cfg, data, torch.device("cpu"), seed_everything(cfg.seed), classifier=classifier)
    with no_tf32():
        scores = task.evaluate_exported(ckpt["model"], "test", probe=False)
    return {k: v for k, v in scores.items() if k in SAMPLE_ONLY}


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


def _millions(key: str) -> str:
    """The slides' parameter count of a net as they print it: 1.38M."""
    return f"{slides.PARAMS[key] / 1e6:.2f}M"


register(
    Family(
        "vae",
        VAEConfig,
        VAETask,
        "VAE",
        decodes=True,
        curve_metrics=("val_bpd", "val_mse_kl", "val_kl", "train_loss", "val_probe_acc", "val_classifier_fd"),
        param_rows=(("VAE", "n_params_vae", _millions("n_params_vae")),),
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
        param_rows=(
            ("DCGAN generator", "n_params_g", _millions("n_params_g")),
            ("DCGAN discriminator", "n_params_d", _millions("n_params_d")),
        ),
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
