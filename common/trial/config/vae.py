"""The Conv-VAE's config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from common.trial.config.base import TrialConfig, config_field, count_on_meta
from common.trial.models import ConvVAE


@dataclass(frozen=True)
class VAEConfig(TrialConfig):
    """Conv-VAE (the slides: latent 64, 20 epochs, L = MSE + beta*KL)."""

    family: ClassVar[str] = "vae"
    default_metric: ClassVar[str] = "val_bpd"
    peak_rss_mb: ClassVar[int] = 1800  # measured 1,420 (bench/memory.py), 1,584 in a Ray worker
    layout: ClassVar[tuple[str, ...]] = ("latent_dim", "base_channels", "stage_mults", "kernel_size", "hidden_dim")
    precision: str = config_field(
        "bf16",
        choices=("fp32", "bf16"),
        doc="bf16 by default: faster training on CPU with "
        "the ELBO within the seed-to-seed spread (bench/precision.py); fp32 = the slides' numerics",
    )
    lr: float = config_field(
        1e-3, lo=0.0, lo_open=True, hi=1e4, doc="Adam lr; > 1 diverges, allowed so tests can force it"
    )
    # Levers beyond the slides; the defaults are the slides' (Adam's own betas, a constant lr).
    beta1: float = config_field(0.9, lo=0.0, hi=0.999, doc="Adam beta1")
    beta2: float = config_field(0.999, lo=0.0, hi=0.9999, doc="Adam beta2")
    lr_schedule: str = config_field(
        "constant",
        choices=("constant", "cosine"),
        doc="per step: cosine = decay to 0 over the trial's steps (common.trial.losses.lr_factor), "
        "a large lr early and a fine one at the end within a fixed epoch budget",
    )
    lr_warmup_epochs: float = config_field(
        0.0,
        lo=0.0,
        doc="linear lr warm-up from 0 over this many epochs (fractions "
        "allowed): Adam's first steps, with poor moment estimates, stay small; 0 = off",
    )
    latent_dim: int = config_field(64, lo=1, hi=4096)
    base_channels: int = config_field(32, lo=1, doc="c: the first encoder stage's width (the slides: 32-64-128)")
    stage_mults: str = config_field(
        "1,2,4", doc="the three encoder widths as multiples of base_channels, comma-separated; the decoder mirrors them"
    )
    kernel_size: int = config_field(
        4, choices=(3, 4, 5), doc="k of every (transposed) conv, stride 2; the slides give none"
    )
    hidden_dim: int = config_field(256, lo=0, doc="hidden FC between the 4x4 feature map and the latent; 0 = none")
    beta: float = config_field(1.0, lo=0.0, doc="KL weight reached by the schedule (beta-VAE when != 1)")
    likelihood: str = config_field(
        "mse",
        choices=("mse", "logistic"),
        doc="decoder likelihood: mse = the slides' squared error summed over pixels (a Gaussian "
        "with sigma^2 = 1/2, constants dropped); logistic = a discretised logistic with a learned "
        "per-channel scale (PixelCNN++), so beta = 1 trains a true ELBO on the 8-bit data",
    )
    beta_schedule: str = config_field("constant", choices=("constant", "linear", "cyclical"))
    warmup_epochs: int = config_field(10, lo=1, doc="linear schedule: epochs to ramp beta from 0")
    cycles: int = config_field(4, lo=1, doc="cyclical schedule: number of cycles over max_epochs")
    ramp_fraction: float = config_field(
        0.5,
        lo=0.0,
        lo_open=True,
        hi=1.0,
        doc="cyclical schedule: fraction of each cycle spent ramping beta from 0 (the slides: 0.5)",
    )
    # Failure-mode mitigations (the slides, 'Failure Modes & Mitigations'); all off by default.
    free_bits: float = config_field(
        0.0,
        lo=0.0,
        doc="free bits (Kingma et al. 2016): training KL is "
        "sum_d max(free_bits, batch-mean KL_d), nats per latent dim; 0 = off. Logged KL/ELBO stay true",
    )
    perceptual_weight: float = config_field(
        0.0,
        lo=0.0,
        doc="lambda in L = MSE + lambda*L_perc + beta*KL; 0 = off. "
        "L_perc is a per-image mean over features, MSE a sum over 3072 pixels",
    )
    perceptual_net: str = config_field(
        "randconv",
        choices=("randconv", "vgg16"),
        doc="perceptual-loss backbone (common/trial/perceptual.py); randconv = val_randconv_fd's features",
    )
    perceptual_weights: str = config_field(
        "",
        doc="vgg16 only: local path to torchvision's vgg16-397923af.pth; empty = the torch hub cache (never downloads)",
    )

    def _validate(self) -> None:
        self._check_mults("stage_mults")
        super()._validate()

    def param_counts(self) -> dict[str, int]:
        return count_on_meta(vae=lambda: ConvVAE.for_config(self))
