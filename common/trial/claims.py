"""What the slides claim of each family, as data its ``Family`` record carries: the mitigations
the report measures and the goals of its 'Best within the slides' budget' table.

A family without them takes no part in those two sections. Pure data and the small readers of
MLflow params (strings) the mitigations' ``state`` needs; the measuring lives in common/report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from common.base import slides
from common.base.objective import Objective


def _num(p: dict, key: str) -> float | None:
    """A numeric param ('3', '1e-3'), or None when absent, non-numeric or not finite."""
    try:
        v = float(p.get(key))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _flag(p: dict, key: str) -> bool | None:
    return {"true": True, "1": True, "false": False, "0": False}.get(str(p.get(key)).lower())


def _side(on: bool, off: bool) -> bool | None:
    """True = mitigation on, False = off (the control), None = neither (not compared)."""
    return True if on else False if off else None


@dataclass(frozen=True)
class Target:
    metric: str
    mode: str  # "max" | "min": the direction in which the mitigation is meant to move it
    claim: str  # the slides' claimed gain (../shared/seed/vae_vs_dcgan_slides.md), verbatim-ish
    check: tuple = ()  # ("above", x): with-mean > x; ("rel", lo, hi): relative gain in [lo, hi] %

    @property
    def objective(self) -> Objective:
        return Objective(self.metric, self.mode)


@dataclass(frozen=True)
class Mitigation:
    name: str
    fields: tuple[str, ...]  # its own params: they (and seed) may differ between on and off trials
    state: Callable[[dict], bool | None]  # params -> on / off / neither
    on_off: str  # how "on" and "off" are read from params, for the report
    targets: tuple[Target, ...]
    biased_if: Callable[[dict, dict], bool] | None = None  # (params, tags) of an on trial -> metric bias
    family: str = ""  # filled in by the report from the Family record that carries it


@dataclass(frozen=True)
class Goal:
    """One row of the budget table: a test metric, the slides' published value, the goal."""

    label: str
    key: str  # a logged test metric, or "probe_minus_pixels" (derived per trial)
    slides: str  # the slides' value as printed, or why there is none
    op: str  # "<=" | ">=" | ">"
    threshold: float


NO_CLAIM = "— (not claimed in the slides)"
SN_TTUR = "stable convergence, smooth training (spectral norm + TTUR together)"
FUTURE = "— ({} is only future work in the slides)"
KL = Target("test_kl", "max", "KL > 10", ("above", 10.0))
PROBE = Target("test_probe_acc", "max", "meaningful representations")
FD = Target("test_classifier_fd", "min", NO_CLAIM)

# The VAE's: posterior collapse and blur (the slides' 'failure modes and mitigations').
VAE_MITIGATIONS: tuple[Mitigation, ...] = (
    Mitigation(
        "cyclical β annealing",
        ("beta_schedule", "cycles", "ramp_fraction"),
        lambda p: _side(p.get("beta_schedule") == "cyclical", p.get("beta_schedule") == "constant"),
        'on: beta_schedule = "cyclical"; off: "constant"',
        (KL, PROBE),
    ),
    Mitigation(
        "free bits",
        ("free_bits",),
        lambda p: None if (v := _num(p, "free_bits")) is None else v > 0,
        "on: free_bits > 0; off: 0",
        (Target("test_kl", "max", NO_CLAIM), Target("test_active_units", "max", NO_CLAIM)),
    ),
    Mitigation(
        "perceptual loss",
        ("perceptual_weight", "perceptual_net", "perceptual_weights"),
        lambda p: None if (v := _num(p, "perceptual_weight")) is None else v > 0,
        "on: perceptual_weight > 0; off: 0",
        (
            Target("test_classifier_fd", "min", "sharper textures, better details"),
            Target("test_randconv_fd", "min", "sharper textures, better details"),
        ),
        lambda p, t: p.get("perceptual_net") == "randconv" or "metric_bias" in t,
    ),
    Mitigation(
        "β-VAE",
        ("beta",),
        lambda p: None if (v := _num(p, "beta")) is None else v != 1,
        "on: beta ≠ 1; off: beta = 1",
        (Target("test_kl", "max", FUTURE.format("β-VAE")), Target("test_probe_acc", "max", FUTURE.format("β-VAE"))),
    ),
)
# The DCGAN's: mode collapse and unstable training.
GAN_MITIGATIONS: tuple[Mitigation, ...] = (
    Mitigation(
        "minibatch discrimination",
        ("minibatch_disc", "minibatch_dim"),
        lambda p: None if (v := _num(p, "minibatch_disc")) is None else v > 0,
        "on: minibatch_disc > 0; off: 0",
        (Target("test_class_kl", "min", "+20–30% diversity"), Target("test_classifier_fd", "min", "better coverage")),
    ),
    Mitigation(
        "spectral norm + TTUR",
        ("spectral_norm", "lr_ratio"),
        lambda p: _side(
            _flag(p, "spectral_norm") is True and (_num(p, "lr_ratio") or 0) > 1,
            _flag(p, "spectral_norm") is False and _num(p, "lr_ratio") == 1,
        ),
        "on: spectral_norm = true and lr_ratio > 1; off: spectral_norm = false and lr_ratio = 1",
        (Target("test_classifier_fd", "min", SN_TTUR), Target("grad_norm_d", "min", SN_TTUR)),
    ),
    Mitigation(
        "spectral norm alone",
        ("spectral_norm",),
        lambda p: _flag(p, "spectral_norm"),
        "on: spectral_norm = true; off: false",
        (Target("test_classifier_fd", "min", "— (claimed only with TTUR)"),),
    ),
    Mitigation(
        "TTUR alone",
        ("lr_ratio",),
        lambda p: None if (v := _num(p, "lr_ratio")) is None else _side(v > 1, v == 1),
        "on: lr_ratio > 1; off: lr_ratio = 1",
        (Target("test_classifier_fd", "min", "— (claimed only with spectral norm)"),),
    ),
    Mitigation(
        "label smoothing",
        ("label_smoothing",),
        lambda p: None if (v := _num(p, "label_smoothing")) is None else v > 0,
        "on: label_smoothing > 0; off: 0",
        (FD,),
    ),
    Mitigation(
        "hinge loss",
        ("gan_loss",),
        lambda p: _side(p.get("gan_loss") == "hinge", p.get("gan_loss") == "bce"),
        'on: gan_loss = "hinge"; off: "bce"',
        (FD,),
    ),
    Mitigation(
        "WGAN-GP loss",
        ("gan_loss", "gp_weight", "n_critic"),
        lambda p: _side(p.get("gan_loss") == "wgan-gp", p.get("gan_loss") == "bce"),
        'on: gan_loss = "wgan-gp"; off: "bce"',
        (Target("test_classifier_fd", "min", FUTURE.format("WGAN-GP")),),
    ),
)

PIXEL_GAIN = "probe_minus_pixels"  # derived per trial: test_probe_acc - test_probe_acc_pixels
VAE_GOALS = (
    Goal(
        "negative ELBO, the slides' convention (MSE-sum + KL, nats/image)",
        "test_mse_kl",
        f"{slides.NEG_ELBO}",
        "<=",
        195.0,
    ),
    Goal("KL (nats/image)", "test_kl", f"{slides.KL}", ">", 10.0),
    Goal("linear probe on μ (the moonshot goal)", "test_probe_acc", f"{slides.PROBE_ACC:.2%}", ">=", 0.45),
    Goal("probe on μ minus its raw-pixel baseline", PIXEL_GAIN, "not reported", ">=", 0.05),
)
GAN_GOALS = (  # the slides published neither
    Goal("FID, Inception (the goal: 10,000 generated vs the 10,000 test images)", "fid", "not measured", "<=", 60.0),
    Goal("recall (k = 3, Inception features)", "recall", "not measured", ">", 0.2),
)
