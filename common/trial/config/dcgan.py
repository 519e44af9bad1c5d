"""The DCGAN's config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from common.trial.augment import parse_policy
from common.trial.config.base import ConfigError, TrialConfig, config_field, count_on_meta
from common.trial.models import Discriminator, Generator


@dataclass(frozen=True)
class DCGANConfig(TrialConfig):
    """DCGAN (the slides: z = 100, 40 epochs, non-saturating BCE, Adam beta1 = 0.5)."""

    family: ClassVar[str] = "dcgan"
    default_metric: ClassVar[str] = "val_classifier_fd"
    peak_rss_mb: ClassVar[int] = 3500  # measured 3,086, 3,228 in a Ray worker: the probe's 20k x 7,168 D features
    layout: ClassVar[tuple[str, ...]] = (
        *("latent_dim", "g_channels", "g_stage_mults", "g_kernel_size", "g_hidden"),
        *("d_channels", "d_stage_mults", "d_kernel_size", "d_hidden", "minibatch_disc", "minibatch_dim"),
    )
    max_epochs: int = config_field(40, lo=1, hi=10_000)
    probe_every: int = config_field(
        0,
        lo=0,
        doc="the D-feature linear probe every N epochs; 0 = only the best epoch's, after "
        "training (the default: about a minute per probe on a 2-core CPU, 7,168 features)",
    )
    latent_dim: int = config_field(100, lo=1, hi=4096)
    lr_g: float = config_field(2e-4, lo=0.0, lo_open=True, hi=1e4, doc="generator Adam lr; > 1 diverges")
    lr_ratio: float = config_field(1.0, lo=0.0, lo_open=True, hi=100.0, doc="TTUR: lr_D = lr_ratio * lr_g")
    beta1: float = config_field(0.5, lo=0.0, hi=0.999)
    beta2: float = config_field(0.999, lo=0.0, hi=0.9999)
    g_channels: int = config_field(128, lo=1, doc="c: the generator's 4x4 map width (the slides: 128-128-64)")
    g_stage_mults: str = config_field("1,1,0.5", doc="G's 4x4, 8x8 and 16x16 widths as multiples of g_channels")
    g_kernel_size: int = config_field(
        4, choices=(3, 4, 5), doc="k of G's transposed convs, stride 2; the slides give none"
    )
    g_hidden: int = config_field(384, lo=0, doc="generator hidden FC before the 4x4 map; 0 = none")
    d_channels: int = config_field(64, lo=1, doc="c: the discriminator's first conv width (the slides: 64-128-256)")
    d_stage_mults: str = config_field("1,2,4", doc="D's three conv widths as multiples of d_channels")
    d_kernel_size: int = config_field(4, choices=(3, 4, 5), doc="k of D's convs, stride 2; the slides give none")
    d_hidden: int = config_field(512, lo=0, doc="discriminator hidden FC before the logit; 0 = none")
    # Failure-mode mitigations (the slides, 'Failure Modes & Mitigations'); all off by default,
    # and off leaves the slides' computation bit-identical. TTUR is lr_ratio above.
    gan_loss: str = config_field(
        "bce",
        choices=("bce", "hinge", "wgan-gp"),
        doc="bce = D: BCE, G: non-saturating (seed); hinge (Miyato et al. 2018); "
        "wgan-gp = Wasserstein critic + gradient penalty (Gulrajani et al. 2017)",
    )
    gp_weight: float = config_field(
        10.0, lo=0.0, doc="wgan-gp only: lambda of the gradient penalty (ignored otherwise)"
    )
    n_critic: int = config_field(
        1,
        lo=1,
        hi=100,
        doc="D steps per G step (one train batch per D step); an epoch then makes len/batch_size/n_critic G steps",
    )
    label_smoothing: float = config_field(
        0.0,
        lo=0.0,
        hi=0.5,
        doc="one-sided label smoothing (Salimans et al. 2016): "
        "real target 1 - s in D's BCE loss; 0 = off; bce only; must be < 0.5",
    )
    spectral_norm: bool = config_field(
        False, doc="spectral normalisation (Miyato et al. 2018) on every conv and linear layer of D"
    )
    d_norm: str = config_field(
        "auto",
        choices=("auto", "batch", "none"),
        doc="BatchNorm in D's 2nd/3rd conv: batch | none; auto = none with gan_loss=wgan-gp "
        "(the penalty is per sample), batch otherwise (the slides; spectral_norm keeps it)",
    )
    minibatch_disc: int = config_field(
        0,
        lo=0,
        hi=1024,
        doc="minibatch discrimination (Salimans et al. 2016): number of kernels B before D's logit; 0 = off",
    )
    minibatch_dim: int = config_field(8, lo=1, hi=1024, doc="minibatch discrimination: kernel dimension C")
    # Levers beyond the slides; all off by default, off leaves the computation as it was.
    ema_decay: float = config_field(
        0.0,
        lo=0.0,
        hi=0.9999,
        doc="EMA of G's weights (Yazici et al. 2019) for every sample, "
        "score, figure and the exported model: an average of G's recent iterates is smoother "
        "than the last one; 0 = off, e.g. 0.999",
    )
    diffaug: str = config_field(
        "",
        doc="DiffAugment (Zhao et al. 2020) on real and fake images before D, comma-separated "
        "transforms color, translation, cutout (common.trial.augment): D cannot memorise a small train "
        "set; empty = off",
    )
    r1_weight: float = config_field(
        0.0,
        lo=0.0,
        doc="gamma of the R1 penalty (Mescheder et al. 2018), gamma/2 * "
        "E|grad D(x_real)|^2 added to D's loss: damps D's slope at the data; 0 = off; bce, hinge",
    )

    @property
    def lr_d(self) -> float:
        return self.lr_g * self.lr_ratio

    @property
    def d_batchnorm(self) -> bool:
        """Whether D has BatchNorm (``d_norm`` with ``auto`` resolved)."""
        if self.d_norm == "auto":
            return self.gan_loss != "wgan-gp"
        return self.d_norm == "batch"

    def param_counts(self) -> dict[str, int]:
        return count_on_meta(g=lambda: Generator.for_config(self), d=lambda: Discriminator.for_config(self))

    def _validate(self) -> None:
        self._check_mults("g_stage_mults", "d_stage_mults")
        if self.label_smoothing >= 0.5:
            raise ConfigError(
                f"dcgan config key label_smoothing={self.label_smoothing} is out of range: "
                "it must be < 0.5 (a real target of 0.5 or less tells D nothing)"
            )
        if self.minibatch_disc > 0 and self.gan_loss == "wgan-gp":
            raise ConfigError(
                f"minibatch_disc={self.minibatch_disc} with gan_loss='wgan-gp': minibatch discrimination "
                "couples the samples of a batch, so the gradient penalty is no longer per sample; "
                "set minibatch_disc=0 or use another gan_loss"
            )
        try:
            parse_policy(self.diffaug)
        except ValueError as e:
            raise ConfigError(f"dcgan config key diffaug={self.diffaug!r}: {e}") from None
        if self.r1_weight > 0 and self.gan_loss == "wgan-gp":
            raise ConfigError(
                f"r1_weight={self.r1_weight} with gan_loss='wgan-gp', which has its own gradient "
                "penalty (gp_weight); set r1_weight=0 or use bce or hinge"
            )
        if self.label_smoothing > 0 and self.gan_loss != "bce":
            raise ConfigError(
                f"label_smoothing={self.label_smoothing} applies only to gan_loss=bce "
                f"(got gan_loss={self.gan_loss!r}); set label_smoothing=0"
            )
        super()._validate()
