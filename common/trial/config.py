"""Validated trial configs, one dataclass per model family.

A field name here is the sweep key, the ``--set`` key and the MLflow param name: one name
for one thing. ``from_dict`` rejects unknown keys, wrong types, NaN and out-of-range values
with a ``ConfigError`` whose message says what is wrong and how to fix it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from common.errors import UserError
from common.trial.augment import parse_policy

if TYPE_CHECKING:
    import torch


class ConfigError(UserError):
    """Bad user input: the CLI prints the message on one line and exits 2."""


def _f(default, *, lo=None, hi=None, lo_open=False, choices=None, doc=""):
    """A dataclass field carrying its valid range (``lo``/``hi`` inclusive unless ``lo_open``)."""
    return field(default=default, metadata=dict(lo=lo, hi=hi, lo_open=lo_open, choices=choices, doc=doc))


CUDA_CONTEXT_MB = 600  # what a CUDA process holds before its first tensor (context, cuBLAS/cuDNN handles)
SYNTHETIC_RSS_MB = 1600  # any family on synthetic data (768 images): measured 1,164-1,326


@dataclass(frozen=True)
class TrialConfig:
    """Fields every family shares: data, budget, seed, device."""

    family: ClassVar[str] = ""
    default_metric: ClassVar[str] = ""  # the objective when a space file names none (fixed runs)
    # Peak RSS of one trial at the defaults on real CIFAR-10 (10k train subset, 10k test, the
    # end-of-trial probe included) in a Ray worker, MiB, rounded up: what a trial reserves from
    # Ray's ``memory`` resource unless told otherwise (BENCHMARKS.md, "Memory per trial").
    peak_rss_mb: ClassVar[int] = 0
    seed: int = _f(42, lo=0, doc="global seed: same config + seed => same metrics on CPU")
    data: str = _f(
        "cifar10", doc="cifar10 | synthetic | path to cifar-10-batches-py, an image-folder tree or its .tar.gz"
    )
    train_subset: int = _f(10_000, lo=1, doc="seeded subset of the training split (the seed used 10k)")
    val_size: int = _f(
        5_000,
        lo=16,
        doc="validation images, drawn (val_seed) from the train images outside the "
        "train subset (held out of it when it takes the whole split); every selection reads them",
    )
    val_seed: int = _f(0, lo=0, doc="seed of the validation draw (common.trial.data.split_indices)")
    batch_size: int = _f(128, lo=1, hi=8192)
    max_epochs: int = _f(20, lo=1, hi=10_000)
    probe_every: int = _f(
        5,
        lo=0,
        doc="run the (costly) linear probe on the validation images every N epochs; "
        "0 = never during training. The best epoch is always probed after training (test split)",
    )
    eval_samples: int = _f(
        1000,
        lo=16,
        doc="generated images per epoch for the sample scores, from a fixed z "
        "(the same every epoch, so epochs and trials differ only by the model)",
    )
    device: str = _f("auto", choices=("auto", "cuda", "mps", "cpu"))
    deterministic: str = _f(
        "auto",
        choices=("auto", "on", "off"),
        doc="deterministic kernels: auto = on for CPU and "
        "MPS, off on CUDA (cuDNN autotuning instead); on = reproducible on a GPU too, where "
        "torch has deterministic kernels (common.trial.device.is_deterministic)",
    )
    precision: str = _f(
        "fp32",
        choices=("fp32", "bf16"),
        doc="training steps' matmuls/convs: bf16 = autocast to "
        "bfloat16 (faster on CPU, changes the numbers: bench/precision.py); evaluation is always fp32",
    )
    collapse_patience: int = _f(
        0,
        lo=0,
        doc="stop a trial flagged mode_collapse / posterior_collapse this many "
        "epochs in a row (a pruning signal); 0 = never",
    )

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrialConfig":
        """Build from a mapping of field -> value; strings (from ``--set``) are coerced."""
        values = dict(values)
        family = values.pop("family", cls.family)  # to_dict() output round-trips
        if family != cls.family:
            raise ConfigError(f"config says family={family!r} but a {cls.family} config was expected")
        known = cls.fields()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown {cls.family} config key(s) {', '.join(map(repr, unknown))}; "
                f"valid keys: {', '.join(sorted(known))}"
            )
        return cls(**{k: _coerce(k, v, known[k]) for k, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, **dataclasses.asdict(self)}

    def __post_init__(self):
        for name, f in self.fields().items():
            _check_range(self.family, name, getattr(self, name), f.metadata)
        self._validate()

    def _validate(self) -> None:
        """Cross-field checks; subclasses extend."""

    def split(self, n_train: int) -> tuple["torch.Tensor", "torch.Tensor"]:
        """(train subset, validation) indices into a train split of ``n_train`` images."""
        from common.trial.data import split_indices

        return split_indices(n_train, self.train_subset, self.val_size, self.seed, self.val_seed)

    def memory_mb(self) -> int:
        """Host memory one trial of this config needs, MiB (a measured peak, not a model)."""
        return SYNTHETIC_RSS_MB if self.data == "synthetic" else self.peak_rss_mb

    def gpu_memory_mb(self) -> int:
        """GPU memory one trial needs, MiB, for packing trials on a GPU (``common.sweep.resources.gpu_plan``).
        Not yet measured on a GPU (BENCHMARKS.md): until ``bench/memory.py --device cuda`` is, the
        host peak plus a CUDA context stands in, an overestimate, since the host peak also holds
        the Python runtime, torch's CPU libraries and the decoded dataset."""
        return self.memory_mb() + CUDA_CONTEXT_MB


@dataclass(frozen=True)
class VAEConfig(TrialConfig):
    """Conv-VAE (seed: latent 64, 20 epochs, L = MSE + beta*KL)."""

    family: ClassVar[str] = "vae"
    default_metric: ClassVar[str] = "val_bpd"
    peak_rss_mb: ClassVar[int] = 1800  # measured 1,420 (bench/memory.py), 1,584 in a Ray worker
    precision: str = _f(
        "bf16",
        choices=("fp32", "bf16"),
        doc="bf16 by default: faster training on CPU with "
        "the ELBO within the seed-to-seed spread (bench/precision.py); fp32 = the seed's numerics",
    )
    lr: float = _f(1e-3, lo=0.0, lo_open=True, hi=1e4, doc="Adam lr; > 1 diverges, allowed so tests can force it")
    # Levers beyond the slides (issue 16); the defaults are the slides' (Adam's own betas, a constant lr).
    beta1: float = _f(0.9, lo=0.0, hi=0.999, doc="Adam beta1")
    beta2: float = _f(0.999, lo=0.0, hi=0.9999, doc="Adam beta2")
    lr_schedule: str = _f(
        "constant",
        choices=("constant", "cosine"),
        doc="per step: cosine = decay to 0 over the trial's steps (common.trial.losses.lr_factor), "
        "a large lr early and a fine one at the end within a fixed epoch budget",
    )
    lr_warmup_epochs: float = _f(
        0.0,
        lo=0.0,
        doc="linear lr warm-up from 0 over this many epochs (fractions "
        "allowed): Adam's first steps, with poor moment estimates, stay small; 0 = off",
    )
    latent_dim: int = _f(64, lo=1, hi=4096)
    base_channels: int = _f(32, lo=1, doc="encoder widths c, 2c, 4c (seed: 32-64-128)")
    hidden_dim: int = _f(256, lo=0, doc="hidden FC between the 4x4 feature map and the latent; 0 = none")
    beta: float = _f(1.0, lo=0.0, doc="KL weight reached by the schedule (beta-VAE when != 1)")
    likelihood: str = _f(
        "mse",
        choices=("mse", "logistic"),
        doc="decoder likelihood: mse = the slides' squared error summed over pixels (a Gaussian "
        "with sigma^2 = 1/2, constants dropped); logistic = a discretised logistic with a learned "
        "per-channel scale (PixelCNN++), so beta = 1 trains a true ELBO on the 8-bit data",
    )
    beta_schedule: str = _f("constant", choices=("constant", "linear", "cyclical"))
    warmup_epochs: int = _f(10, lo=1, doc="linear schedule: epochs to ramp beta from 0")
    cycles: int = _f(4, lo=1, doc="cyclical schedule: number of cycles over max_epochs")
    ramp_fraction: float = _f(
        0.5,
        lo=0.0,
        lo_open=True,
        hi=1.0,
        doc="cyclical schedule: fraction of each cycle spent ramping beta from 0 (seed: 0.5)",
    )
    # Failure-mode mitigations (seed slides, 'Failure Modes & Mitigations'); all off by default.
    free_bits: float = _f(
        0.0,
        lo=0.0,
        doc="free bits (Kingma et al. 2016): training KL is "
        "sum_d max(free_bits, batch-mean KL_d), nats per latent dim; 0 = off. Logged KL/ELBO stay true",
    )
    perceptual_weight: float = _f(
        0.0,
        lo=0.0,
        doc="lambda in L = MSE + lambda*L_perc + beta*KL; 0 = off. "
        "L_perc is a per-image mean over features, MSE a sum over 3072 pixels",
    )
    perceptual_net: str = _f(
        "randconv",
        choices=("randconv", "vgg16"),
        doc="perceptual-loss backbone (common/trial/perceptual.py); randconv = val_randconv_fd's features",
    )
    perceptual_weights: str = _f(
        "",
        doc="vgg16 only: local path to torchvision's vgg16-397923af.pth; empty = the torch hub cache (never downloads)",
    )


@dataclass(frozen=True)
class DCGANConfig(TrialConfig):
    """DCGAN (seed: z = 100, 40 epochs, non-saturating BCE, Adam beta1 = 0.5)."""

    family: ClassVar[str] = "dcgan"
    default_metric: ClassVar[str] = "val_classifier_fd"
    peak_rss_mb: ClassVar[int] = 3500  # measured 3,086, 3,228 in a Ray worker: the probe's 20k x 7,168 D features
    max_epochs: int = _f(40, lo=1, hi=10_000)
    probe_every: int = _f(
        0,
        lo=0,
        doc="the D-feature linear probe every N epochs; 0 = only the best epoch's, after "
        "training (the default: about a minute per probe on a 2-core CPU, 7,168 features)",
    )
    latent_dim: int = _f(100, lo=1, hi=4096)
    lr_g: float = _f(2e-4, lo=0.0, lo_open=True, hi=1e4, doc="generator Adam lr; > 1 diverges")
    lr_ratio: float = _f(1.0, lo=0.0, lo_open=True, hi=100.0, doc="TTUR: lr_D = lr_ratio * lr_g")
    beta1: float = _f(0.5, lo=0.0, hi=0.999)
    beta2: float = _f(0.999, lo=0.0, hi=0.9999)
    g_channels: int = _f(128, lo=1, doc="generator widths c, c, c/2 (seed: 128-128-64)")
    g_hidden: int = _f(384, lo=0, doc="generator hidden FC before the 4x4 map; 0 = none")
    d_channels: int = _f(64, lo=1, doc="discriminator widths c, 2c, 4c (seed: 64-128-256)")
    d_hidden: int = _f(512, lo=0, doc="discriminator hidden FC before the logit; 0 = none")
    # Failure-mode mitigations (seed slides, 'Failure Modes & Mitigations'); all off by default,
    # and off leaves the seed's computation bit-identical. TTUR is lr_ratio above.
    gan_loss: str = _f(
        "bce",
        choices=("bce", "hinge", "wgan-gp"),
        doc="bce = D: BCE, G: non-saturating (seed); hinge (Miyato et al. 2018); "
        "wgan-gp = Wasserstein critic + gradient penalty (Gulrajani et al. 2017)",
    )
    gp_weight: float = _f(10.0, lo=0.0, doc="wgan-gp only: lambda of the gradient penalty (ignored otherwise)")
    n_critic: int = _f(
        1,
        lo=1,
        hi=100,
        doc="D steps per G step (one train batch per D step); an epoch then makes len/batch_size/n_critic G steps",
    )
    label_smoothing: float = _f(
        0.0,
        lo=0.0,
        hi=0.5,
        doc="one-sided label smoothing (Salimans et al. 2016): "
        "real target 1 - s in D's BCE loss; 0 = off; bce only; must be < 0.5",
    )
    spectral_norm: bool = _f(
        False, doc="spectral normalisation (Miyato et al. 2018) on every conv and linear layer of D"
    )
    d_norm: str = _f(
        "auto",
        choices=("auto", "batch", "none"),
        doc="BatchNorm in D's 2nd/3rd conv: batch | none; auto = none with gan_loss=wgan-gp "
        "(the penalty is per sample), batch otherwise (seed; spectral_norm keeps it)",
    )
    minibatch_disc: int = _f(
        0,
        lo=0,
        hi=1024,
        doc="minibatch discrimination (Salimans et al. 2016): number of kernels B before D's logit; 0 = off",
    )
    minibatch_dim: int = _f(8, lo=1, hi=1024, doc="minibatch discrimination: kernel dimension C")
    # Levers beyond the slides (issue 16); all off by default, off leaves the computation as it was.
    ema_decay: float = _f(
        0.0,
        lo=0.0,
        hi=0.9999,
        doc="EMA of G's weights (Yazici et al. 2019) for every sample, "
        "score, figure and the exported model: an average of G's recent iterates is smoother "
        "than the last one; 0 = off, e.g. 0.999",
    )
    diffaug: str = _f(
        "",
        doc="DiffAugment (Zhao et al. 2020) on real and fake images before D, comma-separated "
        "transforms color, translation, cutout (common.trial.augment): D cannot memorise a small train "
        "set; empty = off",
    )
    r1_weight: float = _f(
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

    def _validate(self) -> None:
        super()._validate()
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
    latent_dim: int = _f(64, lo=1, hi=4096)
    base_channels: int = _f(32, lo=1, doc="encoder widths c, 2c, 4c; the decoder mirrors them (as vae)")
    hidden_dim: int = _f(256, lo=0, doc="hidden FC between the 4x4 feature map and the latent; 0 = none (as vae)")
    d_channels: int = _f(64, lo=1, doc="discriminator widths c, 2c, 4c (as dcgan)")
    d_hidden: int = _f(512, lo=0, doc="discriminator hidden FC before the logit; 0 = none (as dcgan)")
    lr: float = _f(3e-4, lo=0.0, lo_open=True, hi=1.0, doc="Adam learning rate of the encoder and the decoder")
    lr_ratio: float = _f(1.0, lo=0.0, lo_open=True, hi=100.0, doc="TTUR: lr_D = lr_ratio * lr")
    beta1: float = _f(0.5, lo=0.0, hi=0.999, doc="Adam beta1 of all three optimizers")
    beta2: float = _f(0.999, lo=0.0, hi=0.9999, doc="Adam beta2 of all three optimizers")
    beta: float = _f(1.0, lo=0.0, doc="KL weight in the encoder loss (constant)")
    feature_layer: int = _f(
        2,
        lo=0,
        hi=3,
        doc="index into Discriminator.features for the reconstruction "
        "metric: 0 = (c,16,16), 1 = (2c,8,8), 2 = (4c,4,4), 3 = the hidden FC (needs d_hidden > 0)",
    )
    recon_weight: float = _f(
        1.0,
        lo=0.0,
        doc="weight of the feature-matching term (squared error summed over "
        "D_l's elements per image: a unit-variance Gaussian Dis_l likelihood up to 1/2)",
    )
    pixel_weight: float = _f(
        0.0,
        lo=0.0,
        doc="weight of the pixel squared error summed over 3x32x32 (the VAE's "
        "recon) added to the reconstruction term; 0 = feature matching only (the paper)",
    )
    gamma: float = _f(
        1e-2,
        lo=0.0,
        doc="Larsen's gamma: weight of the reconstruction term in the decoder loss "
        "against the GAN term (weight 1); small = the decoder is mostly a GAN generator",
    )

    @property
    def lr_d(self) -> float:
        return self.lr * self.lr_ratio

    def _validate(self) -> None:
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


def config_class(family: str) -> type[TrialConfig]:
    """The config class of ``family`` (the registry, common/trial/families.py); ConfigError if unknown."""
    from common.trial.families import get

    return get(family).config


def for_family(values: Mapping[str, Any], family: str) -> dict[str, Any]:
    """Resolve ``--set`` keys for one family: ``key`` applies to all, ``family.key`` to one.

    A sweep with both families (the seed preset) can then set e.g. ``dcgan.g_channels=32``.
    """
    from common.trial.families import FAMILIES

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


# ---- helpers ------------------------------------------------------------------------------
def _coerce(name: str, value: Any, f: dataclasses.Field) -> Any:
    typ = {"int": int, "float": float, "str": str, "bool": bool}[f.type if isinstance(f.type, str) else f.type.__name__]
    if typ is bool:
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
            return value.lower() in ("1", "true", "yes")
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, bool):
            pass
        elif isinstance(value, int):
            return value
        elif isinstance(value, float) and value.is_integer():
            return int(value)
        elif isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str and isinstance(value, str):
        return value
    raise ConfigError(f"config key {name}={value!r} must be of type {typ.__name__}")


def _check_range(family: str, name: str, value: Any, meta: Mapping[str, Any]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{family} config key {name}={value} must be a finite number")
    choices, lo, hi = meta.get("choices"), meta.get("lo"), meta.get("hi")
    if choices is not None and value not in choices:
        raise ConfigError(f"{family} config key {name}={value!r} must be one of {', '.join(map(str, choices))}")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        op = ">" if meta.get("lo_open") else ">="
        raise ConfigError(f"{family} config key {name}={value} is out of range: it must be {op} {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{family} config key {name}={value} is out of range: it must be <= {hi}")
