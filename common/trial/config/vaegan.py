"""The VAE-GAN's config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from common.trial.config.base import ConfigError, TrialConfig, config_field


@dataclass(frozen=True)
class VAEGANConfig(TrialConfig):
    """VAE-GAN (Larsen et al. 2016): the Conv-VAE's decoder is the generator and a DCGAN
    discriminator D both judges real images, reconstructions and prior samples and provides
    the reconstruction metric (squared error between D's layer-``feature_layer`` activations
    of x and x_tilde, the paper's Dis_l likelihood). Per batch (common/trial/tasks/vaegan.py)::

        recon    = recon_weight * ||D_l(x_tilde) - D_l(x)||^2 + pixel_weight * ||x_tilde - x||^2
        encoder: beta * KL + recon
        decoder: gamma * recon + BCE(D(x_tilde), 1) + BCE(D(x_p), 1)     (non-saturating)
        D:       BCE(D(x), 1) + BCE(D(x_tilde), 0) + BCE(D(x_p), 0)

    recon and KL are per-image sums (nats/image, as in the VAE); the BCE terms are batch means.
    """

    family: ClassVar[str] = "vaegan"
    default_metric: ClassVar[str] = "val_classifier_fd"
    peak_rss_mb: ClassVar[int] = 2000  # measured 1,569 (bench/memory.py)
    latent_dim: int = config_field(64, lo=1, hi=4096)
    base_channels: int = config_field(32, lo=1, doc="c: the first encoder stage's width (as vae)")
    stage_mults: str = config_field("1,2,4", doc="the encoder widths as multiples of base_channels (as vae)")
    kernel_size: int = config_field(4, choices=(3, 4, 5), doc="k of the VAE's (transposed) convs (as vae)")
    hidden_dim: int = config_field(
        256, lo=0, doc="hidden FC between the 4x4 feature map and the latent; 0 = none (as vae)"
    )
    d_channels: int = config_field(64, lo=1, doc="discriminator widths c, 2c, 4c (as dcgan)")
    d_hidden: int = config_field(512, lo=0, doc="discriminator hidden FC before the logit; 0 = none (as dcgan)")
    lr: float = config_field(
        3e-4, lo=0.0, lo_open=True, hi=1.0, doc="Adam learning rate of the encoder and the decoder"
    )
    lr_ratio: float = config_field(1.0, lo=0.0, lo_open=True, hi=100.0, doc="TTUR: lr_D = lr_ratio * lr")
    beta1: float = config_field(0.5, lo=0.0, hi=0.999, doc="Adam beta1 of all three optimizers")
    beta2: float = config_field(0.999, lo=0.0, hi=0.9999, doc="Adam beta2 of all three optimizers")
    beta: float = config_field(1.0, lo=0.0, doc="KL weight in the encoder loss (constant)")
    feature_layer: int = config_field(
        2,
        lo=0,
        hi=3,
        doc="index into Discriminator.features for the reconstruction "
        "metric: 0 = (c,16,16), 1 = (2c,8,8), 2 = (4c,4,4), 3 = the hidden FC (needs d_hidden > 0)",
    )
    recon_weight: float = config_field(
        1.0,
        lo=0.0,
        doc="weight of the feature-matching term (squared error summed over "
        "D_l's elements per image: a unit-variance Gaussian Dis_l likelihood up to 1/2)",
    )
    pixel_weight: float = config_field(
        0.0,
        lo=0.0,
        doc="weight of the pixel squared error summed over 3x32x32 (the VAE's "
        "recon) added to the reconstruction term; 0 = feature matching only (the paper)",
    )
    gamma: float = config_field(
        1e-2,
        lo=0.0,
        doc="Larsen's gamma: weight of the reconstruction term in the decoder loss "
        "against the GAN term (weight 1); small = the decoder is mostly a GAN generator",
    )

    @property
    def lr_d(self) -> float:
        return self.lr * self.lr_ratio

    def _validate(self) -> None:
        self._check_mults("stage_mults")
        super()._validate()
        if self.feature_layer == 3 and self.d_hidden == 0:
            raise ConfigError(
                "vaegan config key feature_layer=3 names D's hidden FC, but d_hidden=0 removes it; "
                "set feature_layer to 0, 1 or 2, or d_hidden > 0"
            )
        if self.recon_weight == 0 and self.pixel_weight == 0:
            raise ConfigError(
                "vaegan config keys recon_weight=0 and pixel_weight=0 leave no reconstruction term "
                "(the encoder would learn only the KL); set one of them > 0"
            )
        if self.precision != "fp32":
            raise ConfigError(
                f"vaegan config key precision={self.precision!r} is not supported (vae and dcgan "
                "only); use precision=fp32"
            )
